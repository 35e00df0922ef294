"""Does agreement with the target rise with size? The bundled suite's check on its test splits.

    python3 -m suite.agreement_vs_size        # after `bash suite/build_splits.sh`

For each split dataset, every input model's top-1 agreement with the target (the largest model),
and the Spearman correlation of agreement with size over the input models that do not give every
prefix the same top-1 (a model that answers every prompt alike carries no signal about size), and
the noise ceiling where the sidecar has one: how often another seed of the target agrees with it.
The suite's target is rho >= 0.9 on wikipedia-test (the exit status says whether it holds); the RTE
splits are reported, not required: after "Answer:" the suite's target picks between a newline, a
space and a digit, a choice that another seed of it reproduces on few prompts.
Writes suite/agreement_vs_size.md and suite/agreement_vs_size.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import harness.cli
from harness.data.dataset import load_dataset, model_sizes, read_sidecar, sidecar_noise_ceiling
from harness.scoring.top1 import top1

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("wikipedia-test", "glue-rte-test", "wikipedia-train", "glue-rte-train")
REQUIRED = ("wikipedia-test", 0.9)  # split, the least Spearman rho


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's correlation of the ranks (ties get their average rank)."""

    def ranks(values: np.ndarray) -> np.ndarray:
        order = values.argsort(kind="stable")
        r = np.empty(len(values))
        r[order] = np.arange(len(values), dtype=float)
        for value in np.unique(values):  # average rank for ties
            r[values == value] = r[values == value].mean()
        return r

    return float(np.corrcoef(ranks(np.asarray(x, float)), ranks(np.asarray(y, float)))[0, 1])


def agreement(path: Path) -> dict:
    dataset = load_dataset(path)
    model_top1 = top1(dataset.probs)  # (prefixes, models)
    target_top1 = model_top1[:, -1]
    inputs = model_top1[:, :-1]
    agree = (inputs == target_top1[:, None]).mean(axis=0)
    informative = np.array([len(np.unique(inputs[:, j])) > 1 for j in range(inputs.shape[1])])
    metadata = read_sidecar(dataset.path, verify_hash=False)
    sizes = model_sizes(dataset.model_names, metadata)  # from the sidecar, which preprocess_train.py writes
    ceiling = sidecar_noise_ceiling(dataset, metadata)
    if not sizes:
        raise SystemExit(f"{path}: no sidecar with model sizes beside it: rebuild it with suite/build_splits.sh")
    return {
        "names": dataset.model_names[:-1],
        "target": dataset.model_names[-1],
        "n": len(dataset.sentences),
        "agreement": agree.tolist(),
        "informative": informative.tolist(),
        "sizes": [sizes[name]["non_embedding_params"] for name in dataset.model_names[:-1]],
        "noise_ceiling": None if ceiling is None else float((ceiling.top1 == target_top1).mean()),
        "noise_ceiling_model": None if ceiling is None else ceiling.model,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "suite")
    args = parser.parse_args(argv)

    results = {}
    for split in SPLITS:
        path = args.data / f"{split}.pkl"
        if path.exists():
            r = results[split] = agreement(path)
            x = np.array(r["sizes"])
            keep = np.array(r["informative"])
            r["spearman"] = spearman(x[keep], np.array(r["agreement"])[keep]) if keep.sum() > 2 else float("nan")
    if not results:
        raise SystemExit(f"no split datasets in {args.data}: run `bash suite/build_splits.sh` first")

    names = next(iter(results.values()))["names"]
    lines = [
        "# Top-1 agreement with the target vs size",
        "",
        f"Each input model's top-1 agreement with the target ({next(iter(results.values()))['target']}) "
        "on the split datasets, and Spearman's rho of agreement vs non-embedding parameters over the "
        "input models that do not give every prefix the same top-1 (marked *). "
        f"Required: rho >= {REQUIRED[1]} on {REQUIRED[0]}. Noise ceiling: another seed of the target, "
        "its agreement with the target.",
        "",
        "| split | n | " + " | ".join(Path(n).name for n in names) + " | Spearman rho | noise ceiling |",
        "|---|---:|" + "---:|" * len(names) + "---:|---:|",
    ]
    for split, r in results.items():
        cells = [f"{a:.1%}" + ("" if keep else "*") for a, keep in zip(r["agreement"], r["informative"])]
        ceiling = "—" if r["noise_ceiling"] is None else f"{r['noise_ceiling']:.1%}"
        lines.append(f"| {split} | {r['n']} | " + " | ".join(cells) + f" | {r['spearman']:.3f} | {ceiling} |")
    (args.out / "agreement_vs_size.md").write_text("\n".join(lines) + "\n")
    (args.out / "agreement_vs_size.json").write_text(json.dumps(results, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for split, r in results.items():
        style = "-" if split.endswith("test") else ":"
        ax.plot(
            r["sizes"],
            np.array(r["agreement"]) * 100,
            "o" + style,
            label=f"{split} (n={r['n']}, rho={r['spearman']:.2f})",
        )
    ax.set_xscale("log")
    ax.set_xlabel("input model: non-embedding parameters (log scale)")
    ax.set_ylabel("top-1 agreement with the target (%)")
    ax.set_title("Agreement with the largest model against size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "agreement_vs_size.png")
    plt.close(fig)

    print("\n".join(lines[4:]))
    split, least = REQUIRED
    ok = split in results and results[split]["spearman"] >= least
    print(f"rho >= {least} on {split}: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    harness.cli.run(main)
