"""Score next-token strategies: how often does a strategy, given only the smaller models'
distributions after a prefix, guess the token that the target (largest) model ranks first?

    python challenge.py                                  # every strategy, every dataset in data/
    python challenge.py --strategy mine.py:my_strategy   # your function, from your own file
    python challenge.py --list                           # the registered strategies
    python challenge.py --compare loglinear largest      # a paired test of two strategies
    python challenge.py --dataset data/wikipedia.pkl --show 3   # what each model said on one prefix
    python challenge.py --dataset public.pkl --predict-only --predictions p.csv   # a blind test

Needs numpy only (and `tokenizers` for token strings: --show, the predictions CSV, strategies
that want them); no torch, transformers or network.
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

from harness import InputError, plural
from harness.dataset import find_model, load_dataset, model_sizes, read_sidecar, short_name
from harness.files import check_writable, write_output
from harness.learned import (TrainingSplit, check_disjoint, cross_validated_guesses, fit_and_predict, read_only,
                             training_split)
from harness.report import check_report_dir, write_report
from harness.scoring import (StrategyError, bootstrap_ci, check_guesses, describe_comparison, describe_exception,
                             emergent_prefixes, input_model_reach, paired_comparison, short_path, tie_note, top1,
                             top1_ties)
from harness.tokenizer import decode_ids, local_tokenizer
from harness.registry import (REGISTRY, ModelName, Strategy, learned, load_from_file,  # noqa: F401 (learned,
                              register)                                          # register: the block below)
from strategies import load_builtin

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_DATASETS = ("wikipedia.pkl", "glue-rte.pkl")
HIDDEN = "hidden"  # the target's name in a blind test's public file, as strategies receive it
REFERENCE_HEURISTICS = ("largest", "average", "top2-average")  # built-in, not learned; dummy and random are baselines

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
    target: str                   # HIDDEN in a blind test's public file
    inputs: np.ndarray            # (n, input models, V), read-only, with the target blanked in its base
    target_top1: np.ndarray | None   # None under --predict-only: the target is never read
    target_probs: np.ndarray | None  # kept only where a learned strategy may fit on this file
    vocab_size: int


def is_public(metadata: dict | None) -> bool:
    """Whether a sidecar is a blind test's public file's (`"public": true`): every model in it is an input."""
    return isinstance(metadata, dict) and metadata.get("public") is True


def load_split(path: Path, target: str | None, num_samples: int | None, keep_target_probs: bool,
               predict_only: bool = False, show: int | None = None) -> tuple[Split, dict]:
    """Load one dataset for scoring, and what the leaderboard reports about it.

    Under `predict_only` nothing is read from the target's probabilities (a public file has none:
    all its models are inputs). `show` keeps that prefix's target distribution for --show.
    """
    dataset = load_dataset(path)
    names = dataset.model_names
    metadata = read_sidecar(path, verify_hash=False)  # read once: a stale one warns once
    public = is_public(metadata)
    if public and not predict_only:
        raise InputError(f"{path}: a blind test's public file (its target is hidden): nothing to score; "
                         "run it with --predict-only --predictions FILE")
    t = None if public else len(names) - 1 if target is None else find_model(names, target, path)
    if predict_only and metadata is None and target is None:  # a --target given leaves no doubt
        print(f"warning: {path}: no valid sidecar, so it is not known to be a blind test's public file: its model "
              f"{names[t]} is taken as the target and left out", file=sys.stderr)
    n = min(num_samples or len(dataset.sentences), len(dataset.sentences))
    if num_samples is not None and num_samples > n:
        print(f"warning: {path}: --num-samples {num_samples}, but it has only {n} {plural(n, 'prefix', 'prefixes')}; "
              f"scoring {n}", file=sys.stderr)
    if show is not None and not 0 <= show < n:
        raise InputError(f"{path}: --show {show}: prefixes are numbered 0 to {n - 1}")
    sizes = model_sizes(dataset.model_names, metadata)
    input_names = [ModelName(name, **sizes.get(name, {})) for j, name in enumerate(names) if j != t]
    report: dict = {}
    target_top1 = target_probs = None
    if not predict_only:
        top1_per_model = top1(dataset.probs[:n])  # one pass over the contiguous array: no copy
        target_top1 = top1_per_model[:, t]
        input_top1 = np.delete(top1_per_model, t, axis=1)
        # Tokens tying the target's top-1 in float16: the first still counts (the original metric),
        # and the counts below tell a reader how often that choice mattered.
        tie_rows, tie_tokens = top1_ties(dataset.probs[:n, t], target_top1)
        # A learned strategy's fit may see the target of the prefixes it trains on: a copy, handed
        # only to fit steps (never to a prediction), taken before the target is blanked below.
        target_probs = dataset.probs[:n, t].copy() if keep_target_probs else None
        report = {"input_model_reach": input_model_reach(input_top1, target_top1),
                  "emergent": emergent_prefixes(input_top1, target_top1),
                  "tied_targets": len(np.unique(tie_rows)), "tie_rows": tie_rows, "tie_tokens": tie_tokens}
        if show is not None:
            report["shown_target"] = dataset.probs[show, t].copy()
    # Strategies get a read-only view of the input models (no copy when the target is last, as in
    # every dataset the project writes): a strategy that writes into its input fails alone instead
    # of changing what every later strategy sees. The target's probabilities are blanked first, so
    # no strategy can reach them through the view's base array, which is read-only too (so no
    # view of it can be made writeable again).
    if t is not None:
        if not dataset.probs.flags.writeable:  # a read-only array pickled with protocol 5 loads read-only
            dataset.probs = dataset.probs.copy()
        dataset.probs[:, t] = 0
    probs = read_only(dataset.probs)
    # (A target in the middle takes a copy without it, read-only the same way.)
    inputs = (probs[:n] if t is None else probs[:n, :-1] if t == len(names) - 1
              else read_only(np.delete(probs[:n], t, axis=1)))
    split = Split(path, dataset.sentences[:n], input_names, HIDDEN if t is None else names[t], inputs, target_top1,
                  target_probs, dataset.vocab_size)
    return split, report


def load_training_split(train_path: Path, test: Split, target: str | None) -> TrainingSplit:
    """The training file for a test file: same input models and vocabulary, and not one prefix in common.

    The fit is told the test's target name (HIDDEN for a public file), as its predictions will be."""
    if is_public(read_sidecar(train_path, verify_hash=False)):
        raise InputError(f"{train_path}: a blind test's public file has no target: it cannot be a --train file")
    train, _ = load_split(train_path, target, None, keep_target_probs=True)
    if list(train.input_names) != list(test.input_names) or train.vocab_size != test.vocab_size:
        raise InputError(f"{train_path}: its models ({', '.join(train.input_names)} -> {train.target}, vocabulary "
                         f"{train.vocab_size}) differ from {test.path}'s ({', '.join(test.input_names)} -> "
                         f"{test.target}, vocabulary {test.vocab_size})")
    check_disjoint(train_path, train.sentences, test.path, test.sentences)
    return training_split(train.sentences, train.input_names, test.target, train.inputs, train.target_probs,
                          train.target_top1)


