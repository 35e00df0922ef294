"""The built-in heuristics and `loglinear-ce` return distributions: each row sums to 1, and each
top-1 (the argmax, the first on ties) is the guess the id-returning strategy gave before; `loglinear`
returns that guess, as ids.

numpy only (no torch): these run in the numpy-1.x CI job too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.data.dataset import Dataset, load_dataset
from harness.scoring.learned import TrainingSplit
from harness.scoring.top1 import top1
from strategies import REGISTRY, load_builtin
from strategies.loglinear import blocks, log_probs, pooled_logits, pooled_softmax

DATA = Path(__file__).resolve().parent.parent / "data"
HEURISTICS = ("average", "largest", "top2-average")

# The one-liners of the id-returning strategies, as they were before they returned distributions.
OLD = {
    "average": lambda probs: probs.sum(axis=1, dtype=np.float32).argmax(axis=1),
    "largest": lambda probs: probs[:, -1].argmax(axis=1),
    "top2-average": lambda probs: probs[:, -2:].sum(axis=1, dtype=np.float32).argmax(axis=1),
}


def old_loglinear(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The former `pooled_argmax`: argmax of the pooled logits, block by block."""
    return np.concatenate([pooled_logits(log_probs(probs[rows]), weights).argmax(axis=1) for rows in blocks(probs)])


def run(name: str, probs: np.ndarray, predict=None) -> np.ndarray:
    """A strategy's output on read-only input models (N, M-1, V), as the engine calls it."""
    probs = probs.view()
    probs.flags.writeable = False
    fn = predict or REGISTRY[name].fn
    return fn([f"prefix {i}" for i in range(len(probs))], [f"m{j}" for j in range(probs.shape[1])], "target", probs)


def check_distribution(out: np.ndarray, n: int, v: int) -> None:
    assert out.shape == (n, v) and out.dtype in (np.float16, np.float32)
    assert (out >= 0).all()
    assert np.abs(out.astype(np.float64).sum(axis=1) - 1).max() < 1e-3


load_builtin()

# Two models over four tokens; probabilities exact in float16, rows summing to 1.
TIES = np.array(
    [
        [[0.25, 0.25, 0.25, 0.25], [0.125, 0.375, 0.375, 0.125]],  # every strategy ties tokens 1 and 2: 1
        [[0.5, 0.0, 0.0, 0.5], [0.5, 0.0, 0.0, 0.5]],  # 0 and 3 tie (and zeros): 0
        [[0.0, 0.25, 0.75, 0.0], [0.0, 0.625, 0.375, 0.0]],  # the largest says 1; the mean is (0, 7/16, 9/16, 0): 2
    ],
    dtype=np.float16,
)


@pytest.mark.parametrize("name", HEURISTICS)
def test_heuristics_on_ties_keep_the_first_top1(name):
    out = run(name, TIES)
    check_distribution(out, 3, 4)
    expected = {"average": [1, 0, 2], "largest": [1, 0, 1], "top2-average": [1, 0, 2]}[name]
    assert top1(out).tolist() == OLD[name](TIES).tolist() == expected


def test_the_heuristics_distributions_by_hand():
    assert run("average", TIES)[2].tolist() == [0, 7 / 16, 9 / 16, 0]
    assert run("top2-average", TIES)[0].tolist() == [0.1875, 0.3125, 0.3125, 0.1875]
    largest = run("largest", TIES)
    assert largest.dtype == np.float16 and np.shares_memory(largest, TIES)  # a view, not a copy
    assert largest[2].tolist() == [0, 0.625, 0.375, 0]


def test_a_pool_on_ties_keeps_the_first_top1():
    # w = (1, 1): the pool is p_0 p_1 normalized. Row 0: (1, 3, 3, 1) / 32 -> (1/8, 3/8, 3/8, 1/8), a tie;
    # row 1: (1/4, FLOOR^2, FLOOR^2, 1/4), a tie; row 2: 5/32 for token 1 against 9/32 for token 2.
    weights = np.array([1.0, 1.0])
    out = pooled_softmax(TIES, weights)
    check_distribution(out, 3, 4)
    assert out[0] == pytest.approx([0.125, 0.375, 0.375, 0.125])
    assert out[1] == pytest.approx([0.5, 0, 0, 0.5], abs=1e-12)
    assert top1(out).tolist() == old_loglinear(TIES, weights).tolist() == [1, 0, 2]


@pytest.fixture(scope="module", params=["wikipedia", "glue-rte"])
def split_files(request):
    train, test = DATA / f"{request.param}-train.pkl", DATA / f"{request.param}-test.pkl"
    if train.exists() and test.exists():
        return load_dataset(train), load_dataset(test)
    # A fresh clone has no split files (bash suite/build_splits.sh builds them): the committed
    # dataset's first 60 prefixes fit, the rest (40-50) are tested.
    bundled = load_dataset(DATA / f"{request.param}.pkl")
    half = lambda rows: Dataset(bundled.path, bundled.model_names, bundled.sentences[rows], bundled.probs[rows])
    return half(slice(0, 60)), half(slice(60, None))


def training_split(dataset) -> TrainingSplit:
    m = len(dataset.model_names)
    return TrainingSplit(
        dataset.sentences,
        dataset.model_names[:-1],
        dataset.model_names[-1],
        dataset.probs,
        np.arange(len(dataset.sentences)),
        range(m - 1),
        m - 1,
        top1(dataset.probs[:, -1]),
    )


def test_on_the_bundled_splits_every_top1_is_the_old_guess(split_files):
    train, test = split_files
    inputs = test.probs[:, :-1]
    n, _, v = inputs.shape
    for name in HEURISTICS:
        out = run(name, inputs)
        check_distribution(out, n, v)
        assert np.array_equal(top1(out), OLD[name](inputs)), name
    predict = REGISTRY["loglinear-ce"].fn(training_split(train))
    out = run("loglinear-ce", inputs, predict)
    check_distribution(out, n, v)
    assert np.array_equal(top1(out), old_loglinear(inputs, predict.weights))
    predict = REGISTRY["loglinear"].fn(training_split(train))
    assert np.array_equal(run("loglinear", inputs, predict), old_loglinear(inputs, predict.weights))


def test_top2_average_of_a_single_input_model_is_that_model():
    probs = np.array([[[0.25, 0.75]], [[1.0, 0.0]]], dtype=np.float16)  # 2 prefixes, 1 input model
    out = REGISTRY["top2-average"].fn(["a", "b"], ["m"], "t", probs)
    assert out.tolist() == [[0.25, 0.75], [1.0, 0.0]]
