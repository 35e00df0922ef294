"""Tasks: accuracy against scale, and whether prediction is harder on a task.

Wei et al. (2022) call an ability emergent when task accuracy is near chance for the smaller
models of a family and then rises with size. For a prefix set with answers (`preprocess_train.py`'s
answer pass), `task_curve` gives each model's task accuracy (the target's too) and its answer
log-likelihood, the continuous measure of Schaeffer et al. (2023) and Snell et al. (2024), each
with a 95% interval; and each strategy's task accuracy, where its top-1 is the answer's first token.

`harder_here` puts several datasets side by side ("is prediction harder here?", the challenge's
third question): the target's task accuracy, how sharply accuracy rises across the inputs, the
challenge's difficulty (the best heuristic's top-1, and its KL where it returns distributions),
each dataset tested against a plain-text one with an unpaired test (`unpaired_test`), and
the noise ceiling (another seed of the target) where the dataset carries one.
numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import InputError
from harness.data.dataset import AnswerScores
from harness.scoring.stats import NUM_RESAMPLES, bootstrap_ci, bootstrap_means, percentile_ci

PERMUTATION_BLOCK = 500  # permutations at a time: (block, n) indices stay small


@dataclass
class TaskCurve:
    """One dataset's task scores. Per model, in the dataset's order (the target last, or where
    `--target` put it): `accuracy` and `loglik` (mean answer log-likelihood, nats), each with its 95%
    percentile bootstrap interval, and `first_top1`. `strategies`: each scored strategy's task
    accuracy (its top-1 is the answer's first token) with its interval."""

    rule: str  # "choice": the likelier of the choices; "greedy": greedy decoding writes it
    chance: float | None  # a choice task's chance level (1 / choices)
    models: list[str]
    accuracy: list[float]
    accuracy_ci95: list[tuple[float, float]]
    loglik: list[float]
    loglik_ci95: list[tuple[float, float]]
    first_top1: list[float]
    strategies: dict[str, dict] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "rule": self.rule,
            "chance": self.chance,
            "models": [
                {
                    "name": name,
                    "accuracy": acc,
                    "ci95": list(ci),
                    "answer_loglik": ll,
                    "answer_loglik_ci95": list(ll_ci),
                    "first_token_top1": first,
                }
                for name, acc, ci, ll, ll_ci, first in zip(
                    self.models, self.accuracy, self.accuracy_ci95, self.loglik, self.loglik_ci95, self.first_top1
                )
            ],
            "strategies": self.strategies,
        }


def task_curve(scores: AnswerScores, models: list[str], n: int, seed: int = 0) -> TaskCurve:
    """Task accuracy and answer log-likelihood of every model on the first `n` prefixes."""
    correct = scores.correct[:, :n]
    loglik = scores.loglik[:, :n]
    resampled = bootstrap_means(loglik.T, seed)  # (resamples, models): one set of resamples for every model
    return TaskCurve(
        rule="greedy" if scores.choices is None else "choice",
        chance=None if scores.choices is None else 1 / len(scores.choices),
        models=list(models),
        accuracy=[float(c.mean()) for c in correct],
        accuracy_ci95=[bootstrap_ci(c, seed=seed) for c in correct],
        loglik=[float(ll.mean()) for ll in loglik],
        loglik_ci95=[percentile_ci(resampled[:, j]) for j in range(len(models))],
        first_top1=[float(f.mean()) for f in scores.first_top1[:, :n]],
    )


def strategy_task_accuracy(guesses: np.ndarray, scores: AnswerScores, seed: int = 0) -> dict:
    """A strategy's task accuracy: how often its top-1 guess is the answer's first token."""
    right = guesses == scores.first_ids[: len(guesses)]
    return {"accuracy": float(right.mean()), "ci95": list(bootstrap_ci(right, seed=seed))}


def steepest_rise(accuracy: list[float], order: list[int]) -> dict:
    """How sharply accuracy rises across models (`order`: smallest first): the whole rise from the
    smallest to the largest, and the largest rise between neighbours in size, with where it is."""
    values = np.array([accuracy[j] for j in order])
    steps = np.diff(values)
    at = int(np.argmax(steps)) if len(steps) else 0
    return {
        "rise": float(values[-1] - values[0]),
        "steepest_step": float(steps[at]) if len(steps) else 0.0,
        "steepest_between": [order[at], order[at + 1]] if len(steps) else None,
    }