def load_with_training(path: Path, strategies: list, target: str | None, num_samples: int | None,
                       train_path: Path | None, predict_only: bool,
                       show: int | None = None) -> tuple[Split, dict, TrainingSplit | None]:
    """A dataset to score, what the leaderboard reports about it, and the training split its learned
    strategies fit on (None without learned strategies, or when they cross-validate on this file,
    which then keeps its target's probabilities for the folds' fits)."""
    any_learned = any(strategy.is_learned for strategy in strategies)
    split, report = load_split(path, target, num_samples, any_learned and train_path is None and not predict_only,
                               predict_only, show)
    train = load_training_split(train_path, split, target) if any_learned and train_path is not None else None
    return split, report, train


@dataclass
class Outcome:
    """One strategy's run on one dataset: its guesses, or the one-line error in its row."""
    strategy: Strategy
    guesses: np.ndarray | None = None
    error: str | None = None
    seconds: float = 0.0
    protocol: str | None = None  # how a learned strategy was fitted


def run_strategies(split: Split, strategies: list[Strategy], seed: int, train: TrainingSplit | None,
                   train_path: Path | None, folds: int, debug: bool = False) -> list[Outcome]:
    """Every strategy's guesses on one dataset, each seeded alike; a failure is its own row's error.

    Learned strategies fit on `train` if given, else (when the target is known) on K-1 of `folds`
    folds of this dataset for each fold they predict: either way, never on a prefix they guess.
    """
    n, target = len(split.sentences), split.target
    outcomes = []
    for strategy in strategies:
        random.seed(seed)
        np.random.seed(seed)
        start = time.perf_counter()
        protocol = None
        try:
            # Each strategy gets its own lists and its own view: nothing it changes reaches the next one.
            if not strategy.is_learned:
                returned = strategy.fn(list(split.sentences), list(split.input_names), target, split.inputs.view())
                guesses = check_guesses(returned, n, split.vocab_size)
            elif train is not None:
                protocol = f"fit on {short_path(str(train_path))}"
                guesses = fit_and_predict(strategy.fn, train, split.sentences, split.input_names, target,
                                          split.inputs, split.vocab_size)
            elif split.target_probs is None:  # --predict-only: this file's target is never read
                raise InputError("a learned strategy needs --train under --predict-only (a file with the target "
                                 "and the same input models)")
            else:
                protocol = f"{folds}-fold cross-validation by prefix"
                guesses = cross_validated_guesses(strategy.fn, split.sentences, split.input_names, target,
                                                  split.inputs, split.target_probs, split.target_top1, folds, seed)
        except (StrategyError, InputError) as e:  # InputError: e.g. too few prefixes for --folds
            outcomes.append(Outcome(strategy, error=str(e)))
            continue
        except Exception as e:  # a researcher's strategy may fail in any way: report it, score the rest
            outcomes.append(Outcome(strategy, error=describe_exception(e, strategy.fn)))
            if debug:
                print(f"{strategy.name} on {split.path}:", file=sys.stderr)
                traceback.print_exception(e)
            continue
        outcomes.append(Outcome(strategy, guesses, seconds=time.perf_counter() - start, protocol=protocol))
    return outcomes


