"""What `challenge.py` prints and writes from the engine's results (`harness.scoring.evaluate`): the
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
from harness.cli import NO_BREAK, Column, wrapped
from harness.cli import table as fitted_table
from harness.data.dataset import short_name
from harness.data.tokenizer import decode_ids, local_tokenizer
from harness.scoring.evaluate import HIDDEN_TARGET, REFERENCE_HEURISTICS, DatasetPredictions, DatasetResult, ShownPrefix
from harness.scoring.metrics import GAMMA, HIGHER_IS_BETTER, LABELS
from harness.scoring.stats import NUM_RESAMPLES, describe_comparison, describe_difference, format_p_value
from harness.scoring.top1 import StrategyScore, short_path, tie_note

PREDICTION_COLUMNS = [
    "dataset",
    "strategy",
    "index",
    "sentence",
    "guess",
    "guess_token",
    "target_top1",
    "target_token",
    "correct",
    "log_loss",
    "kl",
    "alpha",
]  # under --predict-only, the first six; the last three
# only for a strategy that returned distributions


def human_size(count: int) -> str:
    """6592 -> 6.6K, 1546720 -> 1.5M, 2.8e9 -> 2.8B: a parameter count at a glance."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            value = count / scale
            return f"{value:.1f}{suffix}".replace(".0", "") if value < 10 else f"{value:.0f}{suffix}"
    return str(count)


def size_labels(curve: list[dict]) -> tuple[list[str], str]:
    """The input models' labels, smallest first: their sizes where every size is known and tells them
    apart, else their short names less a prefix they share (and a note naming it: ` (pythia-*)`):
    a ladder's seeds and checkpoints share a size."""
    if all(point["non_embedding_params"] is not None for point in curve):
        sizes = [human_size(point["non_embedding_params"]) for point in curve]
        if len(set(sizes)) == len(sizes):
            return sizes, ""
    labels = [short_name(point["model"]) for point in curve]
    shared = os.path.commonprefix(labels) if len(labels) > 1 else ""
    shared = shared[: shared.rfind("-") + 1]
    if shared:
        return [label[len(shared) :] for label in labels], f" ({shared}*)"
    return labels, ""


def emergence_line(curve: list[dict], metric: str = "top1") -> str:
    """Each input model's top-1 agreement with the target (or another metric), smallest first,
    labelled by size where every size is known, else by short name (less a prefix they share: `pythia-*`)."""
    labels, note = size_labels(curve)
    if metric == "top1":
        points = " · ".join(f"{label}{NO_BREAK}{point['agreement']:.1%}" for label, point in zip(labels, curve))
        return f"agreement with the target{note}: {points}"
    points = " · ".join(
        f"{label}{NO_BREAK}{point['metrics'][metric]['mean']:.3f}" for label, point in zip(labels, curve)
    )
    return f"{METRIC_LINES[metric]}{note}: {points}"


METRIC_LINES = {
    "top5": "the target's top-1 in the model's top 5",
    "log_loss": "log-loss of the target's top-1",
    "kl": "KL(target || model), nats",
    "alpha": "alpha = 1 - TV(target, model)",
    "tokens_per_pass": f"tokens per target pass drafting {GAMMA}",
}


def task_lines(result: DatasetResult) -> list[str]:
    """Task accuracy against scale (Wei et al.): each input model's, smallest first, then the
    target's with its interval; and the answer's log-likelihood the same way."""
    task = result.task
    curve = result.emergence_curve()
    labels, note = size_labels(curve)
    order = [result.model_names.index(point["model"]) for point in curve]
    target = result.model_names.index(result.target)
    rule = "the likelier choice" if task.rule == "choice" else "greedy decoding writes the answer"
    chance = "" if task.chance is None else f"; chance {task.chance:.0%}"
    low, high = task.accuracy_ci95[target]
    accuracy = " · ".join(f"{label}{NO_BREAK}{task.accuracy[j]:.1%}" for label, j in zip(labels, order))
    loglik = " · ".join(f"{label}{NO_BREAK}{task.loglik[j]:.2f}" for label, j in zip(labels, order))
    ll_low, ll_high = task.loglik_ci95[target]
    return [
        f"task accuracy ({rule}{chance}){note}: {accuracy} -> target {task.accuracy[target]:.1%} "
        f"[{low:.1%}, {high:.1%}]",
        f"answer log-likelihood (nats){note}: {loglik} -> target {task.loglik[target]:.2f} "
        f"[{ll_low:.2f}, {ll_high:.2f}]",
    ]


