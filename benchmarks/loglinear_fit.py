"""The `loglinear` and `loglinear-ce` fits at Pythia's vocabulary: time and peak anonymous memory,
streamed vs whole-array.

    python3 -m benchmarks.loglinear_fit --num-prefixes 800 --old d194e7a    # time both, side by side
    python3 -m benchmarks.loglinear_fit --num-prefixes 1000 3000 --memory   # peak RssAnon of a streamed fit
    python3 -m benchmarks.loglinear_fit --dataset data/wikipedia-train.pkl   # a dataset's prefixes instead

A synthetic N x 7 x V float16 dataset (softmax of scaled Gaussian logits, so each distribution is
peaked like a language model's; the target is the 7th model) is written once to a .npy file in
--dir, then memory-mapped, so a fit reads only its chunks (`TrainingSplit.chunks()`). `--old REV`
also times `fit_weights` as it was at git revision REV (the whole-array fit, which reads every
training prefix into memory as float32; top-1 objective only). `--objective` picks the fits:
`top1` (`loglinear`) and `distribution` (`loglinear-ce`), both by default. `--dataset` reads a
dataset file's first N prefixes (all by default; its last model the target) instead of the
synthetic file. Each timing is the best of --repeat runs (other processes share the machine).
Memory runs each fit in a fresh process, sampling RssAnon from /proc/PID/status (file-backed pages
of the memory map are page cache and do not count).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

import harness.cli
from harness.data.dataset import load_dataset
from harness.data.files import check_writable
from harness.scoring.learned import TrainingSplit, chunk_prefixes
from strategies import loglinear

ROOT = Path(__file__).resolve().parent.parent

VOCAB, MODELS = 50_277, 7


def synthetic(path: Path, prefixes: int, vocab: int = VOCAB, seed: int = 0) -> Path:
    """At least N x 7 x vocab float16 probabilities in a .npy file, written a few prefixes at a time
    (a file with more rows is kept: its first N rows are the same).

    Six input models (softmax of Gaussian logits, partly shared, larger models sharper) and a target
    whose logits are a noisy log-linear pool of theirs with uneven weights, like the bundled
    wikipedia data's fit, so that Newton's method takes as many steps as it does there (8)."""
    if path.exists() and np.load(path, mmap_mode="r").shape[0] >= prefixes:
        return path
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(prefixes, MODELS, vocab))
    rng = np.random.default_rng(seed)
    scale = np.linspace(2.0, 4.0, MODELS - 1, dtype=np.float32)[None, :, None]
    pool = np.array([-0.1, -0.2, 0.45, 0.6, 0.7, 1.6], dtype=np.float32)
    for start in range(0, prefixes, 50):
        rows = len(range(start, min(start + 50, prefixes)))
        shared = rng.standard_normal((rows, 1, vocab), dtype=np.float32)
        logits = np.empty((rows, MODELS, vocab), dtype=np.float32)
        logits[:, :-1] = (shared + rng.standard_normal((rows, MODELS - 1, vocab), dtype=np.float32)) * scale
        logits[:, -1] = pool @ logits[:, :-1] + 2 * rng.standard_normal((rows, vocab), dtype=np.float32)
        logits -= logits.max(axis=2, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=2, keepdims=True)
        out[start : start + rows] = probs
    out.flush()
    del out
    return path


def load(path: Path) -> np.ndarray:
    """The (N, M, V) float16 probabilities of a .npy file or a dataset pickle, memory-mapped."""
    return np.load(path, mmap_mode="r") if path.suffix == ".npy" else load_dataset(path).probs


def training_split(probs: np.ndarray, prefixes: int) -> TrainingSplit:
    """The first `prefixes` rows of `probs` (N, M, V): the last model the target, the others the inputs."""
    m = probs.shape[1]
    top1 = np.concatenate(
        [probs[start : min(start + 200, prefixes), m - 1].argmax(axis=1) for start in range(0, prefixes, 200)]
    )
    return TrainingSplit(
        [f"prefix {i}" for i in range(prefixes)],
        [f"model{j}" for j in range(m - 1)],
        "target",
        probs,
        np.arange(prefixes),
        range(m - 1),
        m - 1,
        top1,
    )


def old_fit(rev: str):
    """`fit_weights(probs, target_top1)` from strategies/loglinear.py at git revision `rev`."""
    source = subprocess.run(
        ["git", "show", f"{rev}:strategies/loglinear.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    namespace: dict = {}
    exec(source.replace("from strategies import register", "register = lambda *a, **k: (lambda f: f)"), namespace)
    return namespace["fit_weights"]


def best_time(fn, repeat: int) -> tuple[float, float, object]:
    """The best wall time of `repeat` calls, the CPU time (all threads) of that call, and its result."""
    best, cpu, result = float("inf"), 0.0, None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        if time.perf_counter() - start < best:
            best, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return best, cpu, result


def peak_rss_anon(fn) -> tuple[int, object]:
    """Run fn() while sampling this process's RssAnon; (peak bytes, fn's result)."""
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    peak[0] = max(peak[0], int(line.split()[1]) * 1024)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn()
    finally:
        done.set()
        sampler.join()
    return peak[0], result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.cli.add_num_prefixes(
        parser, "the first N prefixes, one fit each (default: 800, or a --dataset's every prefix)", nargs="+"
    )
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="where the synthetic .npy file goes")
    parser.add_argument("--dataset", type=Path, help="fit on this dataset file's prefixes instead")
    parser.add_argument("--objective", nargs="+", choices=("top1", "distribution"), default=["top1", "distribution"])
    parser.add_argument("--old", metavar="REV", help="also time the whole-array fit at this git revision")
    parser.add_argument(
        "--repeat", type=harness.cli.positive_int, default=3, help="timings per fit, the best kept (default: 3)"
    )
    parser.add_argument("--memory", action="store_true", help="peak RssAnon of a streamed fit, one process each")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # the file to measure a fit on
    args = parser.parse_args(argv)
    if args.dataset is None:
        check_writable(args.dir, folder=True)

    if args.child:  # one memory measurement in this fresh process
        probs = load(args.child)
        train = training_split(probs, args.num_prefixes[0])
        baseline, _ = peak_rss_anon(lambda: time.sleep(0.1))
        peak, weights = peak_rss_anon(
            lambda: loglinear.fit_weights(train.chunks, probs.shape[1] - 1, objective=args.objective[0])
        )
        print(baseline, peak)
        return 0
    if args.dataset:
        path, probs = args.dataset, load(args.dataset)
    else:
        path = synthetic(args.dir / f"loglinear-bench-{MODELS}x{VOCAB}.npy", max(args.num_prefixes or [800]))
        probs = load(path)
    n_all, m, v = probs.shape
    print(f"{path}: {n_all:,} x {m} x {v:,} float16; chunks of {chunk_prefixes(m, v)} prefixes", flush=True)
    for n in args.num_prefixes or [n_all if args.dataset else 800]:
        n = min(n, n_all)
        for objective in args.objective:
            fit = f"{objective} fit"
            if args.memory:
                baseline, peak = map(
                    int,
                    subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "benchmarks.loglinear_fit",
                            "--child",
                            str(path),
                            "--num-prefixes",
                            str(n),
                            "--objective",
                            objective,
                        ],
                        cwd=ROOT,
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout.split(),
                )
                print(
                    f"  N = {n:>6,}: streamed {fit:16} peak RssAnon {peak / 2**20:,.0f} MiB "
                    f"(the process before the fit: {baseline / 2**20:,.0f} MiB)",
                    flush=True,
                )
                continue
            train = training_split(probs, n)
            seconds, cpu, weights = best_time(
                lambda: loglinear.fit_weights(train.chunks, m - 1, objective=objective), args.repeat
            )
            print(
                f"  N = {n:>6,}: streamed {fit:16} {seconds * 1000 / n:5.1f} s per 1,000 prefixes "
                f"(CPU {cpu * 1000 / n:5.1f} s)  w = {np.round(weights, 4)}",
                flush=True,
            )
            if args.old and objective == "top1":
                old = old_fit(args.old)
                seconds, cpu, old_weights = best_time(
                    lambda: old(train.probs_per_sentences, train.target_top1), args.repeat
                )
                print(
                    f"  N = {n:>6,}: {args.old} fit {seconds * 1000 / n:5.1f} s per 1,000 prefixes (CPU {cpu * 1000 / n:5.1f} s)"
                    f"  w = {np.round(old_weights, 4)}; max relative difference "
                    f"{np.abs(weights - old_weights).max() / np.abs(old_weights).max():.1e}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    harness.cli.run(main)
