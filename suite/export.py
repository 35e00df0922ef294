"""Commit-ready copies of trained suite models: config, tokenizer, and the weights in float16.

    python3 -m suite.export build/suite/models suite/models      # every model folder in the first

Half precision halves the committed bytes (the suite and its other seed fit the 60 MB budget with
the default data). The models still run in float32 (`--dtype auto` on CPU): float16 weights,
upcast, are the float32 ones rounded to 11 significant bits; README.md says what that changes.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def export(source: Path, destination: Path) -> None:
    weights = {name: tensor.to(torch.float16) for name, tensor in load_file(source / "model.safetensors").items()}
    destination.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy2(source / name, destination / name)
    save_file(weights, destination / "model.safetensors", metadata={"format": "pt"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a folder of trained model folders")
    parser.add_argument("destination", type=Path)
    args = parser.parse_args()
    for folder in sorted(p for p in args.source.iterdir() if (p / "model.safetensors").is_file()):
        export(folder, args.destination / folder.name)
        print(f"{folder} -> {args.destination / folder.name} (float16)")


if __name__ == "__main__":
    main()