def kl_floor_line(floor: dict, order: list[str], curve: list[dict]) -> str:
    """The KL floor and the share of the reference's KL above it that each strategy (in `order`) and
    input model (smallest first) removes."""
    low, high = floor["ci95"]
    head = f"KL floor (half the KL to that seed): {floor['mean']:.3f} [{low:.3f}, {high:.3f}]"
    removed = floor["removed"]
    if not removed:  # the reference is at or below the floor: the twin is too far for the approximation
        return (
            f"{head}, above {floor['reference']}'s {floor['reference_kl']:.3f}: the two seeds differ too much "
            "here for the floor's quadratic approximation"
        )
    line = f"{head}; {floor['reference']} is {floor['above_floor']:.3f} above it"
    strategies = [name for name in order if name in removed and name != floor["reference"]]
    labels, _ = size_labels(curve)

    def share(name: str) -> str:
        low, high = removed[name]["ci95"]
        return f"{removed[name]['share']:.0%} [{low:.0%}, {high:.0%}]"

    below = [name for name in removed if removed[name]["share"] > 1]
    return (
        line
        + ", and of that "
        + ", ".join(f"{name} removes {share(name)}" for name in strategies)
        + "; the input models: "
        + " · ".join(f"{label}{NO_BREAK}{removed[point['model']]['share']:.0%}" for label, point in zip(labels, curve))
        + (
            f"; over 100% ({', '.join(below)}): below the estimate, which the approximation puts too high here"
            if below
            else ""
        )
    )


def drafting_line(drafting: dict, curve: list[dict]) -> str:
    """Speculative decoding, priced: the best input model and the best strategy as the target's drafter,
    greedy and sampling, each at its best gamma."""
    labels = dict(zip((point["model"] for point in curve), size_labels(curve)[0]))
    source = {"measured": "the sidecar's measured tokens/s", "parameters": "parameter counts"}[drafting["cost_source"]]
    parts = []
    for mode in ("greedy", "sampling"):
        model, entry = max(drafting["models"].items(), key=lambda item: item[1][mode]["speedup"])
        text = f"{mode} {labels.get(model, model)} {entry[mode]['speedup']:.2f}x (gamma {entry[mode]['gamma']})"
        best = drafting["best_strategy"].get(mode)
        if best is not None:
            chosen = drafting["strategies"][best]
            text += (
                f", {best} {chosen[mode]['speedup']:.2f}x (gamma {chosen[mode]['gamma']}, reads {len(chosen['reads'])})"
            )
        parts.append(text)
    return f"drafting for the target, wall-time speedup priced by cost from {source}: " + "; ".join(parts)


def header(result: DatasetResult | DatasetPredictions) -> str:
    n, num_inputs = result.n, len(result.inputs)
    return "\n" + wrapped(
        f"{short_path(str(result.path))}: {n} {plural(n, 'prefix', 'prefixes')}, {num_inputs} "
        f"input {plural(num_inputs, 'model', 'models')}, target {result.target}, vocabulary "
        f"{result.vocab_size}",
        indent="",
    )


def print_predictions(result: DatasetPredictions) -> None:
    """--predict-only's block: each strategy's count of guesses written, or its error."""
    print(header(result))
    width = max(len(run.name) for run in result.runs)
    for run in result.runs:
        note(
            f"{run.name:<{width}}  "
            + (
                f"error: {run.error}"
                if run.error
                else f"{result.n} guesses written" + (f" (learned: {run.fit})" if run.fit else "")
            )
        )


def note(text: str) -> None:
    """A leaderboard line, wrapped to the terminal's width."""
    print(wrapped(text))


def ranked(rows: list, metric: str) -> list[StrategyScore]:
    """The scored rows, best first by `metric`; those without it (token ids) after, by top-1."""
    scores = [row for row in rows if isinstance(row, StrategyScore)]
    sign = -1 if HIGHER_IS_BETTER[metric] else 1
    return sorted(scores, key=lambda row: (row.metric(metric) is None, sign * (row.metric(metric) or 0), -row.accuracy))


