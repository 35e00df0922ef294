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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import InputError
from harness.dataset_io import atomic_write, load_dataset, model_sizes
from harness.learned import (TrainingSplit, check_disjoint, cross_validated_guesses, fit_and_predict, read_only,
                             training_split)
from harness.report import check_report_dir, write_report
from harness.scoring import (StrategyError, bootstrap_ci, check_guesses, describe_exception, input_model_reach,
                             top1, top1_ties)
from strategies import REGISTRY, ModelName, learned, load_builtin, load_from_file, register  # noqa: F401 (for the block below)

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


@dataclass
class Split:
    """One dataset as scoring sees it: the first n prefixes, the input models, the target's top-1."""
    path: Path
    sentences: list[str]
    input_names: list[ModelName]  # each carries its size from the sidecar (strategies/template.py)
    target: str
    inputs: np.ndarray            # (n, input models, V), read-only, with the target blanked in its base
    target_top1: np.ndarray
    target_probs: np.ndarray | None  # kept only where a learned strategy may fit on this file
    vocab_size: int


def load_split(path: Path, target: str | None, num_samples: int | None, keep_target_probs: bool) -> tuple[Split, dict]:
    """Load one dataset for scoring, and what the leaderboard reports about it."""
    dataset = load_dataset(path)
    names = dataset.model_names
    t = len(names) - 1 if target is None else find_model(names, target, path)
    n = min(num_samples or len(dataset.sentences), len(dataset.sentences))
    if num_samples is not None and num_samples > n:
        print(f"warning: {path}: --num-samples {num_samples}, but it has only {n} {plural(n, 'prefix', 'prefixes')}; "
              f"scoring {n}", file=sys.stderr)
    sizes = model_sizes(dataset)
    input_names = [ModelName(name, **sizes.get(name, {})) for name in names[:t] + names[t + 1:]]
    top1_per_model = top1(dataset.probs[:n])  # one pass over the contiguous array: no copy
    target_top1 = top1_per_model[:, t]
    # Tokens tying the target's top-1 in float16: the first still counts (the original metric),
    # and the counts below tell a reader how often that choice mattered.
    tie_rows, tie_tokens = top1_ties(dataset.probs[:n, t], target_top1)
    # A learned strategy's fit may see the target of the prefixes it trains on: a copy, handed
    # only to fit steps (never to a prediction), taken before the target is blanked below.
    target_probs = dataset.probs[:n, t].copy() if keep_target_probs else None
    # Strategies get a read-only view of the input models (no copy when the target is last, as in
    # every dataset the project writes): a strategy that writes into its input fails alone instead
    # of changing what every later strategy sees. The target's probabilities are blanked first, so
    # no strategy can reach them through the view's base array, which is read-only too (so no
    # view of it can be made writeable again).
    if not dataset.probs.flags.writeable:  # a read-only array pickled with protocol 5 loads read-only
        dataset.probs = dataset.probs.copy()
    dataset.probs[:, t] = 0
    probs = read_only(dataset.probs)
    inputs = probs[:n, :-1] if t == len(names) - 1 else np.delete(probs[:n], t, axis=1)
    inputs.flags.writeable = False
    split = Split(path, dataset.sentences[:n], input_names, names[t], inputs, target_top1, target_probs,
                  dataset.vocab_size)
    report = {"input_model_reach": input_model_reach(np.delete(top1_per_model, t, axis=1), target_top1),
              "tied_targets": len(np.unique(tie_rows)), "tie_rows": tie_rows, "tie_tokens": tie_tokens}
    return split, report


def load_training_split(train_path: Path, test: Split) -> TrainingSplit:
    """The training file for a test file: same models and vocabulary, and not one prefix in common."""
    train, _ = load_split(train_path, test.target, None, keep_target_probs=True)
    if list(train.input_names) != list(test.input_names) or train.vocab_size != test.vocab_size:
        raise InputError(f"{train_path}: its models ({', '.join(train.input_names)} -> {train.target}, vocabulary "
                         f"{train.vocab_size}) differ from {test.path}'s ({', '.join(test.input_names)} -> "
                         f"{test.target}, vocabulary {test.vocab_size})")
    check_disjoint(train_path, train.sentences, test.path, test.sentences)
    return training_split(train.sentences, train.input_names, train.target, train.inputs, train.target_probs,
                          train.target_top1)