def best_reference(outcomes: dict[str, Outcome], target_top1: np.ndarray) -> str | None:
    """The most accurate built-in heuristic on this dataset (the first listed on a tie), or None."""
    scored = [(int((outcomes[name].guesses == target_top1).sum()), -i, name)
              for i, name in enumerate(REFERENCE_HEURISTICS) if name in outcomes and outcomes[name].guesses is not None]
    return max(scored)[2] if scored else None


def score_dataset(path: Path, strategies: list, target: str | None, num_samples: int | None,
                  seed: int, predictions: list | None, debug: bool = False, train_path: Path | None = None,
                  folds: int = 5, references: list | None = None, comparisons: list | None = None,
                  predict_only: bool = False) -> dict:
    """Every strategy's top-1 agreement with the target on one dataset, each compared (paired, on the
    same prefixes) with the best of `references`, the built-in heuristics, which are run for that
    even when not in `strategies`; `comparisons` are pairs of strategy names to compare the same way.

    Under `predict_only`, nothing is scored: the guesses go to `predictions` only.
    """
    any_learned = any(strategy.is_learned for strategy in strategies)
    test, report, train = load_with_training(path, strategies, target, num_samples, train_path, predict_only)
    hidden = [r for r in (references or []) if not predict_only and r.name not in {s.name for s in strategies}]
    outcomes = {o.strategy.name: o for o in run_strategies(test, strategies + hidden, seed, train, train_path, folds,
                                                           debug)}
    shown = [outcomes[s.name] for s in strategies]
    n = len(test.sentences)
    result = {"path": str(path), "target": test.target, "inputs": list(test.input_names), "n": n,
              "vocab_size": test.vocab_size,
              "input_model_sizes": [name.non_embedding_params for name in test.input_names],
              "train": str(train_path) if train is not None else None,
              "folds": folds if any_learned and train is None and not predict_only else None}
    if predictions is not None:
        predictions += prediction_rows(test, shown)
    if predict_only:
        return {**result, "predict_only": True,
                "strategies": [{"name": o.strategy.name, "error": o.error} if o.error else
                               {"name": o.strategy.name, "guesses": n, "learned": o.protocol} for o in shown]}

    target_top1, emergent = test.target_top1, report["emergent"]
    correct = {name: o.guesses == target_top1 for name, o in outcomes.items() if o.guesses is not None}
    reference = best_reference(outcomes, target_top1)
    rows = []
    for o in shown:
        name = o.strategy.name
        if o.error:
            rows.append({"name": name, "error": o.error})
            continue
        low, high = bootstrap_ci(correct[name], seed=seed)
        rows.append({"name": name, "accuracy": float(correct[name].mean()), "correct": int(correct[name].sum()),
                     "n": n, "ci95": [low, high], "seconds": o.seconds, "learned": o.protocol,
                     "tied_misses": int((o.guesses[report["tie_rows"]] == report["tie_tokens"]).sum()),
                     "emergent_correct": int(correct[name][emergent].sum()),
                     "vs_reference": None if reference is None else
                     {"reference": reference, **paired_comparison(correct[name], correct[reference])}})
    compared = []
    for a, b in comparisons or []:
        failed = [name for name in (a, b) if name not in correct]
        compared.append({"a": a, "b": b, "error": f"{' and '.join(failed)} failed"} if failed else
                        {"a": a, "b": b, **paired_comparison(correct[a], correct[b])})
    sizes = [name.non_embedding_params for name in test.input_names]
    by_size = sorted(range(len(sizes)), key=lambda j: (sizes[j] is None, sizes[j] or 0, j))  # unknown sizes: as listed
    agreement = report["input_model_reach"]["per_input_model"]
    return {**result, "input_model_reach": report["input_model_reach"], "tied_targets": report["tied_targets"],
            "emergence_curve": [{"model": test.input_names[j], "non_embedding_params": sizes[j],
                                 "agreement": agreement[j]} for j in by_size],
            "emergent": int(emergent.sum()),
            "reference": None if reference is None else
            {"name": reference, "accuracy": float(correct[reference].mean()), "correct": int(correct[reference].sum())},
            "comparisons": compared, "strategies": rows}