def print_leaderboard(result: DatasetResult, metric: str = "top1") -> None:
    """A dataset's leaderboard, ranked by `metric`: top-1 and one continuous metric (`metric`, else KL),
    each with its 95% interval and its paired comparison with the reference."""
    second = metric if metric != "top1" else "kl"
    scored = ranked(result.strategies, metric)
    print(header(result))
    for line in context_lines(result, second, scored):
        note(line)
    for line in fitted_table(leaderboard_columns(result, scored, second)):
        print(line)
    for line in footnotes(result, scored, second):
        note(line)


def context_lines(result: DatasetResult, second: str, scored: list[StrategyScore]) -> list[str]:
    """What the table stands on: the input models' agreement and `second` by size, the task, the noise
    ceiling and the KL floor, where the dataset has them."""
    lines = [emergence_line(result.emergence_curve()), emergence_line(result.emergence_curve(), second)]
    if result.task is not None:
        lines += task_lines(result)
    ceiling = result.noise_ceiling
    if ceiling is not None:
        low, high = ceiling["ci95"]
        lines.append(
            f"noise ceiling: another seed of the target ({short_name(ceiling['model'])}) agrees with it on "
            f"{ceiling['top1']:.1%} [{low:.1%}, {high:.1%}]; KL {ceiling['kl']['mean']:.3f}, "
            f"alpha {ceiling['alpha']['mean']:.3f}"
        )
    if result.kl_floor is not None:
        lines.append(kl_floor_line(result.kl_floor, [row.name for row in scored], result.emergence_curve()))
    return lines


def metric_cells(row: StrategyScore, name: str, reference: StrategyScore | None) -> tuple[str, str, str]:
    """(mean, interval, vs the reference) of one metric, "—" where the row has none."""
    if row.metric(name) is None:
        return "—", "", ""
    low, high = row.summary[name]["ci95"] if row.summary else row.ci95
    versus = row.versus or {}
    if row.name == reference.name:
        vs = "reference"
    elif name == "top1":
        vs = describe_comparison(versus)
    elif name in versus:
        vs = describe_comparison(versus[name]) if name == "top5" else describe_difference(versus[name])
    else:
        vs = ""
    return f"{row.metric(name):.3f}", f"[{low:.3f}, {high:.3f}]", vs


def name_width(result: DatasetResult) -> int:
    return max([12, *(len(row.name) for row in result.strategies)])


def task_accuracies(result: DatasetResult) -> dict | None:
    """Each strategy's task accuracy, where the dataset has a task."""
    return result.task.strategies if result.task is not None else None


def leaderboard_columns(result: DatasetResult, scored: list[StrategyScore], second: str) -> list[Column]:
    """The table's columns, one row per scored strategy: top-1 and `second`, each with its interval
    and its comparison with the reference, then seconds, emergent prefixes right and task accuracy."""
    reference, emergent = result.reference, result.emergent
    table = [(row, metric_cells(row, "top1", reference), metric_cells(row, second, reference)) for row in scored]
    width = name_width(result)
    label = LABELS[second] if second != "tokens_per_pass" else "tok/pass"
    # Where the terminal is narrow, the columns of highest fold move to a second part below.
    columns = [
        Column("strategy", [row.name.ljust(width) for row, _, _ in table]),
        Column("top-1", [top[0] for _, top, _ in table], right=True),
        Column("95% CI", [top[1] for _, top, _ in table], fold=2, folded_title="top-1 95% CI"),
        Column("vs ref", [top[2] if reference else "" for _, top, _ in table], fold=1, folded_title="top-1 vs ref"),
        Column(label, [other[0] for _, _, other in table], right=True),
        Column("95% CI", [other[1] for _, _, other in table], fold=2, folded_title=f"{label} 95% CI"),
        Column(
            "vs ref", [other[2] if reference else "" for _, _, other in table], fold=1, folded_title=f"{label} vs ref"
        ),
        Column("seconds", [f"{row.seconds:.2f}" for row, _, _ in table], right=True, fold=4),
        Column("emergent", [f"{row.emergent_correct}/{emergent}" for row, _, _ in table], right=True, fold=3),
    ]
    tasks = task_accuracies(result)
    if tasks is not None:
        columns.append(
            Column("task", [f"{tasks[row.name]['accuracy']:.1%}" for row, _, _ in table], right=True, fold=3)
        )
    return columns


