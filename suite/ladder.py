"""The bundled suite's ladder on one axis: task accuracy and agreement with the target against
pretraining loss, for every size, checkpoint and seed. Does an ability appear at a loss, whatever
the size or step that reaches it (Du et al. 2024)?

    python3 predict_emergence.py --models ladder --data-sizes 0     # every point's 0-shot runs (suite-ladder.jsonl)
    python3 preprocess_train.py --models ladder --dataset data/prefixes/wikipedia-test.jsonl \\
        --out data/ladder-wikipedia-test.pkl                        # every point's next-token distributions
    python3 -m suite.ladder                                         # writes suite/ladder.{md,json,png}

Each point's pretraining loss is the study's (mean next-token loss on data/prefixes/wikipedia-test.jsonl),
its 0-shot accuracy the study's D = 0 run on each task (exact match on the same test questions for
every point), with a 95% bootstrap interval, and its agreement the share of wikipedia-test prefixes
where its top-1 is the target's. Points of equal loss: every pair from two different training runs
(another size, or another seed) whose losses differ by at most --tolerance nats, compared on the same
questions by the exact McNemar test. If the loss alone sets the accuracy, such pairs differ no more
than chance allows: about 5% of them at p < 0.05.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import harness.cli
from harness.data.dataset import load_dataset
from harness.forecast.study import read_results
from harness.scoring.stats import bootstrap_ci, format_p_value, paired_comparison
from harness.scoring.top1 import top1

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "data" / "emergence" / "suite-ladder.jsonl"
AGREEMENT = ROOT / "data" / "ladder-wikipedia-test.pkl"
LOSS_WINDOW = (4.45, 4.70)  # where the bundled suite's abilities appear (issue 31's window)


def run_of(point: str) -> str:
    """The training run a point comes from: a checkpoint's model (suite-1.5m@step2880 -> suite-1.5m)."""
    return point.partition("@")[0]


def zero_shot(records: list[dict]) -> dict[str, dict[str, dict]]:
    """task -> point -> its D = 0 run: loss, outcomes (one bool per test question)."""
    table: dict[str, dict[str, dict]] = {}
    for record in records:
        if int(record["data_size"]) == 0 and record.get("outcomes"):
            outcomes = np.array([c == "1" for c in record["outcomes"]])
            table.setdefault(record["task"], {})[record["model"]] = {
                "loss": record["pretraining_loss"],
                "outcomes": outcomes,
            }
    return table


def agreement(path: Path) -> dict[str, float]:
    """Each input point's top-1 agreement with the target (the dataset's last model)."""
    if not path.exists():
        return {}
    dataset = load_dataset(path)
    model_top1 = top1(dataset.probs)
    return {
        name: float((model_top1[:, j] == model_top1[:, -1]).mean()) for j, name in enumerate(dataset.model_names[:-1])
    }


def equal_loss_pairs(points: dict[str, dict], tolerance: float) -> list[dict]:
    """Every pair of points from different runs within `tolerance` nats, compared on the same questions."""
    names = sorted(points, key=lambda p: -points[p]["loss"])
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            gap = points[a]["loss"] - points[b]["loss"]
            if gap <= tolerance and run_of(a) != run_of(b):
                test = paired_comparison(points[a]["outcomes"], points[b]["outcomes"])
                pairs.append(
                    {
                        "a": a,
                        "b": b,
                        "loss_gap": gap,
                        "accuracy_a": float(points[a]["outcomes"].mean()),
                        "accuracy_b": float(points[b]["outcomes"].mean()),
                        **test,
                    }
                )
    return pairs


def summary(task: str, points: dict[str, dict], pairs: list[dict]) -> dict:
    """Per task: each point's accuracy and interval, and how the equal-loss pairs differ."""
    rows = []
    for name in sorted(points, key=lambda p: -points[p]["loss"]):
        outcomes = points[name]["outcomes"]
        rows.append(
            {
                "point": name,
                "loss": points[name]["loss"],
                "accuracy": float(outcomes.mean()),
                "ci95": bootstrap_ci(outcomes),
                "n": len(outcomes),
            }
        )
    differences = [abs(p["accuracy_a"] - p["accuracy_b"]) for p in pairs]
    return {
        "task": task,
        "points": rows,
        "pairs": pairs,
        "mean_abs_difference": float(np.mean(differences)) if pairs else None,
        "significant_pairs": sum(p["p_value"] < 0.05 for p in pairs),
    }


