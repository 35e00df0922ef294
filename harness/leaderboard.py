"""What `challenge.py` prints and writes from the engine's results (`harness.evaluate`): the
leaderboard of a scored dataset, the list of a predicted one, `--show`'s prefix, and the
predictions CSV's rows. numpy only (token text: `tokenizers`, where a local tokenizer is found).
"""

from __future__ import annotations

import csv
import io
import os
import sys

import numpy as np

from harness import plural
from harness.dataset import short_name
from harness.evaluate import HIDDEN_TARGET, REFERENCE_HEURISTICS, DatasetPredictions, DatasetResult, ShownPrefix
from harness.scoring import StrategyScore, describe_comparison, short_path, tie_note
from harness.tokenizer import decode_ids, local_tokenizer

PREDICTION_COLUMNS = ["dataset", "strategy", "index", "sentence", "guess", "guess_token", "target_top1", "target_token",
                      "correct"]  # under --predict-only, the first six


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


def header(result: DatasetResult | DatasetPredictions) -> str:
    n, num_inputs = result.n, len(result.inputs)
    return (f"\n{short_path(str(result.path))}: {n} {plural(n, 'prefix', 'prefixes')}, {num_inputs} input "
            f"{plural(num_inputs, 'model', 'models')}, target {result.target}, vocabulary {result.vocab_size}")


def print_predictions(result: DatasetPredictions) -> None:
    """--predict-only's block: each strategy's count of guesses written, or its error."""
    print(header(result))
    width = max(len(run.name) for run in result.runs)
    for run in result.runs:
        print(f"  {run.name:<{width}}  " + (f"error: {run.error}" if run.error else f"{result.n} guesses written" +
                                            (f" (learned: {run.fit})" if run.fit else "")))


def print_leaderboard(result: DatasetResult) -> None:
    n, reference, emergent = result.n, result.reference, result.emergent
    print(header(result))
    print(f"  {emergence_line(result.emergence_curve())}")
    rows = result.strategies
    scored = sorted((row for row in rows if isinstance(row, StrategyScore)), key=lambda row: -row.accuracy)
    vs = lambda row: "reference" if row.name == reference.name else describe_comparison(row.versus)
    width = max(12, *(len(row.name) for row in rows))
    vs_header = f"vs {reference.name}" if reference else ""
    vs_width = max([len(vs_header)] + [len(vs(row)) for row in scored if reference])
    print(f"  {'strategy':<{width}} {'top-1':>6}  {'95% CI':<16} {'n':>6} {'seconds':>8}  "
          f"{vs_header:<{vs_width}}  emergent")
    for row in scored:
        low, high = row.ci95
        print(f"  {row.name:<{width}} {row.accuracy:>6.3f}  [{low:.3f}, {high:.3f}] {row.n:>6} "
              f"{row.seconds:>8.3f}  {vs(row) if reference else '':<{vs_width}}  {row.emergent_correct}/{emergent}")
    for row in rows:
        if not isinstance(row, StrategyScore):
            print(f"  {row.name:<{width}} error: {row.error}")
    if reference:
        shown = any(row.name == reference.name for row in rows)
        print(f"  reference: {reference.name}" + ("" if shown else f" (top-1 {reference.accuracy:.3f})") +
              f", the best here of the built-in heuristics {', '.join(REFERENCE_HEURISTICS)}")
        print("  +a/-b: prefixes a strategy gets right that the reference misses, and the reverse; p: exact McNemar")
    print(f"  emergent: {emergent} of {n} {plural(n, 'prefix', 'prefixes')} ({emergent / n:.1%}): no input "
          f"model's top-1 is the target's (the column: how many each got right)")
    for fit in dict.fromkeys(row.fit for row in rows if isinstance(row, StrategyScore) and row.fit):
        names = [row.name for row in rows if isinstance(row, StrategyScore) and row.fit == fit]
        print(f"  learned, scored on prefixes never fitted on ({fit}): {', '.join(names)}")
    for comparison in result.comparisons:
        outcome = comparison.get("error") or describe_comparison(comparison)
        print(f"  compare {comparison['a']} vs {comparison['b']}: {outcome}")
    tied = result.view.tied_targets
    if tied:
        print(f"  {tie_note(tied, [(row.name, row.tied_misses) for row in scored])}")