def footnotes(result: DatasetResult, scored: list[StrategyScore], second: str) -> list[str]:
    """The lines under the table: failed strategies, what the columns mean, near ties, drafting, how the
    learned strategies were fitted, --compare's tests and the tied targets."""
    rows, width = result.strategies, name_width(result)
    lines = [f"{row.name:<{width}} error: {row.error}" for row in rows if not isinstance(row, StrategyScore)]
    lines += column_notes(result, second)
    ties = result.near_ties()
    if result.reference and ties["prefixes"]:
        lines.append(near_ties_line(ties, result.reference.name))
    if result.drafting is not None:
        lines.append(drafting_line(result.drafting, result.emergence_curve()))
    for fit in dict.fromkeys(row.fit for row in rows if isinstance(row, StrategyScore) and row.fit):
        names = [row.name for row in rows if isinstance(row, StrategyScore) and row.fit == fit]
        lines.append(f"learned, scored on prefixes never fitted on ({fit}): {', '.join(names)}")
    for comparison in result.comparisons:
        outcome = comparison.get("error") or describe_comparison(comparison)
        if "error" not in comparison and second in comparison:
            outcome += f"; {LABELS[second]} {describe_difference(comparison[second])}"
        lines.append(f"compare {comparison['a']} vs {comparison['b']}: {outcome}")
    tied = result.view.tied_targets
    if tied:
        lines.append(f"{tie_note(tied, [(row.name, row.tied_misses) for row in scored])}")
    return lines


def column_notes(result: DatasetResult, second: str) -> list[str]:
    """What the reference, "vs ref", "emergent" and "task" columns are."""
    n, reference, emergent = result.n, result.reference, result.emergent
    lines = []
    if reference:
        shown = any(row.name == reference.name for row in result.strategies)
        lines.append(
            f"reference: {reference.name}"
            + ("" if shown else f" (top-1 {reference.accuracy:.3f})")
            + f", the best here of the built-in heuristics {', '.join(REFERENCE_HEURISTICS)}"
        )
        lines.append(
            f"vs ref: top-1 +a/-b, prefixes a strategy gets right that the reference misses and the "
            f"reverse, exact McNemar p; {LABELS[second]}: the mean difference from the reference, paired "
            f"bootstrap p"
        )
    lines.append(
        f"emergent: {emergent} of {n} {plural(n, 'prefix', 'prefixes')} ({emergent / n:.1%}): no input "
        f"model's top-1 is the target's (the column: how many each got right)"
    )
    if task_accuracies(result) is not None:
        lines.append(
            "task: how often a strategy's top-1 is the answer's first token (the models' line above: "
            + ("their likelier choice" if result.task.rule == "choice" else "greedy decoding of the whole answer")
            + ")"
        )
    return lines


def near_ties_line(ties: dict, reference: str) -> str:
    """How many targets are near-tied, and how many of the reference's misses fall on them."""
    rest = ties["reference_top1_rest"]
    return (
        f"near-tied targets (the second token has at least {ties['threshold']:.0%} of the top-1's probability): "
        f"{ties['prefixes']} {plural(ties['prefixes'], 'prefix', 'prefixes')}; {ties['misses_on_near_tied']} of "
        f"{reference}'s {ties['reference_misses']} {plural(ties['reference_misses'], 'miss', 'misses')} "
        f"{plural(ties['misses_on_near_tied'], 'falls', 'fall')} on them (it is right on "
        f"{ties['reference_top1_near_tied']:.1%} of them" + ("" if rest is None else f", {rest:.1%} of the rest") + ")"
    )


