"""Score next-token strategies: how often does a strategy, given only the smaller models'
distributions after a prefix, guess the token that the target (largest) model ranks first?

    python challenge.py                                  # every strategy, every dataset in data/
    python challenge.py --strategy mine.py:my_strategy   # your function, from your own file
    python challenge.py --list                           # the registered strategies

Needs numpy only (and `tokenizers` for strategies that want token strings); no torch,
transformers or network.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from harness import InputError
from harness.dataset_io import atomic_write, load_dataset
from harness.scoring import (StrategyError, bootstrap_ci, check_guesses, describe_exception, input_model_reach,
                             top1, top1_ties)
from strategies import REGISTRY, load_builtin, load_from_file, register  # noqa: F401 (register: for the block below)

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_DATASETS = ("wikipedia.pkl", "glue-rte.pkl")

##############################################
# Define strategies (add your own here!)
# A function registered here is scored with the built-in ones, for example:
#
# @register("geometric", "argmax of the geometric mean of the input models")
# def geometric(sentences, model_names, target_model_name, probs_per_sentences):
#     return np.log(probs_per_sentences.astype(np.float32) + 1e-9).sum(axis=1).argmax(axis=1)
##############################################


def score_dataset(path: Path, strategies: list, target: str | None, num_samples: int | None,
                  seed: int, predictions: list | None, debug: bool = False) -> dict:
    """Every strategy's top-1 agreement with the target on one dataset."""
    dataset = load_dataset(path)
    names = dataset.model_names
    t = len(names) - 1 if target is None else find_model(names, target, path)
    target = names[t]
    input_names = names[:t] + names[t + 1:]
    n = min(num_samples or len(dataset.sentences), len(dataset.sentences))
    if num_samples is not None and num_samples > n:
        print(f"warning: {path}: --num-samples {num_samples}, but it has only {n} {plural(n, 'prefix', 'prefixes')}; "
              f"scoring {n}", file=sys.stderr)
    sentences = dataset.sentences[:n]
    top1_per_model = top1(dataset.probs[:n])  # one pass over the contiguous array: no copy
    target_top1 = top1_per_model[:, t]
    reach = input_model_reach(np.delete(top1_per_model, t, axis=1), target_top1)
    # Tokens tying the target's top-1 in float16: the first still counts (the original metric),
    # and the counts below tell a reader how often that choice mattered.
    tie_rows, tie_tokens = top1_ties(dataset.probs[:n, t], target_top1)
    # Strategies get a read-only view of the input models (no copy when the target is last, as in
    # every dataset the project writes): a strategy that writes into its input fails alone instead
    # of changing what every later strategy sees. The target's probabilities are blanked first, so
    # no strategy can reach them through the view's base array, which is read-only too (so no
    # view of it can be made writeable again).
    if not dataset.probs.flags.writeable:  # a read-only array pickled with protocol 5 loads read-only
        dataset.probs = dataset.probs.copy()
    dataset.probs[:, t] = 0
    dataset.probs.flags.writeable = False
    inputs = dataset.probs[:n, :-1] if t == len(names) - 1 else np.delete(dataset.probs[:n], t, axis=1)
    inputs.flags.writeable = False

    rows = []
    for strategy in strategies:
        random.seed(seed)
        np.random.seed(seed)
        start = time.perf_counter()
        try:
            # Each strategy gets its own lists and its own view: nothing it changes reaches the next one.
            returned = strategy.fn(list(sentences), list(input_names), target, inputs.view())
            guesses = check_guesses(returned, n, dataset.vocab_size)
        except StrategyError as e:
            rows.append({"name": strategy.name, "error": str(e)})
            continue
        except Exception as e:  # a researcher's strategy may fail in any way: report it, score the rest
            rows.append({"name": strategy.name, "error": describe_exception(e, strategy.fn)})
            if debug:
                print(f"{strategy.name} on {path}:", file=sys.stderr)
                traceback.print_exception(e)
            continue
        seconds = time.perf_counter() - start
        correct = guesses == target_top1
        low, high = bootstrap_ci(correct, seed=seed)
        rows.append({"name": strategy.name, "accuracy": float(correct.mean()), "correct": int(correct.sum()),
                     "n": n, "ci95": [low, high], "seconds": seconds,
                     "tied_misses": int((guesses[tie_rows] == tie_tokens).sum())})
        if predictions is not None:
            predictions += [{"dataset": str(path), "strategy": strategy.name, "index": i, "sentence": sentences[i],
                             "guess": int(guesses[i]), "target_top1": int(target_top1[i]),
                             "correct": bool(correct[i])} for i in range(n)]
    return {"path": str(path), "target": target, "inputs": input_names, "n": n,
            "vocab_size": dataset.vocab_size, "input_model_reach": reach,
            "tied_targets": len(np.unique(tie_rows)), "strategies": rows}


def find_model(names: list[str], wanted: str, path: Path) -> int:
    """Index of a model given by its full name or by its last path component (`suite-1.5m`)."""
    if wanted in names:
        return names.index(wanted)
    matches = [i for i, name in enumerate(names) if name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] == wanted]
    if len(matches) > 1:
        raise InputError(f"{path}: model {wanted!r} is ambiguous: it matches {', '.join(names[i] for i in matches)}")
    if not matches:
        raise InputError(f"{path}: no model {wanted!r} (models: {', '.join(names)})")
    return matches[0]


def plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def print_leaderboard(result: dict) -> None:
    reach, n, num_inputs = result["input_model_reach"], result["n"], len(result["inputs"])
    print(f"\n{result['path']}: {n} {plural(n, 'prefix', 'prefixes')}, {num_inputs} input "
          f"{plural(num_inputs, 'model', 'models')}, target {result['target']}, vocabulary {result['vocab_size']}")
    width = max(24, *(len(row["name"]) for row in result["strategies"]))
    print(f"  {'strategy':<{width}} {'top-1':>7}  {'95% CI':<17} {'n':>6} {'seconds':>8}")
    ranked = sorted(result["strategies"], key=lambda r: -r.get("accuracy", -1))
    for row in ranked:
        if "error" in row:
            print(f"  {row['name']:<{width}} error: {row['error']}")
        else:
            low, high = row["ci95"]
            print(f"  {row['name']:<{width}} {row['accuracy']:>7.3f}  [{low:.3f}, {high:.3f}]   "
                  f"{row['n']:>6} {row['seconds']:>8.3f}")
    print(f"  the target's top-1 is the top-1 of some input model for {reach['some_input_model']:.1%} "
          f"of prefixes (the best picking one model per prefix can reach), of none for {reach['no_input_model']:.1%}")
    tied = result["tied_targets"]
    if tied:
        misses = [f"{row['name']} {row['tied_misses']}" for row in ranked if row.get("tied_misses")]
        print(f"  the target's top-1 is a float16 tie for {tied} {plural(tied, 'prefix', 'prefixes')}: the first "
              f"tied token counts as its top-1; guesses of another tied token, scored wrong: "
              f"{', '.join(misses) or 'none'}")


def resolve_strategies(requested: list[str] | None) -> list:
    load_builtin()
    if not requested:
        return list(REGISTRY.values())
    chosen = []
    for name in requested:
        if name.endswith(".py") or ".py:" in name:
            chosen.append(load_from_file(name))
        elif name in REGISTRY:
            chosen.append(REGISTRY[name])
        else:
            raise ValueError(f"unknown strategy {name!r} (registered: {', '.join(REGISTRY)}; "
                             "or give path/to/file.py:function)")
    return chosen


def default_datasets() -> list[Path]:
    found = sorted(DATA_DIR.glob("*.pkl"))
    if not found:
        missing = " and ".join(str(DATA_DIR / name) for name in DEFAULT_DATASETS)
        raise InputError(f"no dataset: {missing} are missing. Build one with `python preprocess_train.py "
                         "--dataset wikipedia --out data/wikipedia.pkl` (see README.md), or copy the original "
                         "challenge's wikipedia.pkl / glue-rte.pkl into data/")
    return found


def check_output_path(path: Path) -> None:
    """Fail now, before any scoring, if `path` cannot be written: create its folder, try a file beside it."""
    try:
        if path.is_dir():
            raise InputError(f"{path}: is a folder; give a file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
        probe.open("w").close()
        probe.unlink()
    except OSError as e:
        in_the_way = f": {e.filename}" if e.filename and Path(e.filename) != path else ""
        raise InputError(f"{path}: cannot be written ({e.strerror or type(e).__name__}{in_the_way})") from None


def write_output(path: Path, write) -> bool:
    """Write one output file atomically; False (and a one-line error) if the disk refuses it."""
    try:
        atomic_write(path, write, mode="w")
        return True
    except OSError as e:
        print(f"error: {path}: cannot be written ({e.strerror or type(e).__name__}); nothing was written",
              file=sys.stderr)
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", type=Path, help="dataset pickle (repeatable; default: data/*.pkl)")
    parser.add_argument("--strategy", action="append", help="registered name or path/to/file.py:function (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the registered strategies and exit")
    parser.add_argument("--num-samples", type=int, help="score on the first N prefixes only")
    parser.add_argument("--seed", type=int, default=0, help="seeds random/numpy before each strategy and the bootstrap")
    parser.add_argument("--target", help="model whose top-1 is predicted (default: the last); the others are inputs")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument("--predictions", type=Path, help="write per-prefix guesses as CSV")
    parser.add_argument("--debug", action="store_true", help="print the full traceback of a strategy that raises")
    args = parser.parse_args(argv)

    try:
        strategies = resolve_strategies(args.strategy)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.list:
        for strategy in strategies:
            print(f"{strategy.name:<24} {strategy.description}")
        return 0
    if args.num_samples is not None and args.num_samples < 1:
        parser.error("--num-samples must be at least 1")
    try:
        for path in (args.json, args.predictions):
            if path is not None:
                check_output_path(path)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    failed = False
    results, predictions = [], [] if args.predictions else None
    try:
        datasets = args.dataset or default_datasets()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in datasets:
        try:
            result = score_dataset(path, strategies, args.target, args.num_samples, args.seed, predictions, args.debug)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            results.append({"path": str(path), "error": str(e)})
            failed = True
            continue
        print_leaderboard(result)
        results.append(result)
        failed |= any("error" in row for row in result["strategies"])

    if args.json:
        failed |= not write_output(args.json, lambda f: json.dump({"seed": args.seed, "datasets": results}, f, indent=2))
    if args.predictions:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, ["dataset", "strategy", "index", "sentence", "guess", "target_top1", "correct"])
        writer.writeheader()
        writer.writerows(predictions)
        failed |= not write_output(args.predictions, lambda f: f.write(buffer.getvalue()))
    return 1 if failed else 0


if __name__ == "__main__":
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `challenge.py | head` ends quietly
    sys.exit(main())
