"""Scale benchmark: `challenge.py`, run as a user runs it, on synthetic N x 7 x 50,277 datasets.

    python3 -m benchmarks.scale 1000 10000                 # or: python3 -m benchmarks.bench --mode scale
    python3 -m benchmarks.scale 1000 --repeat 2 --out scale.md

For each N it writes a dataset with `benchmarks.make_dataset` (or reuses one that an earlier
`--keep` run left in --dir), runs `python3 challenge.py --dataset FILE` with every built-in
strategy that needs numpy alone (not `lowrank`, which `benchmarks.lowrank_fit` times; and
`--no-progress` where challenge.py has it) as a subprocess, and measures:
- wall time, start to exit, and CPU time (user + system), which others' work on a shared
  machine disturbs less; the load average as each run ended says how busy the machine was;
- peak anonymous resident memory, the benchmark's memory figure: `RssAnon` of /proc/PID/status,
  summed over the process and its children, sampled every --interval seconds. File-backed pages
  (a memory-mapped dataset) are page cache, which the kernel drops under pressure, so they do not
  count; a sampler can miss a spike shorter than the interval;
- for context, peak `RssFile` (sampled the same way) and the peak RSS the kernel recorded
  (`ru_maxrss`, that is VmHWM: anonymous and file pages together);
- each strategy's seconds, from `--json`.

It never imports challenge.py: it measures the script itself. Files it generates are deleted
after their runs unless --keep (a file it reused is left as it was found).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

import harness.cli
from benchmarks.make_dataset import PYTHIA, VOCAB_SIZE, write_dataset
from harness import InputError
from harness.cli import non_negative_float, positive_float, positive_int
from harness.data.files import check_writable

ROOT = Path(__file__).resolve().parents[1]

STATUS_FIELDS = ("RssAnon", "RssFile", "VmHWM")


@dataclass
class Run:
    prefixes: int
    file_bytes: int
    wall_s: float
    cpu_s: float  # user + system seconds of the child and its waited-for children
    peak_anon: int  # bytes, RssAnon summed over the process tree, sampled
    peak_file: int  # bytes, RssFile summed over the process tree, sampled
    max_rss: int  # bytes, the kernel's ru_maxrss (VmHWM) of the child and its waited-for children
    returncode: int
    load: float = 0.0  # the machine's 1-minute load average as the run ended (others' work slows wall time)
    strategy_seconds: dict[str, float] = field(default_factory=dict)
    stderr_tail: str = ""


def proc_status(pid: int) -> dict[str, int]:
    """STATUS_FIELDS of /proc/PID/status in bytes ({} once the process is gone; a zombie has none)."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in STATUS_FIELDS:
                    values[key] = int(rest.split()[0]) * 1024  # "kB"
    except (FileNotFoundError, ProcessLookupError):
        pass
    return values


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc/PID/task/TID/children."""
    tree, todo = [], [pid]
    while todo:
        parent = todo.pop()
        tree.append(parent)
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    todo.extend(int(child) for child in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return tree


def measure(command: list[str], interval: float = 0.05, cwd: Path = ROOT) -> tuple[Run, str]:
    """Run `command`, sampling its memory; return the Run (prefixes and file size left 0) and its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        peak_anon = peak_file = 0
        try:
            while True:
                # Reaped here, not by Popen, for the kernel's peak RSS (rusage) of the child.
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    wall = time.perf_counter() - start
                    child.returncode = os.waitstatus_to_exitcode(status)
                    break
                samples = [proc_status(p) for p in process_tree(child.pid)]
                peak_anon = max(peak_anon, sum(s.get("RssAnon", 0) for s in samples))
                peak_file = max(peak_file, sum(s.get("RssFile", 0) for s in samples))
                time.sleep(interval)
        except BaseException:
            child.kill()
            child.wait()
            raise
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    run = Run(
        0,
        0,
        wall,
        usage.ru_utime + usage.ru_stime,
        peak_anon,
        peak_file,
        usage.ru_maxrss * 1024,
        child.returncode,
        os.getloadavg()[0],
        stderr_tail="\n".join(stderr.strip().splitlines()[-5:]),
    )
    return run, stdout


def numpy_strategies() -> list[str]:
    """Every built-in strategy that needs numpy alone: `lowrank` (its fit needs torch, and at Pythia's
    vocabulary it is GPU-sized work; `benchmarks.lowrank_fit` times it) is left out."""
    from strategies import load_builtin

    return [name for name, strategy in load_builtin().items() if not getattr(strategy.fn, "requires", ())]


def challenge_command(dataset: Path, json_path: Path, extra: list[str]) -> list[str]:
    """challenge.py on `dataset` with every built-in numpy strategy (`numpy_strategies`; --strategy in
    `extra` names others), writing --json; with --no-progress where this version of challenge.py has it."""
    script = ROOT / "challenge.py"
    help_text = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    progress = ["--no-progress"] if "--no-progress" in help_text else []
    chosen = [] if "--strategy" in extra else [arg for name in numpy_strategies() for arg in ("--strategy", name)]
    return [
        sys.executable,
        str(script),
        "--dataset",
        str(dataset),
        "--json",
        str(json_path),
        *progress,
        *chosen,
        *extra,
    ]


