"""The engine (harness.scoring.evaluate) called directly: chunked strategy calls, the fit protocols of
learned strategies, failures in rows, what a strategy can reach, --predict-only and --show, and
the typed results. Small hand-built datasets, expected values worked out by hand. numpy only.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from test_learned import synthetic

import harness.scoring.evaluate
from harness import InputError
from harness.data.dataset import save_dataset
from harness.scoring.evaluate import (
    DatasetResult,
    Settings,
    default_datasets,
    predict_dataset,
    score_dataset,
    show_prefix,
)
from harness.scoring.registry import REGISTRY, Strategy, learned, whole_array
from harness.scoring.top1 import StrategyFailure, StrategyScore, top1
from strategies import load_builtin

NAMES = ["small", "medium", "large", "target"]
SIZES = (1_000, 20_000, 300_000, 5_000_000)


def write(path, sentences, inputs, target_probs, names=NAMES):
    """A dataset with a sidecar giving every model's size; the target last."""
    models = [{"name": n, "non_embedding_params": s, "total_params": s + 10_000} for n, s in zip(names, SIZES)]
    save_dataset(path, names, sentences, np.concatenate([inputs, target_probs[:, None]], axis=1), {"models": models})
    return path


@pytest.fixture
def seven(tmp_path):
    """7 prefixes, 3 input models and a target over 40 tokens."""
    sentences, probs, target_probs, _ = synthetic(7, seed=1)
    return write(tmp_path / "seven.pkl", sentences, probs, target_probs)


def builtin(*names):
    load_builtin()
    return [REGISTRY[name] for name in names]


def strategy(fn, name=None):
    return Strategy(name or fn.__name__, fn, "")


def scores(result: DatasetResult) -> dict:
    return {row.name: row.accuracy if isinstance(row, StrategyScore) else row.error for row in result.strategies}


def settings(**kw) -> Settings:
    return Settings(progress=False, **kw)


# ---- chunks


def both_generators(sentences, model_names, target_model_name, probs):
    """Uses the sentence text, Python's random and numpy's: none may depend on how prefixes are chunked."""
    noise = np.array([random.random() for _ in sentences]) + np.random.random(len(sentences))
    return (probs[:, 0].argmax(axis=1) + (noise > 1) + np.array([len(s) for s in sentences])) % probs.shape[2]


@pytest.mark.parametrize("chunk_size", [1, 3, 7])
def test_guesses_do_not_depend_on_the_chunk_size(seven, chunk_size):
    chosen = builtin("random", "average", "largest", "top2-average") + [strategy(both_generators)]
    chunked = score_dataset(seven, chosen, settings(chunk_size=chunk_size))
    whole = score_dataset(seven, chosen, settings())  # the default chunk holds all 7 prefixes
    assert chunked.guesses.keys() == whole.guesses.keys() == {s.name for s in chosen}
    for name, guesses in whole.guesses.items():
        assert chunked.guesses[name].tolist() == guesses.tolist(), name
    # ... and every strategy's guesses are those of one call on every prefix, seeded as the original did.
    _, probs, _, _ = synthetic(7, seed=1)
    for s in chosen:
        random.seed(0)
        np.random.seed(0)
        returned = np.asarray(s.fn([f"prefix {i}" for i in range(7)], NAMES[:3], "target", probs))
        assert (top1(returned) if returned.ndim == 2 else returned).tolist() == whole.guesses[s.name].tolist()


def test_a_learned_fit_agrees_across_chunk_sizes(tmp_path):
    sentences, probs, target_probs, _ = synthetic(60, seed=2)
    path = write(tmp_path / "sixty.pkl", sentences, probs, target_probs)
    results = [score_dataset(path, builtin("loglinear"), settings(chunk_size=size)) for size in (1, 7, None)]
    assert (
        results[0].guesses["loglinear"].tolist()
        == results[1].guesses["loglinear"].tolist()
        == results[2].guesses["loglinear"].tolist()
    )
    assert results[0].strategies[0].fit == "5-fold cross-validation by prefix"


