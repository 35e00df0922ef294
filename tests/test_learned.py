"""Learned strategies: the folds, the training split, train/test disjointness and the log-linear pool
(the engine's fit protocols are tested in test_evaluate.py).

numpy only (no torch): these run in the numpy-1.x CI job too.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import InputError
from harness.scoring.learned import TrainingSplit, check_disjoint, fold_indices
from harness.scoring.top1 import top1
from strategies.loglinear import fit_weights, pooled_softmax


def synthetic(n: int, models: int = 3, vocab: int = 40, seed: int = 0, weights=(-1.0, 0.5, 2.0)):
    """Random distributions, and a target whose top-1 is the argmax of a known log-linear pool."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, models, vocab)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    probs = probs.astype(np.float16)
    target_top1 = top1(pooled_softmax(probs, np.array(weights)))
    target_probs = np.eye(vocab, dtype=np.float16)[target_top1]
    sentences = [f"prefix {i}" for i in range(n)]
    return sentences, probs, target_probs, target_top1


def test_folds_partition_the_prefixes_and_depend_on_the_seed():
    folds = fold_indices(103, 5, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(103))
    assert sorted(len(f) for f in folds) == [20, 20, 21, 21, 21]
    assert [f.tolist() for f in fold_indices(103, 5, seed=1)] == [f.tolist() for f in folds]
    assert [f.tolist() for f in fold_indices(103, 5, seed=2)] != [f.tolist() for f in folds]
    with pytest.raises(InputError, match="--folds"):
        fold_indices(10, 1, seed=0)


def test_a_strategy_cannot_write_into_what_it_is_given():
    sentences, probs, target_probs, target_top1 = synthetic(20)
    train = TrainingSplit.from_arrays(
        sentences, ["a", "b", "c"], "target", probs, target_probs, target_top1, chunk_size=7
    )
    chunk = next(train.chunks())
    for array in (
        train.probs_per_sentences,
        train.target_probs,
        train.target_top1,
        chunk.probs_per_sentences,
        chunk.target_probs,
        chunk.target_top1,
    ):
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0
        with pytest.raises(ValueError):  # and no strategy can unlock it again
            array.view().flags.writeable = True
    assert probs.flags.writeable  # the caller's own array stays as it was


def test_a_train_file_sharing_prefixes_with_the_test_file_is_refused():
    check_disjoint("train.pkl", ["a", "b"], "test.pkl", ["c"])
    with pytest.raises(InputError, match=r"train\.pkl: shares 1 prefix with test\.pkl"):
        check_disjoint("train.pkl", ["a", "b"], "test.pkl", ["b", "c"])


def test_loglinear_recovers_a_known_pool():
    sentences, probs, target_probs, target_top1 = synthetic(600, seed=3)
    train = TrainingSplit.from_arrays(
        sentences[:400], ["a", "b", "c"], "target", probs[:400], target_probs[:400], target_top1[:400]
    )
    weights = fit_weights(train.chunks, 3)
    # The pool's argmax does not change with the weights' scale: compare directions.
    true = np.array([-1.0, 0.5, 2.0])
    cosine = weights @ true / np.linalg.norm(weights) / np.linalg.norm(true)
    assert cosine > 0.95, weights
    held_out = top1(pooled_softmax(probs[400:], weights)) == target_top1[400:]
    largest = probs[400:, -1].argmax(axis=1) == target_top1[400:]
    assert held_out.mean() > 0.9 > largest.mean()


DECORATOR_ORDERS = """
from strategies import learned, register

@learned
@register("fit-above")
def fit_above(train):
    return lambda sentences, names, target, probs: probs[:, -1].argmax(axis=1)

@register("fit-below")
@learned
def fit_below(train):
    return lambda sentences, names, target, probs: probs[:, -1].argmax(axis=1)

@register("fit-flag", learned=True)
def fit_flag(train):
    return lambda sentences, names, target, probs: probs[:, -1].argmax(axis=1)
"""


def test_learned_counts_above_or_below_register(tmp_path):
    """Whichever order the decorators stand in, the registered strategy is scored as learned."""
    from harness.scoring.registry import REGISTRY, load_from_file

    path = tmp_path / "orders.py"
    path.write_text(DECORATOR_ORDERS)
    try:
        load_from_file(f"{path}:fit_above")  # importing the file registers all three
        assert [REGISTRY[name].is_learned for name in ("fit-above", "fit-below", "fit-flag")] == [True] * 3
    finally:
        for name in ("fit-above", "fit-below", "fit-flag"):
            REGISTRY.pop(name, None)


def test_train_mean_is_the_training_targets_mean_whatever_the_inputs():
    from harness.scoring.registry import REGISTRY
    from strategies import load_builtin

    load_builtin()
    inputs = np.array([[[0.5, 0.5]], [[1, 0]]], dtype=np.float16)
    target = np.array([[1, 0], [0.5, 0.5]], dtype=np.float16)
    train = TrainingSplit.from_arrays(["a", "b"], ["m"], "t", inputs, target, np.array([0, 0]), chunk_size=1)
    predict = REGISTRY["train-mean"].fn(train)
    out = predict(["c", "d", "e"], ["m"], "t", np.zeros((3, 1, 2), dtype=np.float16))
    assert out.shape == (3, 2) and np.allclose(out, [[0.75, 0.25]] * 3)


def test_a_sample_of_a_split_reads_only_its_prefixes_in_order():
    probs = np.arange(6 * 2 * 3, dtype=np.float16).reshape(6, 2, 3)  # 6 prefixes, 1 input + target, V = 3
    # The split holds rows 1-5 of the array; a sample of 3 keeps rows in their order, with their sentences.
    train = TrainingSplit(
        [f"s{i}" for i in range(1, 6)], ["a"], "t", probs, np.arange(1, 6), [0], 1, np.arange(1, 6), chunk_size=2
    )
    sample = train.sample(3, seed=0)
    keep = np.sort(np.random.default_rng(0).choice(5, size=3, replace=False))
    assert len(sample) == 3 and list(sample.sentences) == [f"s{i + 1}" for i in keep]
    assert sample.target_top1.tolist() == (keep + 1).tolist()
    chunks = list(sample.chunks())
    assert [len(c.sentences) for c in chunks] == [2, 1]  # the split's chunk size
    assert np.array_equal(np.concatenate([c.probs_per_sentences for c in chunks]), probs[keep + 1, :1])
    assert np.array_equal(np.concatenate([c.target_probs for c in chunks]), probs[keep + 1, 1])
    assert train.sample(5) is train and train.sample(9) is train  # no smaller: the split itself