def split_tokenizer(split: Split) -> tuple["tokenizers.Tokenizer | None", str | None]:  # noqa: F821
    """The tokenizer of a dataset: its target's, or its largest input model's in a public file (all share one)."""
    return local_tokenizer(split.input_names[-1] if split.target == HIDDEN else split.target)


def prediction_rows(split: Split, outcomes: list[Outcome]) -> list[dict]:
    """The predictions CSV's rows, strategy by strategy, with the guessed (and target) tokens decoded."""
    guessed = [o for o in outcomes if o.guesses is not None]
    if not guessed:
        return []
    tokenizer, reason = split_tokenizer(split)
    if tokenizer is None:
        print(f"warning: {split.path}: predictions without token text: {reason}", file=sys.stderr)
    n, scored = len(split.sentences), split.target_top1 is not None
    guesses = np.stack([o.guesses for o in guessed])
    ids = np.concatenate([guesses.ravel(), split.target_top1 if scored else []]).astype(np.int64)
    texts = decode_ids(tokenizer, ids)
    guess_texts, target_texts = texts[:guesses.size].reshape(guesses.shape), texts[guesses.size:]
    rows = []
    for s, o in enumerate(guessed):
        for i in range(n):
            row = {"dataset": str(split.path), "strategy": o.strategy.name, "index": i, "sentence": split.sentences[i],
                   "guess": int(o.guesses[i]), "guess_token": guess_texts[s, i]}
            if scored:
                row.update(target_top1=int(split.target_top1[i]), target_token=target_texts[i],
                           correct=bool(o.guesses[i] == split.target_top1[i]))
            rows.append(row)
    return rows