def strategy_seconds(json_path: Path, stdout: str) -> dict[str, float]:
    """{strategy: seconds} from challenge.py's --json; failing that, from the leaderboard's
    `seconds` column (columns are two or more spaces apart)."""
    try:
        results = json.loads(json_path.read_text())
        seconds = {
            row["name"]: float(row["seconds"]) for dataset in results["datasets"] for row in dataset["strategies"]
        }
        if seconds:
            return seconds
    except (OSError, ValueError, KeyError, TypeError):
        pass
    seconds, column = {}, None
    for line in stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if column is None:
            column = cells.index("seconds") if "strategy" in cells and "seconds" in cells else None
        elif len(cells) > column:
            try:
                seconds[cells[0]] = float(cells[column])
            except ValueError:
                pass
        else:
            column = None  # the leaderboard ended
    return seconds


def reusable(prefixes: int, folder: Path, seed: int) -> bool:
    """Whether `folder` holds a finished N-prefix dataset with these settings: the writer fills a
    temporary file and renames it after its sidecar, so a killed run leaves no file under this
    name; the sidecar's settings and size must match (the SHA-256 is not re-checked)."""
    path = folder / f"synthetic-{prefixes}-seed{seed}.pkl"
    try:
        record = json.loads(path.with_suffix(".json").read_text())
        return (
            record.get("synthetic")
            == {"generator": "benchmarks/make_dataset.py", "prefixes": prefixes, "vocab_size": VOCAB_SIZE, "seed": seed}
            and record["pickle"]["bytes"] == path.stat().st_size
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def dataset_for(prefixes: int, folder: Path, seed: int) -> tuple[Path, float | None]:
    """The N-prefix dataset in `folder`: reused if `reusable`, else written. Returns its path and the
    seconds writing took (None when reused)."""
    path = folder / f"synthetic-{prefixes}-seed{seed}.pkl"
    if reusable(prefixes, folder, seed):
        return path, None
    start = time.perf_counter()
    write_dataset(path, prefixes, seed)
    return path, time.perf_counter() - start


def available_memory() -> int:
    """MemAvailable of /proc/meminfo, in bytes."""
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))


def wait_for_memory(need: float, timeout: float) -> None:
    """Wait until `need` bytes are available (other work on a shared machine), at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while (free := available_memory()) < need:
        if time.monotonic() > deadline:
            raise InputError(
                f"only {free / 1e9:.1f} GB available after waiting {timeout:.0f} s "
                f"(--min-available {need / 1e9:.1f} GB)"
            )
        print(f"scale: {free / 1e9:.1f} GB available, waiting for {need / 1e9:.1f} GB", file=sys.stderr, flush=True)
        time.sleep(15)


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def tables(runs: list[Run], generated: dict[int, float | None]) -> list[str]:
    """The markdown: one row per run; then each strategy's seconds per run."""
    lines = [
        "| prefixes | file | run | wall s | CPU s | load | peak RssAnon | RssAnon / file | peak RssFile | "
        "peak RSS (VmHWM) | exit |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r, i in _numbered(runs):
        lines.append(
            f"| {r.prefixes:,} | {gb(r.file_bytes)} | {i} | {r.wall_s:.1f} | {r.cpu_s:.1f} | {r.load:.1f} | "
            f"{gb(r.peak_anon)} | {r.peak_anon / r.file_bytes:.2f}x | {gb(r.peak_file)} | {gb(r.max_rss)} | "
            f"{r.returncode} |"
        )
    names = list(dict.fromkeys(name for r in runs for name in r.strategy_seconds))
    if names:
        lines += [
            "",
            "Seconds per strategy (challenge.py's `seconds` column):",
            "",
            "| strategy | " + " | ".join(f"N={r.prefixes:,} #{i}" for r, i in _numbered(runs)) + " |",
            "| --- |" + " ---: |" * len(runs),
        ]
        for name in names:
            cells = [f"{r.strategy_seconds[name]:.2f}" if name in r.strategy_seconds else "-" for r in runs]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    made = [f"{n:,}: {s:.0f} s" for n, s in generated.items() if s is not None]
    if made:
        lines += ["", "Generating the datasets (benchmarks.make_dataset): " + "; ".join(made)]
    return lines


def _numbered(runs: list[Run]) -> list[tuple[Run, int]]:
    counts: dict[int, int] = {}
    numbered = []
    for r in runs:
        counts[r.prefixes] = counts.get(r.prefixes, 0) + 1
        numbered.append((r, counts[r.prefixes]))
    return numbered


def describe_machine() -> str:
    git = lambda *args: subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    commit = (
        f"{git('describe', '--always', '--dirty') or 'unknown'} (challenge.py last changed in "
        f"{git('log', '-1', '--format=%h', '--', 'challenge.py') or 'unknown'})"
    )
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1]) * 1024
    return (
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), {total / 2**30:.0f} GiB; "
        f"Python {platform.python_version()}, numpy {np.__version__}; {date.today()}; checkout {commit}"
    )


