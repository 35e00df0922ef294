"""Commit-ready copies of trained suite models: config, tokenizer, and the weights in float16.

    python3 -m suite.export build/suite/models suite/models      # every model folder in the first
    python3 -m suite.export build/suite/checkpoints/suite-1.5m suite/checkpoints/suite-1.5m --only step2880 step3120

Half precision halves the committed bytes (the suite and its other seed fit the 60 MB budget with
the default data). The models still run in float32 (`--dtype auto` on CPU): float16 weights,
upcast, are the float32 ones rounded to 11 significant bits; README.md says what that changes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

import harness.cli
from harness import InputError

FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def export(source: Path, destination: Path) -> None:
    import torch  # here, not at the top: --help needs no torch, and harness.cli.run reports a missing one
    from safetensors.torch import load_file, save_file

    weights = {name: tensor.to(torch.float16) for name, tensor in load_file(source / "model.safetensors").items()}
    destination.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (source / name).is_file():  # a model saved without generation settings has no generation_config.json
            shutil.copy2(source / name, destination / name)
    save_file(weights, destination / "model.safetensors", metadata={"format": "pt"})


def float16_change(source: Path, destination: Path, prefixes: list[str]) -> dict:
    """What storing `source`'s weights in float16 changes, both run in float32 on `prefixes`: the
    largest difference of a next-token probability, and how often the top-1 stays the same."""
    import torch
    from transformers import AutoModelForCausalLM

    from harness.data.tokenizer import load_tokenizer
    from harness.models.inference import next_token_probs, tokenize

    tokenizer = load_tokenizer(str(source))
    token_ids = tokenize(tokenizer, prefixes)
    probs = []
    for folder in (source, destination):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        out = np.zeros((len(token_ids), tokenizer.get_vocab_size()), np.float32)
        next_token_probs(model, token_ids, out, progress=False)
        probs.append(torch.from_numpy(out))
    return {
        "max_abs_difference": float((probs[0] - probs[1]).abs().max()),
        "same_top1": float((probs[0].argmax(1) == probs[1].argmax(1)).float().mean()),
    }


def committed_records(suite: dict, source: Path, folder: Path) -> list[dict]:
    """suite.json's record of the model in `folder`: a model's (folder named as the model), or one of
    its checkpoints' (`source` named as the model, `folder` as the step: step2880)."""
    models = suite["models"] + suite.get("seed_variants", [])
    if folder.name.startswith("step") and folder.name[4:].isdigit():
        step = int(folder.name[4:])
        return [c for r in models if r["name"] == source.name for c in r.get("checkpoints", []) if c["step"] == step]
    return [r for r in models if r["name"] == folder.name]


def merge_training_record(suite: dict, folder: Path) -> bool:
    """A model trained into `folder` (its record.json) joins suite.json: one already there (retrained
    with checkpoints) keeps its entry and its committed weights, and gains its checkpoints, with
    whether the retrained weights are the recorded ones bit for bit; another seed is added to the
    seed variants. Whether the model is new (to be exported)."""
    record = json.loads((folder / "record.json").read_text())
    record["weights_sha256"] = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    record.pop("dir", None)  # where training ran, not where the model is
    entries = suite["models"] + suite.setdefault("seed_variants", [])
    known = [r for r in entries if r["name"] == record["name"]]
    if not known:
        suite["seed_variants" if "-seed" in record["name"] else "models"].append(record)
        return True
    entry = known[0]
    entry["checkpoints"] = record["checkpoints"]
    entry["retrained"] = {
        "train_wall_s": record["train_wall_s"],
        "weights_sha256": record["weights_sha256"],
        "bit_identical": record["weights_sha256"] == entry["weights_sha256"],
        "val_loss": record["val_loss"],
    }
    return False


def compare_retrained(suite: dict, folder: Path, committed: Path, prefixes: list[str]) -> None:
    """A retrained model that is not the committed one bit for bit: what differs, both stored in
    float16 and run in float32 on `prefixes`, recorded beside its `retrained` entry."""
    entry = next(r for r in suite["models"] + suite["seed_variants"] if r["name"] == folder.name)
    if entry["retrained"]["bit_identical"]:
        print(f"{folder}: retrained bit for bit; its checkpoints recorded, the committed weights stay")
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        export(folder, Path(tmp) / folder.name)
        change = float16_change(committed, Path(tmp) / folder.name, prefixes)
    entry["retrained"]["vs_committed"] = {**change, "prefixes": len(prefixes), "measured_in": "float32"}
    print(
        f"{folder}: retrained, not bit for bit (validation loss {entry['retrained']['val_loss']:.4f}, committed "
        f"{entry['val_loss']:.4f}); on {len(prefixes)} prefixes next-token probabilities differ by at most "
        f"{change['max_abs_difference']:.2e}, top-1 the same on {change['same_top1']:.1%}; the committed weights stay"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a folder of trained model folders")
    parser.add_argument("destination", type=Path)
    parser.add_argument(
        "--suite-json",
        type=Path,
        help="record each copy's weights hash and what float16 "
        "changes next to its model's entry in this suite.json (suite/rebuild.sh: suite/suite.json)",
    )
    parser.add_argument(
        "--merge-records",
        action="store_true",
        help="also merge each model's record.json (checkpoints, training time) into --suite-json: a "
        "retrained model keeps its entry and gains its checkpoints, another seed is added",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="FOLDER",
        help="export only these folders of the source (a model's checkpoints: step2880 ...)",
    )
    parser.add_argument(
        "--prefixes",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "data" / "prefixes" / "wikipedia.txt",
        help="what float16 changes is measured on (one prefix per line)",
    )
    args = parser.parse_args(argv)
    if args.merge_records and args.suite_json is None:
        parser.error("--merge-records needs --suite-json")
    prefixes = [line for line in args.prefixes.read_text(encoding="utf-8").splitlines() if line.strip()]
    suite = json.loads(args.suite_json.read_text()) if args.suite_json else None
    folders = sorted(p for p in args.source.iterdir() if (p / "model.safetensors").is_file())
    if args.only:
        missing = sorted(set(args.only) - {f.name for f in folders})
        if missing:
            raise InputError(f"{args.source}: no trained model folder {', '.join(missing)} (--only)")
        folders = [f for f in folders if f.name in args.only]
    for folder in folders:
        if suite is not None and args.merge_records and not merge_training_record(suite, folder):
            compare_retrained(suite, folder, args.destination / folder.name, prefixes)
            continue
        copy = args.destination / folder.name
        export(folder, copy)
        change = float16_change(folder, copy, prefixes)
        print(
            f"{folder} -> {copy} (float16): on {len(prefixes)} prefixes, next-token "
            f"probabilities move by at most {change['max_abs_difference']:.2e}, top-1 the same on "
            f"{change['same_top1']:.1%}"
        )
        if suite is not None:  # suite.json's weights_sha256 is the float32 training output's; say what is committed
            for record in committed_records(suite, args.source, folder):
                record["float16_weights_sha256"] = hashlib.sha256((copy / "model.safetensors").read_bytes()).hexdigest()
                record["float16_change"] = {**change, "prefixes": len(prefixes), "measured_in": "float32"}
                record["committed"] = str(copy)
    if suite is not None:
        tmp = args.suite_json.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(suite, indent=1, default=str))
        tmp.replace(args.suite_json)
    return 0


if __name__ == "__main__":
    harness.cli.run(main)