def print_harder_here(rows: list[dict]) -> None:
    """ "Is prediction harder here?": the datasets side by side (`harness.scoring.tasks.harder_here`)."""

    def pct(value, ci=None) -> str:
        return "—" if value is None else f"{value:.1%}" + ("" if ci is None else f" [{ci[0]:.1%}, {ci[1]:.1%}]")

    def versus(row: dict, metric: str, scale: str) -> str:
        test = row.get("vs_baseline", {}).get(metric)
        if test is None:
            return "baseline" if row["baseline"] else "—"
        diff = f"{test['difference'] * 100:+.1f} pts" if scale == "pts" else f"{test['difference']:+.3f}"
        return f"{diff} p={format_p_value(test['p_value'])}"

    names = [short_path(row["path"]) for row in rows]
    print(
        "\n"
        + wrapped(
            f"is prediction harder here? each dataset against the baseline (unpaired: permutation "
            f"test, {NUM_RESAMPLES:,} permutations)",
            indent="",
        )
    )
    tasks = [row["task"] for row in rows]
    columns = [
        Column("dataset", names),
        Column("n", [str(row["n"]) for row in rows], right=True, fold=1),
        Column(
            "target task acc",
            ["—" if t is None else pct(t["target_accuracy"], t["target_accuracy_ci95"]) for t in tasks],
            fold=2,
        ),
        Column("rise", ["—" if t is None else f"{t['rise'] * 100:+.1f}" for t in tasks], right=True, fold=3),
        Column(
            "steepest", ["—" if t is None else f"{t['steepest_step'] * 100:+.1f}" for t in tasks], right=True, fold=4
        ),
        Column("best heuristic top-1", [pct(row["reference_top1"], row["reference_top1_ci95"]) for row in rows]),
        Column("vs baseline", [versus(row, "top1", "pts") for row in rows], folded_title="top-1 vs baseline"),
        Column(
            "its KL",
            ["—" if row["reference_kl"] is None else f"{row['reference_kl']['mean']:.3f}" for row in rows],
            right=True,
            fold=1,
            folded_title="best heuristic KL",
        ),
        Column("vs baseline", [versus(row, "kl", "nats") for row in rows], fold=1, folded_title="KL vs baseline"),
        Column("emergent", [f"{row['emergent']:.1%}" for row in rows], right=True, fold=2),
        Column(
            "noise ceiling",
            [
                "—" if row["noise_ceiling"] is None else pct(row["noise_ceiling"]["top1"], row["noise_ceiling"]["ci95"])
                for row in rows
            ],
            fold=3,
        ),
    ]
    for line in fitted_table(columns):
        print(line)
    note(
        "target task acc: the target's task accuracy; rise: task accuracy of the largest input minus the smallest's, "
        "in points; steepest: the largest rise between inputs of neighbouring size; best heuristic: the reference "
        f"(best of {', '.join(REFERENCE_HEURISTICS)}) on that dataset, its top-1 agreement with the target and its "
        "KL; vs baseline: the difference from the baseline (plain text: the first Wikipedia set without answers, or "
        "--baseline) (negative top-1, positive KL: harder here), with its two-sided p; noise ceiling: another seed "
        "of the target's top-1 agreement with it, where the dataset has one"
    )


def dataset_tokenizer(target: str, input_names: list[str]) -> tuple[tokenizers.Tokenizer | None, str | None]:  # noqa: F821
    """The tokenizer of a dataset: its target's, or its largest input model's in a public file (all share one)."""
    return local_tokenizer(input_names[-1] if target == HIDDEN_TARGET else target)


def prediction_rows(result: DatasetResult | DatasetPredictions) -> list[dict]:
    """The predictions CSV's rows, strategy by strategy, with the guessed (and target) tokens decoded."""
    if isinstance(result, DatasetResult):
        guessed, target_top1 = result.guesses, result.view.target_top1
        per_prefix = {
            row.name: row.per_prefix
            for row in result.strategies
            if isinstance(row, StrategyScore) and row.per_prefix is not None
        }
    else:
        guessed, target_top1, per_prefix = {run.name: run.guesses for run in result.runs if run.error is None}, None, {}
    if not guessed:
        return []
    tokenizer, reason = dataset_tokenizer(result.target, result.inputs)
    if tokenizer is None:
        print(f"warning: {result.path}: predictions without token text: {reason}", file=sys.stderr)
    guesses = np.stack(list(guessed.values()))
    ids = np.concatenate([guesses.ravel(), [] if target_top1 is None else target_top1]).astype(np.int64)
    texts = decode_ids(tokenizer, ids)
    guess_texts, target_texts = texts[: guesses.size].reshape(guesses.shape), texts[guesses.size :]
    rows = []
    for s, name in enumerate(guessed):
        for i in range(result.n):
            row = {
                "dataset": str(result.path),
                "strategy": name,
                "index": i,
                "sentence": result.sentences[i],
                "guess": int(guesses[s, i]),
                "guess_token": guess_texts[s, i],
            }
            if target_top1 is not None:
                row.update(
                    target_top1=int(target_top1[i]),
                    target_token=target_texts[i],
                    correct=bool(guesses[s, i] == target_top1[i]),
                )
                if name in per_prefix:
                    row.update(
                        {metric: round(float(per_prefix[name][metric][i]), 6) for metric in ("log_loss", "kl", "alpha")}
                    )
            rows.append(row)
    return rows


