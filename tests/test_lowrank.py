"""`lowrank`, the learned correction to the log-linear pool: it learns what the pool cannot, only from
the training split, the same fits for the same seed, the same guesses whatever the chunk size; and a
strategy that needs a missing package is skipped with a note, or refused when named.

Needs torch for the fits (skipped without it); the skip itself is tested either way.
"""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

from harness import InputError
from harness.data.dataset import save_dataset
from harness.scoring.evaluate import Settings, score_dataset
from harness.scoring.learned import TrainingSplit, fold_indices
from harness.scoring.registry import REGISTRY, resolve, unavailable
from strategies import load_builtin
from strategies.lowrank import MIN_PREFIXES

load_builtin()
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="lowrank's fit needs torch")
VOCAB = 40


def context_dependent(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two input models and a target over VOCAB tokens: the target is the larger model, except that
    when the larger model's top token is one of the first ten, it moves most of its mass to token
    (top + 10). No fixed pool of the inputs can say that; a correction that reads the larger model can."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, 1, VOCAB)) + rng.normal(0, 1, (n, 2, VOCAB))
    target = logits[:, 1].copy()
    top = target.argmax(axis=1)
    moved = np.flatnonzero(top < 10)
    target[moved, top[moved] + 10] = target[moved, top[moved]] + 2
    probs = np.concatenate([logits, target[:, None]], axis=1)
    probs = np.exp(probs - probs.max(axis=2, keepdims=True))
    probs /= probs.sum(axis=2, keepdims=True)
    return probs.astype(np.float16), np.flatnonzero(top < 10)


def split_of(probs: np.ndarray) -> TrainingSplit:
    return TrainingSplit.from_arrays(
        [f"p{i}" for i in range(len(probs))],
        ["small", "large"],
        "target",
        probs[:, :2],
        probs[:, 2],
        probs[:, 2].astype(np.float32).argmax(axis=1),
    )


def fit(name: str, probs: np.ndarray, seed: int = 0):
    np.random.seed(seed)  # as the engine seeds every strategy before its fit
    return REGISTRY[name].fn(split_of(probs))


def kl(target: np.ndarray, predicted: np.ndarray) -> float:
    t = target.astype(np.float64)
    t /= t.sum(axis=1, keepdims=True)
    return float((t * (np.log(np.maximum(t, 1e-30)) - np.log(np.maximum(predicted, 2.0**-24)))).sum(axis=1).mean())


@needs_torch
def test_lowrank_learns_what_the_pool_cannot_and_predicts_prefixes_it_never_saw():
    train, _ = context_dependent(400, seed=1)
    test, moved = context_dependent(200, seed=2)
    lowrank, pool = fit("lowrank", train), fit("loglinear-ce", train)
    assert lowrank.epochs > 0  # cross-validation kept the correction
    predicted = lowrank(None, None, None, test[:, :2])
    assert predicted.shape == (200, VOCAB) and np.allclose(predicted.sum(axis=1), 1, atol=1e-5)
    pooled = pool(None, None, None, test[:, :2])
    # Where the target moved its mass, the correction must have learned to follow it (measured on three
    # seeds of this data: 0.82-0.83 of the pool's KL there, 0.86-0.88 overall; no correction would be 1).
    assert kl(test[moved, 2], predicted[moved]) < 0.9 * kl(test[moved, 2], pooled[moved])
    assert kl(test[:, 2], predicted) < 0.95 * kl(test[:, 2], pooled)
    assert np.array_equal(lowrank.weights, pool.weights)  # the pool it corrects is loglinear-ce's


@needs_torch
def test_the_same_seed_gives_the_same_fit_and_chunks_give_the_same_distributions():
    train, _ = context_dependent(240, seed=3)
    test, _ = context_dependent(23, seed=4)
    first, again, other = fit("lowrank", train, 0), fit("lowrank", train, 0), fit("lowrank", train, 1)
    assert first.epochs > 0  # fitted: the seed matters
    whole = first(None, None, None, test[:, :2])
    assert np.array_equal(whole, again(None, None, None, test[:, :2]))
    assert not np.array_equal(whole, other(None, None, None, test[:, :2]))
    for size in (1, 7):
        chunks = [first(None, None, None, test[start : start + size, :2]) for start in range(0, len(test), size)]
        assert np.array_equal(np.concatenate(chunks).argmax(axis=1), whole.argmax(axis=1))
        assert np.allclose(np.concatenate(chunks), whole, rtol=1e-6, atol=1e-9)


@needs_torch
def test_too_few_prefixes_leave_the_pool_alone():
    train, _ = context_dependent(MIN_PREFIXES - 1, seed=5)
    lowrank, pool = fit("lowrank", train), fit("loglinear-ce", train)
    assert lowrank.epochs == 0 and lowrank.cv_scores == {}
    test, _ = context_dependent(10, seed=6)
    assert np.allclose(lowrank(None, None, None, test[:, :2]), pool(None, None, None, test[:, :2]))


def spy_on_fits(monkeypatch, name: str) -> list[dict]:
    """Every fit of the registered strategy `name` from now on: what its training split held, and the
    strategy function it returned."""
    fits, original = [], REGISTRY[name]

    def fit(split):
        predictor = original.fn(split)
        fits.append(
            {
                "sentences": split.sentences,
                "inputs": np.array(split.probs_per_sentences),
                "target": np.array(split.target_probs),
                "predictor": predictor,
            }
        )
        return predictor

    fit.learned, fit.requires = original.fn.learned, original.fn.requires
    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(original, fn=fit))
    return fits