def unpaired_test(first: np.ndarray, other: np.ndarray, seed: int = 0, permutations: int = NUM_RESAMPLES) -> dict:
    """`other` against `first`, values of two different prefix sets: the difference of means
    (other - first), its 95% bootstrap interval (each set resampled on its own), and the two-sided
    permutation p-value of "same mean": how often relabelling the pooled values gives a difference
    at least as far from 0 ((1 + count) / (1 + permutations), never 0)."""
    first, other = np.asarray(first, dtype=np.float64), np.asarray(other, dtype=np.float64)
    difference = float(other.mean() - first.mean())
    resampled = bootstrap_means(other[:, None], seed)[:, 0] - bootstrap_means(first[:, None], seed + 1)[:, 0]
    pooled, n_first = np.concatenate([first, other]), len(first)
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, permutations, PERMUTATION_BLOCK):
        count = min(PERMUTATION_BLOCK, permutations - start)
        shuffled = rng.permuted(np.broadcast_to(pooled, (count, len(pooled))), axis=1)
        gap = shuffled[:, n_first:].mean(axis=1) - shuffled[:, :n_first].mean(axis=1)
        extreme += int((np.abs(gap) >= abs(difference) - 1e-12).sum())
    return {
        "difference": difference,
        "ci95": list(percentile_ci(resampled)),
        "p_value": (1 + extreme) / (1 + permutations),
        "permutations": permutations,
    }


def names_dataset(name: str, path: str | Path) -> bool:
    """Whether `--baseline name` means the dataset at `path`: its path, file name or stem."""
    return name in (str(path), Path(path).name, Path(path).stem)


def pick_baseline(results: list, name: str | None = None):
    """The dataset the others are tested against: the one `name`d (its path or file stem), else plain
    text: the first Wikipedia set (`wikipedia*.pkl`) without answers, else the first set without
    answers, else the first. None if none has a reference (nothing to test)."""
    candidates = [r for r in results if r.reference is not None]
    if name is not None:
        named = [r for r in candidates if names_dataset(name, r.path)]
        if not named:
            raise InputError(f"--baseline {name}: not one of the scored datasets")
        return named[0]
    plain = [r for r in candidates if r.task is None]
    wikipedia = [r for r in plain if Path(r.path).name.startswith("wikipedia")]
    return (wikipedia or plain or candidates or [None])[0]


def harder_here(results: list, seed: int = 0, baseline_name: str | None = None) -> list[dict]:
    """One row per scored dataset (`harness.scoring.evaluate.DatasetResult`): its task's accuracy and rise
    where it has answers, and the challenge's difficulty, every dataset tested against the baseline
    (`pick_baseline`; unpaired: different prefixes)."""
    rows = []
    baseline = pick_baseline(results, baseline_name)
    first = (
        None
        if baseline is None
        else (
            baseline.reference.hits,
            None if baseline.reference.per_prefix is None else baseline.reference.per_prefix["kl"],
        )
    )
    for result in results:
        reference = result.reference
        row = {
            "path": str(result.path),
            "n": result.n,
            "reference": None if reference is None else reference.name,
            "reference_top1": None if reference is None else reference.accuracy,
            "reference_top1_ci95": None if reference is None else list(reference.ci95),
            "reference_kl": None,
            "emergent": result.emergent / result.n,
            "task": None,
            "noise_ceiling": result.noise_ceiling,
            "baseline": result is baseline,
        }
        kl = None if reference is None or reference.per_prefix is None else reference.per_prefix["kl"]
        if kl is not None:
            row["reference_kl"] = reference.summary["kl"]
        task = result.task
        if task is not None:
            target = result.model_names.index(result.target)
            inputs = [result.model_names.index(name) for name in result.inputs]
            order = [inputs[j] for j in result.by_size()]
            row["task"] = {
                "rule": task.rule,
                "chance": task.chance,
                "target_accuracy": task.accuracy[target],
                "target_accuracy_ci95": list(task.accuracy_ci95[target]),
                **steepest_rise(task.accuracy, order),
            }
            if row["task"]["steepest_between"] is not None:
                row["task"]["steepest_between"] = [task.models[j] for j in row["task"]["steepest_between"]]
        if reference is not None and result is not baseline:
            row["vs_baseline"] = {"top1": unpaired_test(first[0], reference.hits, seed)}
            if kl is not None and first[1] is not None:
                row["vs_baseline"]["kl"] = unpaired_test(first[1], kl, seed)
        rows.append(row)
    return rows