def markdown(results: list[dict], agree: dict[str, float], tolerance: float, steps: int) -> list[str]:
    window = [r for r in results[0]["points"] if LOSS_WINDOW[0] <= r["loss"] <= LOSS_WINDOW[1]] if results else []
    lines = [
        "# The ladder: accuracy and agreement against pretraining loss",
        "",
        "Written by `python3 -m suite.ladder`. Pretraining loss: nats per token on "
        "data/prefixes/wikipedia-test.jsonl. Accuracy: 0-shot exact match on the study's test questions, "
        "95% bootstrap interval. Agreement: top-1 agreement with the target on wikipedia-test.",
        "",
        f"Points with loss in [{LOSS_WINDOW[0]}, {LOSS_WINDOW[1]}]: {len(window)}.",
        "",
    ]
    tasks = [r["task"] for r in results]
    lines += ["| point | loss | " + " | ".join(tasks) + " | agreement |", "|---|---:|" + "---:|" * len(tasks) + "---:|"]
    by_task = [{row["point"]: row for row in r["points"]} for r in results]
    for row in results[0]["points"] if results else []:
        cells = []
        for table in by_task:
            cell = table.get(row["point"])
            cells.append(
                "—" if cell is None else f"{cell['accuracy']:.1%} [{cell['ci95'][0]:.0%}, {cell['ci95'][1]:.0%}]"
            )
        share = agree.get(row["point"])
        lines.append(
            f"| {row['point']} | {row['loss']:.3f} | "
            + " | ".join(cells)
            + f" | {'—' if share is None else f'{share:.1%}'} |"
        )
    lines += ["", f"## Each run's final accuracy, by size (a retrained run's final is its @step{steps})", ""]
    for r in results:
        finals = [row for row in r["points"] if "@" not in row["point"] or row["point"].endswith(f"@step{steps}")]
        by_size: dict[str, list[str]] = {}
        for row in finals:
            size = row["point"].split("-seed")[0].split("@")[0]
            by_size.setdefault(size, []).append(f"{row['point']} {row['accuracy']:.1%}")
        lines.append(f"- {r['task']}: " + "; ".join(", ".join(v) for v in by_size.values()) + ".")
    lines += ["", f"## Points of equal loss (within {tolerance} nats, from different runs)", ""]
    for r in results:
        if not r["pairs"]:
            lines.append(f"- {r['task']}: no pairs.")
            continue
        lines.append(
            f"- {r['task']}: {len(r['pairs'])} pairs, mean |accuracy difference| "
            f"{r['mean_abs_difference']:.1%}; {r['significant_pairs']} differ at p < 0.05 "
            f"(chance alone: about {0.05 * len(r['pairs']):.1f})."
        )
        widest = max(r["pairs"], key=lambda p: abs(p["accuracy_a"] - p["accuracy_b"]))
        lines.append(
            f"  Widest: {widest['a']} {widest['accuracy_a']:.1%} vs {widest['b']} "
            f"{widest['accuracy_b']:.1%} ({widest['loss_gap']:.3f} nats apart, McNemar "
            f"p={format_p_value(widest['p_value'])})."
        )
    return lines