@needs_torch
def test_the_engine_scores_lowrank_on_a_test_file_it_never_fitted_on(tmp_path, monkeypatch):
    train, _ = context_dependent(MIN_PREFIXES, seed=7)
    names = ["small", "large", "target"]
    save_dataset(tmp_path / "train.pkl", names, [f"train {i}" for i in range(MIN_PREFIXES)], train)
    tests = {"a": context_dependent(50, seed=8)[0], "b": context_dependent(50, seed=9)[0]}
    for label, probs in tests.items():  # the same 50 prefixes, other distributions
        save_dataset(tmp_path / f"{label}.pkl", names, [f"test {i}" for i in range(50)], probs)
    fits = spy_on_fits(monkeypatch, "lowrank")
    probe = context_dependent(20, seed=10)[0][:, :2]

    def score(label: str, **settings) -> tuple:
        """(its row, the fits made for it, their guesses on `probe`)."""
        before = len(fits)
        [row] = score_dataset(tmp_path / f"{label}.pkl", resolve(["lowrank"]), Settings(**settings)).strategies
        made = fits[before:]
        return row, made, [fit["predictor"](None, None, None, probe) for fit in made]

    row_a, [fit_a], [guess_a] = score("a", train=tmp_path / "train.pkl")
    row_a7, _, _ = score("a", train=tmp_path / "train.pkl", chunk_size=7)
    row_b, [fit_b], [guess_b] = score("b", train=tmp_path / "train.pkl")
    # The one fit saw the training file, all of it and nothing else: its prefixes and their distributions.
    for fit in (fit_a, fit_b):
        assert fit["sentences"] == tuple(f"train {i}" for i in range(MIN_PREFIXES))
        assert np.array_equal(fit["inputs"], train[:, :2]) and np.array_equal(fit["target"], train[:, 2])
    assert fit_a["predictor"].epochs > 0  # the correction was fitted, not only the pool
    # So what it learned does not depend on the file it scores: b's distributions change the fit not at all.
    assert np.array_equal(fit_a["predictor"].weights, fit_b["predictor"].weights)
    assert np.array_equal(guess_a, guess_b)
    assert not np.array_equal(row_a.hits, row_b.hits)  # though b's prefixes are guessed otherwise
    assert row_a.fit.startswith("fit on ") and row_a.fit.endswith("train.pkl")
    assert np.array_equal(row_a.hits, row_a7.hits)  # guesses do not depend on the chunk size
    # The same check can fail: by cross-validation on the scored file itself, the fits do read its prefixes
    # (never the fold they predict), and a's and b's distributions give other fits.
    _, folds_a, guesses_a = score("a")
    _, folds_b, guesses_b = score("b")
    assert len(folds_a) == len(folds_b) == 5
    for fit, held_out in zip(folds_a, fold_indices(50, 5, 0)):
        assert set(fit["sentences"]) == {f"test {i}" for i in range(50)} - {f"test {i}" for i in held_out}
    assert all(not np.array_equal(a, b) for a, b in zip(guesses_a, guesses_b))


def test_a_strategy_needing_a_missing_package_is_skipped_with_a_note_and_refused_when_named(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    names = [strategy.name for strategy in resolve(None)]
    assert "lowrank" not in names and "loglinear-ce" in names
    assert unavailable() == ["lowrank needs torch (pip install -r requirements-dev.txt)"]
    with pytest.raises(InputError, match="lowrank needs torch"):
        resolve(["lowrank"])