def show_prefix(path: Path, index: int, strategies: list, target: str | None, num_samples: int | None, seed: int,
                train_path: Path | None, folds: int, top_k: int, predict_only: bool, debug: bool = False) -> bool:
    """Print prefix `index`: every model's top-k tokens, decoded, with probabilities (the target's
    marked), and each strategy's guess; learned ones fitted as for the leaderboard. False if one failed."""
    split, report, train = load_with_training(path, strategies, target, num_samples, train_path, predict_only, index)
    outcomes = run_strategies(split, strategies, seed, train, train_path, folds, debug)
    models = [(name, split.inputs[index, j]) for j, name in enumerate(split.input_names)]
    if "shown_target" in report:
        models.append((f"{split.target} (target)", report["shown_target"]))
    table = np.stack([row for _, row in models]).astype(np.float32)
    top = np.argsort(-table, axis=1, kind="stable")[:, :top_k]  # ties: the lower id first, as top-1 scoring does
    answer = None if split.target_top1 is None else int(split.target_top1[index])
    guesses = {o.strategy.name: int(o.guesses[index]) for o in outcomes if o.guesses is not None}

    tokenizer, reason = split_tokenizer(split)
    ids = np.concatenate([top.ravel(), list(guesses.values()), [] if answer is None else [answer]]).astype(np.int64)
    text = dict(zip(ids.tolist(), decode_ids(tokenizer, ids)))
    # repr shows a token's leading space, newline or tab; without a tokenizer, the id alone.
    token = (lambda i: repr(text[i])) if tokenizer is not None else (lambda i: f"#{i}")
    with_id = (lambda i: f"{token(i)} (id {i})") if tokenizer is not None else token

    print(f"{short_path(str(path))}: prefix {index} of {len(split.sentences)}, target {split.target}")
    print(f"  prefix: {split.sentences[index]!r}")
    if tokenizer is None:
        print(f"  token ids only: {reason}")
    width = max(len(name) for name, _ in models)
    print(f"  {'model':<{width}}  top-{top.shape[1]} tokens, probability")
    for m, (name, _) in enumerate(models):
        print(f"  {name:<{width}}  " + " · ".join(f"{token(i)} {table[m, i]:.3f}" for i in top[m].tolist()))
    width = max([len(o.strategy.name) for o in outcomes] + [8])
    print(f"  {'strategy':<{width}}  guess" + ("" if answer is None else f" (the target's top-1: {with_id(answer)})"))
    for o in outcomes:
        name = o.strategy.name
        if o.error:
            print(f"  {name:<{width}}  error: {o.error}")
        else:
            verdict = "" if answer is None else "  right" if guesses[name] == answer else "  wrong"
            print(f"  {name:<{width}}  {with_id(guesses[name])}{verdict}")
    return not any(o.error for o in outcomes)