def test_a_failure_on_the_second_chunk_is_its_row_and_the_others_are_scored(seven):
    calls = []

    def second_fails(sentences, model_names, target_model_name, probs):
        calls.append(sentences[0])
        if sentences[0] == "prefix 3":
            raise RuntimeError("boom")
        return [0] * len(sentences)

    def bad_id_later(sentences, model_names, target_model_name, probs):
        return [0] * (len(sentences) - 1) + [probs.shape[2]]  # the chunk's last guess: 40, out of range

    result = score_dataset(
        seven, [strategy(second_fails), strategy(bad_id_later)] + builtin("largest"), settings(chunk_size=3)
    )
    rows = {row.name: row for row in result.strategies}
    assert (
        isinstance(rows["second_fails"], StrategyFailure) and "raised RuntimeError: boom" in rows["second_fails"].error
    )
    assert calls == ["prefix 0", "prefix 3"]  # not called again after it failed
    assert rows["bad_id_later"].error == "returned token id 40 for sentence 2, outside [0, 40)"  # the dataset's index
    assert isinstance(rows["largest"], StrategyScore) and rows["largest"].n == 7
    assert result.failed and set(result.guesses) == {"largest"}


def test_a_whole_array_strategy_gets_every_prefix_in_one_call(seven):
    sizes = []

    @whole_array
    def once(sentences, model_names, target_model_name, probs):
        sizes.append(len(sentences))
        return probs[:, -1].argmax(axis=1)

    result = score_dataset(seven, [strategy(once)] + builtin("largest"), settings(chunk_size=2))
    assert sizes == [7] and result.guesses["once"].tolist() == result.guesses["largest"].tolist()


# ---- what a strategy gets


def reachable(array):
    """Every object reachable from an array through `.base` and memoryviews' `.obj`."""
    found, item = [], array
    while item is not None:
        found.append(item)
        item = item.obj if isinstance(item, memoryview) else getattr(item, "base", None)
    return found


def test_nothing_a_strategy_gets_reaches_the_target(seven):
    reached = []

    def peek(sentences, model_names, target_model_name, probs):
        reached.extend(reachable(probs))
        return [0] * len(sentences)

    score_dataset(seven, [strategy(peek)], settings(chunk_size=3))
    arrays = [item for item in reached if isinstance(item, np.ndarray)]
    buffers = [item for item in reached if isinstance(item, (bytes, bytearray, memoryview))]
    assert arrays[0].shape[1:] == (3, 40)  # the input models only; the arrays under it hold no more than that chunk
    assert all(a.size <= 3 * 3 * 40 and a.size % (3 * 40) == 0 for a in arrays)
    assert buffers and all(
        type(b) is bytes and len(b) <= 3 * 3 * 40 * 2 for b in buffers
    )  # a chunk's inputs, immutable


VANDALS = {
    "write": lambda s, m, t, p: p.__setitem__(slice(None), 0),
    "add": lambda s, m, t, p: p.__iadd__(1e-3),
    "unlock": lambda s, m, t, p: setattr(p.flags, "writeable", True),
    "unlock_base": lambda s, m, t, p: setattr(reachable(p)[-2].flags, "writeable", True),
    "lists": lambda s, m, t, p: (s.clear(), m.reverse(), [0] * len(p))[-1],
}


def test_writing_into_its_input_fails_alone(seven):
    honest = builtin("largest", "average")
    alone = scores(score_dataset(seven, honest, settings(chunk_size=3)))
    vandals = [strategy(fn, name) for name, fn in VANDALS.items()]
    result = score_dataset(seven, vandals[:2] + honest[:1] + vandals[2:] + honest[1:], settings(chunk_size=3))
    rows = scores(result)
    assert {name: rows[name] for name in alone} == alone
    assert "read-only" in rows["write"] and "read-only" in rows["add"]
    assert "WRITEABLE" in rows["unlock"] and "WRITEABLE" in rows["unlock_base"]
    assert isinstance(rows["lists"], float)  # its own lists: clearing them changes nothing else


# ---- learned strategies: the fit protocols