def print_shown(shown: ShownPrefix, top_k: int) -> None:
    """--show: every model's top-k tokens with probabilities (the target's marked), each guess, decoded,
    and each returned distribution's top-k (with its KL and alpha here, when the target is read)."""
    distributions = [(run.name, run.shown) for run in shown.runs if run.error is None and run.shown is not None]
    table = np.stack([row for _, row in shown.models] + [row for _, row in distributions])
    top = np.argsort(-table, axis=1, kind="stable")[:, :top_k]  # ties: the lower id first, as top-1 scoring does
    answer = shown.answer
    guesses = {run.name: int(run.guesses[shown.index]) for run in shown.runs if run.error is None}
    input_names = [name for name, _ in shown.models[: len(shown.models) - (answer is not None)]]
    tokenizer, reason = dataset_tokenizer(shown.target, input_names)
    ids = np.concatenate([top.ravel(), list(guesses.values()), [] if answer is None else [answer]]).astype(np.int64)
    text = dict(zip(ids.tolist(), decode_ids(tokenizer, ids)))
    # repr shows a token's leading space, newline or tab; without a tokenizer, the id alone.
    token = (lambda i: repr(text[i])) if tokenizer is not None else (lambda i: f"#{i}")
    with_id = (lambda i: f"{token(i)} (id {i})") if tokenizer is not None else token
    tops = lambda m: " · ".join(f"{token(i)} {table[m, i]:.3f}" for i in top[m].tolist())

    print(f"{short_path(str(shown.path))}: prefix {shown.index} of {shown.n}, target {shown.target}")
    note(f"prefix: {shown.sentence!r}")
    if shown.difficulty is not None:
        note(f"difficulty: KL(target || {shown.difficulty[0]}, the reference) = {shown.difficulty[1]:.3f} nats")
    if tokenizer is None:
        note(f"token ids only: {reason}")
    width = max(len(name) for name, _ in shown.models)
    print(f"  {'model':<{width}}  top-{top.shape[1]} tokens, probability")
    for m, (name, _) in enumerate(shown.models):
        note(f"{name:<{width}}  {tops(m)}")
    width = max([len(run.name) for run in shown.runs] + [8])
    print(f"  {'strategy':<{width}}  guess" + ("" if answer is None else f" (the target's top-1: {with_id(answer)})"))
    for run in shown.runs:
        if run.error:
            note(f"{run.name:<{width}}  error: {run.error}")
        else:
            verdict = "" if answer is None else "  right" if guesses[run.name] == answer else "  wrong"
            here = ""
            if run.metrics is not None:
                here = f"  (KL {run.metrics['kl'][shown.index]:.3f}, alpha {run.metrics['alpha'][shown.index]:.3f})"
            note(f"{run.name:<{width}}  {with_id(guesses[run.name])}{verdict}{here}")
    if distributions:
        print(f"  {'strategy':<{width}}  top-{top.shape[1]} tokens of its distribution, probability")
        for m, (name, _) in enumerate(distributions, start=len(shown.models)):
            note(f"{name:<{width}}  {tops(m)}")


def predictions_csv(results: list[DatasetResult | DatasetPredictions], predicting: bool) -> str:
    """The predictions CSV of a run's datasets (PREDICTION_COLUMNS; the first six when predicting only)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, PREDICTION_COLUMNS[:6] if predicting else PREDICTION_COLUMNS)
    writer.writeheader()
    for result in results:
        writer.writerows(prediction_rows(result))
    return buffer.getvalue()