def dataset_tokenizer(target: str, input_names: list[str]) -> tuple["tokenizers.Tokenizer | None", str | None]:  # noqa: F821
    """The tokenizer of a dataset: its target's, or its largest input model's in a public file (all share one)."""
    return local_tokenizer(input_names[-1] if target == HIDDEN_TARGET else target)


def prediction_rows(result: DatasetResult | DatasetPredictions) -> list[dict]:
    """The predictions CSV's rows, strategy by strategy, with the guessed (and target) tokens decoded."""
    if isinstance(result, DatasetResult):
        guessed, target_top1 = result.guesses, result.view.target_top1
    else:
        guessed, target_top1 = {run.name: run.guesses for run in result.runs if run.error is None}, None
    if not guessed:
        return []
    tokenizer, reason = dataset_tokenizer(result.target, result.inputs)
    if tokenizer is None:
        print(f"warning: {result.path}: predictions without token text: {reason}", file=sys.stderr)
    guesses = np.stack(list(guessed.values()))
    ids = np.concatenate([guesses.ravel(), [] if target_top1 is None else target_top1]).astype(np.int64)
    texts = decode_ids(tokenizer, ids)
    guess_texts, target_texts = texts[:guesses.size].reshape(guesses.shape), texts[guesses.size:]
    rows = []
    for s, name in enumerate(guessed):
        for i in range(result.n):
            row = {"dataset": str(result.path), "strategy": name, "index": i, "sentence": result.sentences[i],
                   "guess": int(guesses[s, i]), "guess_token": guess_texts[s, i]}
            if target_top1 is not None:
                row.update(target_top1=int(target_top1[i]), target_token=target_texts[i],
                           correct=bool(guesses[s, i] == target_top1[i]))
            rows.append(row)
    return rows


def print_shown(shown: ShownPrefix, top_k: int) -> None:
    """--show: every model's top-k tokens with probabilities (the target's marked) and each guess, decoded."""
    table = np.stack([row for _, row in shown.models])
    top = np.argsort(-table, axis=1, kind="stable")[:, :top_k]  # ties: the lower id first, as top-1 scoring does
    answer = shown.answer
    guesses = {run.name: int(run.guesses[shown.index]) for run in shown.runs if run.error is None}
    input_names = [name for name, _ in shown.models[:len(shown.models) - (answer is not None)]]
    tokenizer, reason = dataset_tokenizer(shown.target, input_names)
    ids = np.concatenate([top.ravel(), list(guesses.values()), [] if answer is None else [answer]]).astype(np.int64)
    text = dict(zip(ids.tolist(), decode_ids(tokenizer, ids)))
    # repr shows a token's leading space, newline or tab; without a tokenizer, the id alone.
    token = (lambda i: repr(text[i])) if tokenizer is not None else (lambda i: f"#{i}")
    with_id = (lambda i: f"{token(i)} (id {i})") if tokenizer is not None else token

    print(f"{short_path(str(shown.path))}: prefix {shown.index} of {shown.n}, target {shown.target}")
    print(f"  prefix: {shown.sentence!r}")
    if tokenizer is None:
        print(f"  token ids only: {reason}")
    width = max(len(name) for name, _ in shown.models)
    print(f"  {'model':<{width}}  top-{top.shape[1]} tokens, probability")
    for m, (name, _) in enumerate(shown.models):
        print(f"  {name:<{width}}  " + " · ".join(f"{token(i)} {table[m, i]:.3f}" for i in top[m].tolist()))
    width = max([len(run.name) for run in shown.runs] + [8])
    print(f"  {'strategy':<{width}}  guess" + ("" if answer is None else f" (the target's top-1: {with_id(answer)})"))
    for run in shown.runs:
        if run.error:
            print(f"  {run.name:<{width}}  error: {run.error}")
        else:
            verdict = "" if answer is None else "  right" if guesses[run.name] == answer else "  wrong"
            print(f"  {run.name:<{width}}  {with_id(guesses[run.name])}{verdict}")



def predictions_csv(results: list[DatasetResult | DatasetPredictions], predicting: bool) -> str:
    """The predictions CSV of a run's datasets (PREDICTION_COLUMNS; the first six when predicting only)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, PREDICTION_COLUMNS[:6] if predicting else PREDICTION_COLUMNS)
    writer.writeheader()
    for result in results:
        writer.writerows(prediction_rows(result))
    return buffer.getvalue()