def runs_table(suite_json: Path) -> list[str]:
    """What each training run cost and what of it is committed: the sizes, the other seeds, and the
    checkpoints kept in suite/checkpoints (suite.json; disk is the committed float16 weights)."""
    suite = json.loads(suite_json.read_text())
    root = suite_json.parent
    lines = [
        "| run | non-embedding params | steps | training (min, 1 thread) | checkpoints saved | committed "
        "checkpoints | disk (MB) |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    total_minutes = total_mb = 0.0
    for record in suite["models"] + suite.get("seed_variants", []):
        name = record["name"]
        folder = root / ("seeds" if "-seed" in name else "models") / name
        committed = sorted(
            (d for d in (root / "checkpoints" / name).glob("step*/") if (d / "model.safetensors").is_file()),
            key=lambda d: int(d.name[4:]),
        )
        mb = sum((d / "model.safetensors").stat().st_size for d in [folder, *committed] if d.is_dir()) / 1e6
        minutes = record.get("retrained", record)["train_wall_s"] / 60
        total_minutes += minutes
        total_mb += mb
        lines.append(
            f"| {name} | {record['non_embedding_params']:,} | {record['steps']:,} | {minutes:.0f} "
            f"| {len(record.get('checkpoints', []))} | {', '.join(d.name for d in committed) or '—'} | {mb:.1f} |"
        )
    lines.append(f"| all | | | {total_minutes:.0f} | | | {total_mb:.1f} |")
    return lines


def kind(point: str) -> str:
    return "checkpoint" if "@" in point else "seed" if "-seed" in point else "size"


def draw(results: list[dict], agree: dict[str, float], path: Path, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(results) + bool(agree)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.4), dpi=120, squeeze=False)
    markers = {"size": ("o", 7), "seed": ("s", 7), "checkpoint": ("^", 5)}
    columns = [(r["task"], {row["point"]: (row["loss"], row["accuracy"]) for row in r["points"]}) for r in results]
    if agree:
        losses = {row["point"]: row["loss"] for r in results for row in r["points"]}
        columns.append(("agreement with the target", {p: (losses[p], a) for p, a in agree.items() if p in losses}))
    for ax, (title, values) in zip(axes[0], columns):
        for run in sorted({run_of(p) for p in values}):  # each run's checkpoints joined, in training order
            # a retrained run (its final committed as @step<last>) is not the committed model of that name
            retrained = f"{run}@step{steps}" in values
            chain = sorted(
                (v for p, v in values.items() if run_of(p) == run and not (retrained and p == run)),
                key=lambda v: -v[0],
            )
            ax.plot([x for x, _ in chain], [100 * y for _, y in chain], "-", color="0.8", lw=1, zorder=1)
        for point_kind, (marker, size) in markers.items():
            chosen = [v for p, v in values.items() if kind(p) == point_kind]
            if chosen:
                ax.plot(
                    [x for x, _ in chosen],
                    [100 * y for _, y in chosen],
                    marker,
                    ms=size,
                    ls="none",
                    label=point_kind + "s",
                    zorder=2,
                )
        ax.axvspan(*LOSS_WINDOW, color="tab:orange", alpha=0.08)
        ax.invert_xaxis()  # more capable to the right
        ax.set_xlabel("pretraining loss on wikipedia-test (nats/token)")
        ax.set_ylabel("%")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("The bundled ladder: sizes, seeds and checkpoints on one loss axis", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="the study's results file")
    parser.add_argument("--agreement", type=Path, default=AGREEMENT, help="a dataset of every ladder point")
    parser.add_argument(
        "--tolerance",
        type=harness.cli.non_negative_float,
        default=0.02,
        help="nats within which two losses are equal (default: 0.02)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "suite")
    parser.add_argument("--suite-json", type=Path, default=ROOT / "suite" / "suite.json")
    args = parser.parse_args(argv)

    tables = zero_shot(read_results(args.results))
    results = [
        summary(task, points, equal_loss_pairs(points, args.tolerance)) for task, points in sorted(tables.items())
    ]
    agree = agreement(args.agreement)
    if not agree:
        print(f"note: no {args.agreement}: agreement left out (bash suite/build_ladder.sh builds it)", file=sys.stderr)
    steps = json.loads(args.suite_json.read_text())["steps"]
    lines = markdown(results, agree, args.tolerance, steps)
    runs = [
        "",
        "## The runs",
        "",
        "Training time is the last run's (a retrained model's, where it was retrained "
        "with checkpoints), on a shared 2-core machine.",
        "",
        *runs_table(args.suite_json),
    ]
    (args.out / "ladder.md").write_text("\n".join(lines + runs) + "\n")
    (args.out / "ladder.json").write_text(
        json.dumps({"results": results, "agreement": agree}, indent=1, default=lambda a: a.tolist()) + "\n"
    )
    draw(results, agree, args.out / "ladder.png", steps)
    print("\n".join(lines[4:]))
    return 0


if __name__ == "__main__":
    harness.cli.run(main)