def memorizer(events):
    @learned
    def memorize(train):
        seen = set(train.sentences)
        memory = dict(zip(train.sentences, train.target_top1.tolist()))
        events.append(("fit", seen))

        def predict(sentences, model_names, target_model_name, probs):
            events.append(("predict", set(sentences)))
            assert not seen & set(sentences), "predicting a prefix the fit saw"
            return [memory.get(s, 0) for s in sentences]

        return predict

    return memorize


@pytest.mark.parametrize("chunk_size", [2, None])
def test_cross_validation_fits_every_fold_first_and_never_on_a_prefix_it_predicts(tmp_path, chunk_size):
    sentences, probs, target_probs, _ = synthetic(50, seed=3)
    path = write(tmp_path / "fifty.pkl", sentences, probs, target_probs)
    events = []
    result = score_dataset(path, [strategy(memorizer(events), "memorize")], settings(folds=5, chunk_size=chunk_size))
    kinds = [kind for kind, _ in events]
    assert kinds[:5] == ["fit"] * 5 and set(kinds[5:]) == {"predict"}  # every fit before any prediction
    fitted = [seen for kind, seen in events if kind == "fit"]
    assert all(len(seen) == 40 for seen in fitted)
    assert set().union(*(set(sentences) - seen for seen in fitted)) == set(sentences)  # each prefix held out once
    assert set().union(*(seen for kind, seen in events if kind == "predict")) == set(sentences)
    assert result.guesses["memorize"].tolist() == [0] * 50  # a memorizer gains nothing: it only sees new prefixes
    assert result.folds == 5 and result.strategies[0].fit == "5-fold cross-validation by prefix"


def test_a_train_file_is_fitted_on_and_the_test_file_predicted(tmp_path):
    sentences, probs, target_probs, target_top1 = synthetic(400, seed=5)
    train = write(tmp_path / "train.pkl", [f"train {i}" for i in range(200)], probs[:200], target_probs[:200])
    test = write(tmp_path / "test.pkl", [f"test {i}" for i in range(200)], probs[200:], target_probs[200:])
    events = []

    def biggest(sentences, model_names, target_model_name, probs):
        sizes = [name.non_embedding_params for name in model_names]  # sizes reach a 4-argument strategy
        return probs[:, sizes.index(max(sizes))].argmax(axis=1)

    chosen = [strategy(memorizer(events), "memorize"), strategy(biggest)] + builtin("loglinear", "largest")
    result = score_dataset(test, chosen, settings(train=train, chunk_size=64))
    rows = scores(result)
    assert events[0] == ("fit", {f"train {i}" for i in range(200)}) and rows["memorize"] <= 0.05
    assert rows["loglinear"] > rows["largest"] + 0.2 and rows["biggest"] == rows["largest"]
    assert rows["loglinear"] == np.mean(result.guesses["loglinear"] == target_top1[200:])
    assert result.train == train and result.folds is None
    assert result.to_json()["strategies"][2]["fit"] == f"fit on {train}"

    overlapping = write(tmp_path / "overlap.pkl", ["test 3", *sentences[1:20]], probs[:20], target_probs[:20])
    with pytest.raises(InputError, match=f"{overlapping}: shares 1 prefix with {test}"):
        score_dataset(test, builtin("loglinear"), settings(train=overlapping))
    other = tmp_path / "other.pkl"
    save_dataset(
        other, ["a", "b", "target"], sentences[:20], np.concatenate([probs[:20, :2], target_probs[:20, None]], 1)
    )
    with pytest.raises(InputError, match="differ from"):
        score_dataset(test, builtin("loglinear"), settings(train=other))


def test_too_many_folds_is_the_learned_rows_error(seven):
    result = score_dataset(seven, builtin("loglinear", "largest"), settings(folds=8))
    assert scores(result)["loglinear"] == "--folds must be between 2 and the number of prefixes (7), got 8"
    assert isinstance(scores(result)["largest"], float)


