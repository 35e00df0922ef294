"""Preprocessing memory benchmark: does `preprocess_train.py`'s peak anonymous memory grow with N?

    python3 -m benchmarks.preprocess_memory --num-prefixes 2000 8000 16000 32000
    python3 -m benchmarks.preprocess_memory --num-prefixes 1000 --models suite-0.79m suite-1.5m
    python3 -m benchmarks.preprocess_memory --num-prefixes 2000 --trace traces/      # RssAnon over time, per run
    python3 -m benchmarks.preprocess_memory --num-prefixes 2000 --dataset my_prefixes.txt

For each N it runs `preprocess_train.py --models MODELS --dataset DATASET --num-prefixes N
--device cpu --dtype float32 --no-progress` (plus any arguments after `--`) as a subprocess, with
OMP_NUM_THREADS=MKL_NUM_THREADS=--threads, writing its dataset into a temporary folder that is
deleted after the run, and samples every --interval seconds (default 50 ms), over the process
and its children, from /proc/PID/status:
- RssAnon (summed over the tree), the figure that matters: heap, tensors, Python objects. The
  dataset is written through a file map, whose pages are RssFile (page cache the kernel can drop);
- RssFile (summed), and VmHWM (the largest of the tree), the kernel's peak RSS, anonymous and file
  pages together, for context.
It prints a markdown table (N, wall s, CPU s (user + system), the 1-minute load average as the
run ended (others' work on a shared machine slows wall time), peak RssAnon, peak RssFile, VmHWM,
exit code) and, with --trace DIR, writes each run's samples (seconds, RssAnon, RssFile in bytes)
to DIR/n<N>.csv.

DATASET is a .txt (one prefix per line) or .jsonl file, whose first N prefixes each run takes.
Without --dataset, the prefixes are Wikipedia paragraph openings (`paragraph_openings`) from
../shared/data, written to a temporary file: the Wikipedia builder takes one opening per article,
and the ~6,500 articles there are too few for N = 8,000 or more.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness.cli
from benchmarks.scale import proc_status, process_tree
from harness import InputError
from harness.data.files import check_writable

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def paragraph_openings(n: int, seed: int = 0) -> list[str]:
    """`n` distinct openings of Wikipedia paragraphs (the unseen prefix source, then the corpus):
    the first 10-20 words, as harness.prefixes takes an article's opening, with whitespace runs
    made single spaces (one prefix per line), in a seeded random order, so that every N has the
    same mix of lengths."""
    import numpy as np

    files = [
        SHARED_DATA / "prefix-source" / "wikipedia-en-prefix-source.jsonl",
        *sorted((SHARED_DATA / "corpus").glob("wikipedia-en-*.jsonl")),
    ]
    rng = np.random.default_rng(seed)
    openings: dict[str, None] = {}
    for path in files:
        with open(path) as f:
            for line in f:
                for paragraph in json.loads(line)["text"].split("\n"):
                    words = paragraph.split()
                    if len(words) >= 10:
                        openings.setdefault(" ".join(words[: int(rng.integers(10, 21))]))
    if len(openings) < n:
        raise InputError(f"{SHARED_DATA}: only {len(openings):,} paragraph openings, fewer than {n:,}")
    found = list(openings)
    return [found[i] for i in rng.permutation(len(found))[:n]]


def measure(command: list[str], env: dict[str, str], interval: float, trace: Path | None = None) -> dict:
    """Run `command` in ROOT, sampling its process tree; its peaks, wall and CPU seconds, exit code and
    stderr's tail."""
    samples: list[tuple[float, int, int]] = []
    peak_anon = peak_file = hwm = 0
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL
        )
        try:
            while True:
                # Reaped here, not by Popen, for the CPU time (rusage) of the child and its children.
                pid, wait_status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    child.returncode = os.waitstatus_to_exitcode(wait_status)
                    break
                status = [proc_status(p) for p in process_tree(child.pid)]
                anon = sum(s.get("RssAnon", 0) for s in status)
                file = sum(s.get("RssFile", 0) for s in status)
                peak_anon, peak_file = max(peak_anon, anon), max(peak_file, file)
                hwm = max([hwm, *(s.get("VmHWM", 0) for s in status)])
                samples.append((time.perf_counter() - start, anon, file))
                time.sleep(interval)
        except BaseException:
            child.kill()
            child.wait()
            raise
        wall = time.perf_counter() - start
        err.seek(0)
        stderr_tail = "\n".join(err.read().strip().splitlines()[-5:])
    if trace is not None:
        trace.write_text("seconds,rss_anon,rss_file\n" + "".join(f"{t:.3f},{a},{f}\n" for t, a, f in samples))
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_anon": peak_anon,
        "peak_file": peak_file,
        "hwm": hwm,
        "returncode": child.returncode,
        "load": os.getloadavg()[0],
        "stderr_tail": stderr_tail,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="arguments after -- go to preprocess_train.py"
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        help="a .txt or .jsonl prefix file, whose first N prefixes are used "
        "(default: Wikipedia paragraph openings from ../shared/data)",
    )
    harness.cli.add_num_prefixes(parser, "numbers of prefixes, one run each", nargs="+", required=True)
    parser.add_argument(
        "--models", nargs="+", default=["suite"], help="preprocess_train.py's --models (default: suite)"
    )
    parser.add_argument(
        "--threads", type=harness.cli.positive_int, default=1, help="OMP_NUM_THREADS and MKL_NUM_THREADS (default 1)"
    )
    parser.add_argument(
        "--interval", type=harness.cli.positive_float, default=0.05, help="seconds between samples (default 0.05)"
    )
    parser.add_argument("--trace", type=Path, help="folder for each run's samples (n<N>.csv)")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "HF_HUB_OFFLINE": "1",
    }
    if args.trace:
        check_writable(args.trace, folder=True)
    scratch = Path(tempfile.mkdtemp(prefix="preprocess-memory-"))
    try:
        if args.dataset is None:
            dataset = scratch / "wikipedia-paragraph-openings.txt"
            dataset.write_text("\n".join(paragraph_openings(max(args.num_prefixes))) + "\n")
        else:
            dataset = args.dataset.resolve()
        rows = runs(args, extra, dataset, scratch, env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(args, dataset.name, rows)
    return max((run["returncode"] != 0 for _, run in rows), default=0)


def runs(
    args: argparse.Namespace, extra: list[str], dataset: Path, scratch: Path, env: dict[str, str]
) -> list[tuple[int, dict]]:
    """One measured preprocess_train.py run per N (with the `extra` arguments), each writing into
    `scratch`/out, emptied after it."""
    rows = []
    for n in args.num_prefixes:
        out_dir = scratch / "out"
        out_dir.mkdir()
        try:
            command = [
                sys.executable,
                str(ROOT / "preprocess_train.py"),
                "--models",
                *args.models,
                "--dataset",
                str(dataset),
                "--num-prefixes",
                str(n),
                "--out",
                str(out_dir / "data.pkl"),
                "--device",
                "cpu",
                "--dtype",
                "float32",
                "--no-progress",
                *extra,
            ]
            run = measure(command, env, args.interval, args.trace / f"n{n}.csv" if args.trace else None)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        rows.append((n, run))
        print(
            f"N = {n:,}: {run['wall']:.1f} s (CPU {run['cpu']:.1f} s), peak RssAnon "
            f"{run['peak_anon'] / 1e6:,.0f} MB, exit {run['returncode']}",
            file=sys.stderr,
            flush=True,
        )
        if run["returncode"]:
            print(run["stderr_tail"], file=sys.stderr)
    return rows


def print_table(args: argparse.Namespace, dataset_name: str, rows: list[tuple[int, dict]]) -> None:
    mb = lambda b: f"{b / 1e6:,.0f} MB"
    print(
        f"\n`--models {' '.join(args.models)}`, {dataset_name}, {args.threads} thread(s), sampled every "
        f"{args.interval * 1000:.0f} ms\n"
    )
    print("| N | wall s | CPU s | load | peak RssAnon | peak RssFile | VmHWM | exit |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, run in rows:
        print(
            f"| {n:,} | {run['wall']:.1f} | {run['cpu']:.1f} | {run['load']:.1f} | {mb(run['peak_anon'])} "
            f"| {mb(run['peak_file'])} | {mb(run['hwm'])} | {run['returncode']} |"
        )


if __name__ == "__main__":
    harness.cli.run(main)