def score_dataset(path: Path, strategies: list, target: str | None, num_samples: int | None,
                  seed: int, predictions: list | None, debug: bool = False, train_path: Path | None = None,
                  folds: int = 5) -> dict:
    """Every strategy's top-1 agreement with the target on one dataset.

    Learned strategies fit on `train_path` if given, else on K-1 of `folds` folds of this dataset
    for each fold they predict: either way, never on a prefix they are scored on.
    """
    any_learned = any(strategy.learned for strategy in strategies)
    test, report = load_split(path, target, num_samples, keep_target_probs=any_learned and train_path is None)
    train = load_training_split(train_path, test) if any_learned and train_path is not None else None
    n, target = len(test.sentences), test.target
    rows = []
    for strategy in strategies:
        random.seed(seed)
        np.random.seed(seed)
        start = time.perf_counter()
        try:
            # Each strategy gets its own lists and its own view: nothing it changes reaches the next one.
            if not strategy.learned:
                returned = strategy.fn(list(test.sentences), list(test.input_names), target, test.inputs.view())
                guesses = check_guesses(returned, n, test.vocab_size)
            elif train is not None:
                guesses = fit_and_predict(strategy.fn, train, test.sentences, test.input_names, target,
                                          test.inputs, test.vocab_size)
            else:
                guesses = cross_validated_guesses(strategy.fn, test.sentences, test.input_names, target, test.inputs,
                                                  test.target_probs, test.target_top1, folds, seed)
        except StrategyError as e:
            rows.append({"name": strategy.name, "error": str(e)})
            continue
        except InputError as e:  # too few prefixes for --folds: the learned row says so, the others score
            rows.append({"name": strategy.name, "error": str(e)})
            continue
        except Exception as e:  # a researcher's strategy may fail in any way: report it, score the rest
            rows.append({"name": strategy.name, "error": describe_exception(e, strategy.fn)})
            if debug:
                print(f"{strategy.name} on {path}:", file=sys.stderr)
                traceback.print_exception(e)
            continue
        seconds = time.perf_counter() - start
        correct = guesses == test.target_top1
        low, high = bootstrap_ci(correct, seed=seed)
        protocol = (None if not strategy.learned else f"fit on {train_path}" if train is not None
                    else f"{folds}-fold cross-validation by prefix")
        rows.append({"name": strategy.name, "accuracy": float(correct.mean()), "correct": int(correct.sum()),
                     "n": n, "ci95": [low, high], "seconds": seconds, "learned": protocol,
                     "tied_misses": int((guesses[report["tie_rows"]] == report["tie_tokens"]).sum())})
        if predictions is not None:
            predictions += [{"dataset": str(path), "strategy": strategy.name, "index": i,
                             "sentence": test.sentences[i], "guess": int(guesses[i]),
                             "target_top1": int(test.target_top1[i]), "correct": bool(correct[i])} for i in range(n)]
    return {"path": str(path), "target": target, "inputs": list(test.input_names), "n": n,
            "vocab_size": test.vocab_size, "input_model_reach": report["input_model_reach"],
            "input_model_sizes": [name.non_embedding_params for name in test.input_names],
            "tied_targets": report["tied_targets"], "train": str(train_path) if train is not None else None,
            "folds": folds if any_learned and train is None else None, "strategies": rows}


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
                  f"{row['n']:>6} {row['seconds']:>8.3f}" + (f"  learned: {row['learned']}" if row.get("learned") else ""))
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


def default_datasets() -> list[tuple[Path, Path | None]]:
    """data/*.pkl, each with the training file its learned strategies fit on: `X-test.pkl` pairs
    with `X-train.pkl` (built by `bash suite/build_splits.sh`); a training file is not scored itself."""
    found = [path for path in sorted(DATA_DIR.glob("*.pkl")) if not path.stem.endswith("-train")]
    if not found:
        missing = " and ".join(str(DATA_DIR / name) for name in DEFAULT_DATASETS)
        raise InputError(f"no dataset: {missing} are missing. Build one with `python preprocess_train.py "
                         "--dataset wikipedia --out data/wikipedia.pkl` (see README.md), or copy the original "
                         "challenge's wikipedia.pkl / glue-rte.pkl into data/")
    paired = lambda path: path.with_name(path.stem.removesuffix("-test") + "-train.pkl")
    return [(path, paired(path) if path.stem.endswith("-test") and paired(path).exists() else None)
            for path in found]


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
    parser.add_argument("--report", type=Path, metavar="DIR", help="draw the results into DIR: PNGs and index.md "
                        "(needs matplotlib)")
    parser.add_argument("--debug", action="store_true", help="print the full traceback of a strategy that raises")
    parser.add_argument("--train", type=Path, help="learned strategies fit on this dataset (no prefix in common "
                        "with --dataset), then predict --dataset; without it they are scored by K-fold")
    parser.add_argument("--folds", type=int, default=5, help="K for cross-validating learned strategies by prefix "
                        "when there is no --train (default: 5; folds drawn with --seed)")
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
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    if args.train is not None and not args.dataset:
        parser.error("--train needs --dataset: the file its learned strategies are scored on")
    try:
        for path in (args.json, args.predictions):
            if path is not None:
                check_output_path(path)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    try:
        if args.report is not None:
            check_report_dir(args.report)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    failed = False
    results, predictions = [], [] if args.predictions else None
    try:
        datasets = [(path, args.train) for path in args.dataset] if args.dataset else default_datasets()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path, train_path in datasets:
        try:
            result = score_dataset(path, strategies, args.target, args.num_samples, args.seed, predictions, args.debug,
                                   train_path, args.folds)
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
    if args.report:
        try:
            print(f"\nreport: {write_report(results, args.report, seed=args.seed)}")
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `challenge.py | head` ends quietly
    sys.exit(main())