def test_the_default_folds_shrink_to_a_small_dataset(seven):
    """Without --folds, a dataset of fewer than 5 prefixes is cross-validated once per prefix,
    and says so; a single prefix cannot be, and the error does not blame a --folds never passed."""
    result = score_dataset(seven, builtin("loglinear"), settings(num_samples=3))
    [row] = result.strategies
    assert isinstance(row.accuracy, float) and result.folds == 3
    assert row.fit == "3-fold cross-validation by prefix, the default 5 shrunk to the 3 prefixes"
    result = score_dataset(seven, builtin("loglinear"), settings(num_samples=1))
    assert scores(result)["loglinear"] == (
        "a learned strategy needs at least 2 prefixes to cross-validate on (this dataset has 1); or pass --train"
    )
    assert (
        score_dataset(seven, builtin("loglinear"), settings()).strategies[0].fit == "5-fold cross-validation by prefix"
    )


# ---- --predict-only and --show


def test_predicting_never_reads_the_target(seven, monkeypatch):
    monkeypatch.setattr(harness.scoring.evaluate, "target_view", lambda *a, **k: pytest.fail("the target was read"))
    result = predict_dataset(seven, builtin("largest", "loglinear"), settings(chunk_size=3))
    assert result.runs[0].guesses.tolist() == synthetic(7, seed=1)[1][:, -1].argmax(axis=1).tolist()
    assert result.runs[1].error.startswith("a learned strategy needs --train under --predict-only")
    assert result.to_json()["strategies"] == [
        {"name": "largest", "guesses": 7, "fit": None},
        {"name": "loglinear", "error": result.runs[1].error},
    ]


def test_show_prefix_gives_every_model_and_every_guess(seven):
    shown = show_prefix(seven, 4, builtin("largest", "dummy"), settings(chunk_size=2))
    _, probs, target_probs, _ = synthetic(7, seed=1)
    assert [name for name, _ in shown.models] == NAMES[:3] + ["target (target)"]
    assert np.array_equal(shown.models[3][1], target_probs[4].astype(np.float32))
    assert shown.answer == int(target_probs[4].argmax()) and shown.sentence == "prefix 4"
    assert [int(run.guesses[4]) for run in shown.runs] == [int(probs[4, -1].argmax()), 0]
    with pytest.raises(InputError, match="--show 7: prefixes are numbered 0 to 6"):
        show_prefix(seven, 7, builtin("largest"), settings())
    assert show_prefix(seven, 0, builtin("largest"), settings(), predicting=True).answer is None


# ---- results


def test_result_json_keys_and_the_reference(seven):
    result = score_dataset(
        seven,
        builtin("dummy", "largest"),
        settings(comparisons=(("dummy", "largest"),), references=tuple(builtin("largest", "average"))),
    )
    data = result.to_json()
    assert set(data) == {
        "path",
        "target",
        "inputs",
        "n",
        "vocab_size",
        "input_model_sizes",
        "train",
        "folds",
        "input_model_reach",
        "tied_targets",
        "emergence_curve",
        "emergent",
        "reference",
        "comparisons",
        "strategies",
        "near_ties",
        "floor",
        "gamma",
        "hardest",
        "task",
        "noise_ceiling",
        "kl_floor",
        "drafting",
    }
    assert data["inputs"] == NAMES[:3] and data["input_model_sizes"] == list(SIZES[:3]) and data["n"] == 7
    assert set(data["strategies"][0]) == {
        "name",
        "accuracy",
        "correct",
        "n",
        "ci95",
        "seconds",
        "fit",
        "tied_misses",
        "emergent_correct",
        "vs_reference",
        "metrics",
    }
    assert [row["name"] for row in data["strategies"]] == ["dummy", "largest"]  # average ran for the reference only
    assert data["reference"]["name"] in ("largest", "average")
    assert data["comparisons"][0]["a"] == "dummy" and "p_value" in data["comparisons"][0]


def test_default_datasets_pair_each_test_file_with_its_train_file(tmp_path):
    sentences, probs, target_probs, _ = synthetic(10)
    for name in ("plain", "wiki-train", "wiki-test", "lonely-test"):
        write(tmp_path / f"{name}.pkl", [f"{name} {i}" for i in range(10)], probs, target_probs)
    assert default_datasets(tmp_path) == [
        (tmp_path / "lonely-test.pkl", None),
        (tmp_path / "plain.pkl", None),
        (tmp_path / "wiki-test.pkl", tmp_path / "wiki-train.pkl"),
    ]