# Seconds per 1,000 prefixes on the quiet 2-core machine (benchmarks/RESULTS.md): writing a dataset,
# and one challenge.py run with the default strategies. Time is linear in N; the estimate is printed first.
WRITE_SECONDS_PER_1000 = 8
RUN_SECONDS_PER_1000 = 35


def expected_seconds(prefixes: int, repeat: int, reused: bool) -> float:
    """About how long one N takes on the 2-core machine: writing its file (unless reused) and the runs."""
    return prefixes / 1000 * ((0 if reused else WRITE_SECONDS_PER_1000) + repeat * RUN_SECONDS_PER_1000)


def run_scale(
    prefix_counts: list[int],
    folder: Path,
    repeat: int = 1,
    seed: int = 0,
    keep: bool = False,
    interval: float = 0.05,
    min_available: float = 0,
    wait: float = 1800,
    extra: list[str] | None = None,
) -> list[str]:
    """Measure challenge.py at each N (see the module docstring); return the markdown lines."""
    lines = [
        describe_machine(),
        f"Datasets: N x {len(PYTHIA)} x {VOCAB_SIZE:,} float16, benchmarks.make_dataset seed {seed}; "
        f"memory sampled every {interval * 1000:.0f} ms",
    ]
    print("\n".join(lines), flush=True)
    runs, generated = [], {}
    for prefixes in prefix_counts:
        reused = reusable(prefixes, folder, seed)
        print(
            f"N={prefixes:,}: expect about {expected_seconds(prefixes, repeat, reused) / 60:.0f} min on 2 cores ("
            + ("reusing the file, " if reused else f"writing {prefixes * len(PYTHIA) * VOCAB_SIZE * 2 / 1e9:.1f} GB, ")
            + f"{repeat} {'run' if repeat == 1 else 'runs'})",
            file=sys.stderr,
            flush=True,
        )
        path, generated[prefixes] = dataset_for(prefixes, folder, seed)
        try:
            file_bytes = path.stat().st_size
            for i in range(repeat):
                wait_for_memory(min_available, wait)
                with tempfile.TemporaryDirectory() as tmp:
                    json_path = Path(tmp) / "results.json"
                    run, stdout = measure(challenge_command(path, json_path, extra or []), interval)
                    run.prefixes, run.file_bytes = prefixes, file_bytes
                    run.strategy_seconds = strategy_seconds(json_path, stdout)
                print(stdout, end="", file=sys.stderr)
                runs.append(run)
                print(
                    f"N={prefixes:,} run {i + 1}: {run.wall_s:.1f} s (CPU {run.cpu_s:.1f} s, load {run.load:.1f}), "
                    f"peak RssAnon {gb(run.peak_anon)}, peak RssFile {gb(run.peak_file)}, VmHWM {gb(run.max_rss)}, "
                    f"exit {run.returncode}" + (f"\n{run.stderr_tail}" if run.returncode else ""),
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            if generated[prefixes] is not None and not keep:
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
    table = tables(runs, generated)
    print("\n" + "\n".join(table), flush=True)
    return lines + [""] + table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The scale benchmark's options (shared with bench.py --mode scale)."""
    parser.add_argument(
        "--dir", type=Path, default=ROOT / "build" / "scale", help="where datasets are written (default: build/scale)"
    )
    parser.add_argument("--repeat", type=positive_int, default=1, help="runs of challenge.py per N (default 1)")
    harness.cli.add_seed(parser, "the generator's seed")
    parser.add_argument("--keep", action="store_true", help="keep the generated datasets (reused by a later run)")
    parser.add_argument(
        "--interval", type=positive_float, default=0.05, help="memory sampling interval, s (default 0.05)"
    )
    parser.add_argument(
        "--min-available",
        type=non_negative_float,
        default=0,
        metavar="GB",
        help="before each run, wait until this much memory is available (a shared machine)",
    )
    parser.add_argument("--challenge-args", default="", help="more arguments for challenge.py, one string")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "prefixes",
        type=positive_int,
        nargs="*",
        default=[1000, 10000],
        metavar="N",
        help="numbers of prefixes, one dataset each (default: 1000 10000)",
    )
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.out:
        check_writable(args.out)
    lines = scale_from_args(args, args.prefixes)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


def scale_from_args(args: argparse.Namespace, prefix_counts: list[int]) -> list[str]:
    return run_scale(
        prefix_counts,
        args.dir,
        args.repeat,
        args.seed,
        args.keep,
        args.interval,
        args.min_available * 1e9,
        extra=shlex.split(args.challenge_args),
    )


if __name__ == "__main__":
    harness.cli.run(main)