def human_size(count: int) -> str:
    """6592 -> 6.6K, 1546720 -> 1.5M, 2.8e9 -> 2.8B: a parameter count at a glance."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            value = count / scale
            return f"{value:.1f}{suffix}".replace(".0", "") if value < 10 else f"{value:.0f}{suffix}"
    return str(count)


def emergence_line(curve: list[dict]) -> str:
    """Each input model's top-1 agreement with the target, smallest first, labelled by size where
    every size is known, else by short name (less a prefix they share: `pythia-*`)."""
    note = ""
    if all(point["non_embedding_params"] is not None for point in curve):
        labels = [human_size(point["non_embedding_params"]) for point in curve]
    else:
        labels = [short_name(point["model"]) for point in curve]
        shared = os.path.commonprefix(labels) if len(labels) > 1 else ""
        shared = shared[:shared.rfind("-") + 1]
        if shared:
            labels, note = [label[len(shared):] for label in labels], f" ({shared}*)"
    points = " · ".join(f"{label} {point['agreement']:.1%}" for label, point in zip(labels, curve))
    return f"agreement with the target{note}: {points}"


def print_leaderboard(result: dict) -> None:
    n, num_inputs = result["n"], len(result["inputs"])
    print(f"\n{short_path(result['path'])}: {n} {plural(n, 'prefix', 'prefixes')}, {num_inputs} input "
          f"{plural(num_inputs, 'model', 'models')}, target {result['target']}, vocabulary {result['vocab_size']}")
    rows = result["strategies"]
    if result.get("predict_only"):
        width = max(len(row["name"]) for row in rows)
        for row in rows:
            print(f"  {row['name']:<{width}}  " + (f"error: {row['error']}" if "error" in row else
                                                   f"{row['guesses']} guesses written" +
                                                   (f" (learned: {row['learned']})" if row.get("learned") else "")))
        return
    print(f"  {emergence_line(result['emergence_curve'])}")
    reference, emergent = result["reference"], result["emergent"]
    vs = lambda row: ("reference" if row["name"] == reference["name"] else describe_comparison(row["vs_reference"]))
    width = max(12, *(len(row["name"]) for row in rows))
    vs_header = f"vs {reference['name']}" if reference else ""
    vs_width = max([len(vs_header)] + [len(vs(r)) for r in rows if reference and "accuracy" in r])
    print(f"  {'strategy':<{width}} {'top-1':>6}  {'95% CI':<16} {'n':>6} {'seconds':>8}  "
          f"{vs_header:<{vs_width}}  emergent")
    ranked = sorted(rows, key=lambda r: -r.get("accuracy", -1))
    for row in ranked:
        if "error" in row:
            print(f"  {row['name']:<{width}} error: {row['error']}")
            continue
        low, high = row["ci95"]
        print(f"  {row['name']:<{width}} {row['accuracy']:>6.3f}  [{low:.3f}, {high:.3f}] {row['n']:>6} "
              f"{row['seconds']:>8.3f}  {vs(row) if reference else '':<{vs_width}}  "
              f"{row['emergent_correct']}/{emergent}")
    if reference:
        shown = any(row["name"] == reference["name"] for row in rows)
        print(f"  reference: {reference['name']}" + ("" if shown else f" (top-1 {reference['accuracy']:.3f})") +
              f", the best here of the built-in heuristics {', '.join(REFERENCE_HEURISTICS)}")
        print("  +a/-b: prefixes a strategy gets right that the reference misses, and the reverse; p: exact McNemar")
    print(f"  emergent: {emergent} of {n} {plural(n, 'prefix', 'prefixes')} ({emergent / n:.1%}): no input "
          f"model's top-1 is the target's (the column: how many each got right)")
    for protocol in dict.fromkeys(row["learned"] for row in rows if row.get("learned")):
        names = [row["name"] for row in rows if row.get("learned") == protocol]
        print(f"  learned, scored on prefixes never fitted on ({protocol}): {', '.join(names)}")
    for comparison in result["comparisons"]:
        outcome = comparison.get("error") or describe_comparison(comparison)
        print(f"  compare {comparison['a']} vs {comparison['b']}: {outcome}")
    tied = result["tied_targets"]
    if tied:
        print(f"  {tie_note(tied, ranked)}")


def resolve_strategies(requested: list[str] | None) -> list[Strategy]:
    """The strategies named (registered names or file.py:function specs), or every registered one."""
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
            raise InputError(f"unknown strategy {name!r} (registered: {', '.join(REGISTRY)}; "
                             "or give path/to/file.py:function)")
    return list({strategy.name: strategy for strategy in chosen}.values())  # each once, in the order given


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


EXIT_CODES = """exit status:
  0    every strategy ran (and every file was written)
  1    a bad dataset, strategy name or file, output path, or a strategy that failed
       (one line on stderr, or in the strategy's row; the other strategies are still scored)
  2    a bad command line
  130  interrupted (Ctrl-C)"""

PREDICTION_COLUMNS = ["dataset", "strategy", "index", "sentence", "guess", "guess_token", "target_top1", "target_token",
                      "correct"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", type=Path, help="dataset pickle (repeatable; default: data/*.pkl)")
    parser.add_argument("--strategy", action="append", help="registered name or path/to/file.py:function (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the registered strategies and exit")
    parser.add_argument("--num-samples", type=int, help="score on the first N prefixes only")
    parser.add_argument("--seed", type=int, default=0, help="seeds random/numpy before each strategy and the bootstrap")
    parser.add_argument("--target", help="model whose top-1 is predicted (default: the last); the others are inputs")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument("--predictions", type=Path, help="write per-prefix guesses as CSV, tokens decoded")
    parser.add_argument("--report", type=Path, metavar="DIR", help="draw the results into DIR: PNGs and index.md "
                        "(needs matplotlib)")
    parser.add_argument("--debug", action="store_true", help="print the full traceback of a strategy that raises")
    parser.add_argument("--train", type=Path, help="learned strategies fit on this dataset (no prefix in common "
                        "with --dataset), then predict --dataset; without it they are scored by K-fold")
    parser.add_argument("--folds", type=int, default=5, help="K for cross-validating learned strategies by prefix "
                        "when there is no --train (default: 5; folds drawn with --seed)")
    parser.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"), help="paired comparison of two "
                        "strategies (names or file.py:function) on each dataset: +a/-b and exact McNemar p "
                        "(repeatable)")
    parser.add_argument("--show", type=int, metavar="I", help="print prefix I of the (first) dataset: each model's "
                        "top-k tokens with probabilities, and each strategy's guess, decoded")
    parser.add_argument("--top-k", type=int, default=5, help="tokens per model for --show (default: 5)")
    parser.add_argument("--predict-only", action="store_true", help="write guesses to --predictions, score nothing and "
                        "never read the target (for a blind test's public file, whose models are all inputs)")
    args = parser.parse_args(argv)

    if args.num_samples is not None and args.num_samples < 1:
        parser.error("--num-samples must be at least 1")
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    if args.top_k < 1:
        parser.error("--top-k must be at least 1")
    if args.train is not None and not args.dataset:
        parser.error("--train needs --dataset: the file its learned strategies are scored on")
    if args.predict_only and not args.predictions and args.show is None:
        parser.error("--predict-only needs --predictions FILE: the guesses are its only output")
    if args.show is not None and (args.json or args.predictions or args.compare or args.report):
        parser.error("--show prints one prefix: it takes no --json, --predictions, --compare or --report")
    if args.predict_only and (args.compare or args.report):
        parser.error("--compare and --report need scores: not with --predict-only")
    try:
        strategies = resolve_strategies(args.strategy)
        compared = resolve_strategies([name for pair in args.compare or [] for name in pair]) if args.compare else []
        if args.list:
            for strategy in strategies:
                print(f"{strategy.name:<24} {strategy.description}")
            return 0
        for path in (args.json, args.predictions):
            if path is not None:
                check_writable(path)
        if args.report is not None:
            check_report_dir(args.report)
        datasets = [(path, args.train) for path in args.dataset] if args.dataset else default_datasets()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    # --compare's strategies are scored even when --strategy did not name them.
    strategies = list({s.name: s for s in strategies + compared}.values())
    comparisons = [tuple(pair) for pair in args.compare or []]  # a Strategy's name is the name or spec given
    references = [REGISTRY[name] for name in REFERENCE_HEURISTICS if name in REGISTRY]

    if args.show is not None:
        path, train_path = datasets[0]
        try:
            ok = show_prefix(path, args.show, strategies, args.target, args.num_samples, args.seed, train_path,
                             args.folds, args.top_k, args.predict_only, args.debug)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0 if ok else 1

    failed = False
    results, predictions = [], [] if args.predictions else None
    for path, train_path in datasets:
        try:
            result = score_dataset(path, strategies, args.target, args.num_samples, args.seed, predictions, args.debug,
                                   train_path, args.folds, references, comparisons, args.predict_only)
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
    if args.predictions and any("error" in result for result in results):
        # A CSV cannot say that a dataset is missing from it: no file rather than one that looks complete.
        print(f"error: {args.predictions}: not written, since a dataset failed", file=sys.stderr)
    elif args.predictions:
        buffer = io.StringIO()
        columns = PREDICTION_COLUMNS[:6] if args.predict_only else PREDICTION_COLUMNS
        writer = csv.DictWriter(buffer, columns)
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
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
