"""`lowrank`'s fit and prediction: wall time, CPU time and peak anonymous memory, on a dataset's
prefixes or on synthetic ones at Pythia's vocabulary.

    python3 -m benchmarks.lowrank_fit --dataset data/wikipedia-train.pkl --test data/wikipedia-test.pkl
    python3 -m benchmarks.lowrank_fit --num-prefixes 1000          # synthetic, 1,000 x 7 x 50,277
    python3 -m benchmarks.lowrank_fit --num-prefixes 1000 --json lowrank.json

The fit is the whole of what `challenge.py --train` runs before predicting: the `loglinear-ce` pool
(Newton), the cross-validation choosing the epochs, and the ENSEMBLE fits. Prediction is timed on
--test's prefixes (scored there: mean KL(target || lowrank), against `loglinear-ce`'s), else on the
training prefixes themselves (timed only). The synthetic file is `benchmarks.loglinear_fit`'s
(memory-mapped, so only what the fit holds counts as anonymous memory); its target is a noisy pool of
the inputs, with no correction to learn, so cross-validation keeps the pool alone unless --epochs
leaves it one choice. Seeded: --seed, as challenge.py seeds numpy before a fit.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import harness.cli
from benchmarks.loglinear_fit import MODELS, VOCAB, load, peak_rss_anon, synthetic, training_split
from harness.data.files import check_writable, write_output
from harness.scoring.metrics import distribution_metrics, target_rows
from strategies import lowrank
from strategies.loglinear import fit_loglinear_ce


def timed(fn) -> tuple[float, float, int, object]:
    """(wall s, CPU s, peak RssAnon bytes, result) of fn()."""
    start, start_cpu = time.perf_counter(), time.process_time()
    peak, result = peak_rss_anon(fn)
    return time.perf_counter() - start, time.process_time() - start_cpu, peak, result


def mean_kl(predicted: np.ndarray, probs: np.ndarray) -> float:
    target = np.asarray(probs[:, -1])
    return float(
        distribution_metrics(predicted, target_rows(target, target.astype(np.float32).argmax(axis=1)))["kl"].mean()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.cli.add_num_prefixes(parser, "the first N prefixes (default: a --dataset's all, else 1,000)")
    parser.add_argument("--dataset", type=Path, help="fit on this dataset file (its last model the target)")
    parser.add_argument("--test", type=Path, help="predict and score this dataset file (same models)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="where the synthetic .npy file goes")
    harness.cli.add_seed(parser, "seeds numpy before the fit, as challenge.py does")
    parser.add_argument(
        "--epochs",
        type=harness.cli.positive_int,
        help="the one epoch count cross-validation may choose (the fit's whole "
        "cost where it keeps the correction: synthetic targets have none to learn)",
    )
    harness.cli.add_json(parser, "write the measurements as JSON")
    args = parser.parse_args(argv)
    if args.json is not None:
        check_writable(args.json)
    if args.epochs is not None:
        lowrank.EPOCHS = (args.epochs,)

    if args.dataset:
        path = args.dataset
        probs = load(path)
    else:
        check_writable(args.dir, folder=True)
        path = synthetic(args.dir / f"loglinear-bench-{MODELS}x{VOCAB}.npy", args.num_prefixes or 1000)
        probs = load(path)
    n = min(args.num_prefixes or len(probs), len(probs))
    _, m, v = probs.shape
    train = training_split(probs, n)
    print(f"{path}: {n:,} of {len(probs):,} prefixes x {m} models x {v:,}; {os.cpu_count()} CPUs", flush=True)
    np.random.seed(args.seed)
    fit_s, fit_cpu, fit_peak, predictor = timed(lambda: lowrank.fit_lowrank(train))
    print(
        f"  fit: {fit_s:.1f} s (CPU {fit_cpu:.1f} s), peak RssAnon {fit_peak / 2**20:,.0f} MiB; "
        f"epochs {predictor.epochs} (cross-validated: {predictor.cv_scores})",
        flush=True,
    )
    test = load(args.test) if args.test else probs[:n]
    inputs = np.asarray(test[:, :-1])
    predict_s, predict_cpu, _, predicted = timed(lambda: predictor(None, None, None, inputs))
    print(f"  predict {len(test):,} prefixes: {predict_s:.1f} s (CPU {predict_cpu:.1f} s)", flush=True)
    out = {
        "path": str(path),
        "prefixes": n,
        "models": m,
        "vocab_size": v,
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "fit_seconds": fit_s,
        "fit_cpu_seconds": fit_cpu,
        "fit_peak_rss_anon_bytes": fit_peak,
        "epochs": predictor.epochs,
        "weight_decay": predictor.weight_decay,
        "cv_scores": {str(k): value for k, value in predictor.cv_scores.items()},
        "predict_prefixes": len(test),
        "predict_seconds": predict_s,
    }
    if args.test:
        np.random.seed(args.seed)
        pool = fit_loglinear_ce(train)(None, None, None, inputs)
        out.update(test=str(args.test), kl=mean_kl(predicted, test), kl_loglinear_ce=mean_kl(pool, test))
        print(f"  KL(target || lowrank) on {args.test}: {out['kl']:.4f} (loglinear-ce {out['kl_loglinear_ce']:.4f})")
    if args.json and not write_output(args.json, lambda f: f.write(json.dumps(out, indent=1) + "\n")):
        return 1
    return 0


if __name__ == "__main__":
    harness.cli.run(main)
