"""Learned strategies: K-fold cross-validation, train/test disjointness and the log-linear pool.

numpy only (no torch): these run in the numpy-1.x CI job too.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import InputError
from harness.learned import check_disjoint, cross_validated_guesses, fold_indices, training_split
from strategies.loglinear import fit_weights, pooled_argmax, pooled_logits, log_probs


def synthetic(n: int, models: int = 3, vocab: int = 40, seed: int = 0, weights=(-1.0, 0.5, 2.0)):
    """Random distributions, and a target whose top-1 is the argmax of a known log-linear pool."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, models, vocab)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    probs = probs.astype(np.float16)
    target_top1 = pooled_logits(log_probs(probs), np.array(weights)).argmax(axis=1)
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


def test_cross_validation_never_fits_on_the_fold_it_scores():
    sentences, probs, target_probs, target_top1 = synthetic(50)
    seen_by_fit: list[set] = []

    def fit(train):
        seen_by_fit.append(set(train.sentences))
        memory = dict(zip(train.sentences, train.target_top1.tolist()))

        def predict(sentences, model_names, target_model_name, probs_per_sentences):
            predicted = set(sentences)
            assert not predicted & seen_by_fit[-1], "predicting a prefix the fit saw"
            assert target_model_name == "target" and list(model_names) == ["a", "b", "c"]
            return [memory.get(s, 0) for s in sentences]
        return predict

    guesses = cross_validated_guesses(fit, sentences, ["a", "b", "c"], "target", probs, target_probs,
                                      target_top1, folds=5, seed=0)
    assert len(seen_by_fit) == 5
    # A memorizer gains nothing from cross-validation: it only ever predicts unseen prefixes.
    assert (guesses == 0).all()


def test_a_strategy_cannot_write_into_what_it_is_given():
    sentences, probs, target_probs, target_top1 = synthetic(20)
    train = training_split(sentences, ["a", "b", "c"], "target", probs, target_probs, target_top1)
    for array in (train.probs_per_sentences, train.target_probs, train.target_top1):
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
    train = training_split(sentences[:400], ["a", "b", "c"], "target", probs[:400], target_probs[:400], target_top1[:400])
    weights = fit_weights(train.chunks, 3)
    # The pool's argmax does not change with the weights' scale: compare directions.
    true = np.array([-1.0, 0.5, 2.0])
    cosine = weights @ true / np.linalg.norm(weights) / np.linalg.norm(true)
    assert cosine > 0.95, weights
    held_out = pooled_argmax(probs[400:], weights) == target_top1[400:]
    largest = probs[400:, -1].argmax(axis=1) == target_top1[400:]
    assert held_out.mean() > 0.9 > largest.mean()


# ---- through challenge.py's CLI, on synthetic train/test files with sidecars

def write_split(path, sentences, probs, target_probs, sizes=(1_000, 20_000, 300_000)):
    from harness.dataset import save_dataset

    names = ["small", "medium", "large", "target"]
    array = np.concatenate([probs, target_probs[:, None]], axis=1)
    models = [{"name": n, "non_embedding_params": s, "total_params": s + 10_000}
              for n, s in zip(names, [*sizes, 5_000_000])]
    save_dataset(path, names, sentences, array, {"models": models})
    return path


@pytest.fixture
def split_files(tmp_path):
    sentences, probs, target_probs, _ = synthetic(400, seed=5)
    train = write_split(tmp_path / "train.pkl", [f"train {i}" for i in range(200)], probs[:200], target_probs[:200])
    test = write_split(tmp_path / "test.pkl", [f"test {i}" for i in range(200)], probs[200:], target_probs[200:])
    strategies = tmp_path / "mine.py"
    strategies.write_text('''
from strategies import learned

@learned
def memorize(train):
    """Remembers the training prefixes' answers; guesses token 0 elsewhere."""
    memory = dict(zip(train.sentences, train.target_top1.tolist()))
    def predict(sentences, model_names, target_model_name, probs_per_sentences):
        return [memory.get(s, 0) for s in sentences]
    return predict

def biggest(sentences, model_names, target_model_name, probs_per_sentences):
    """Argmax of the input model with the most non-embedding parameters, read from the names."""
    sizes = [name.non_embedding_params for name in model_names]
    assert sizes == [1_000, 20_000, 300_000], sizes
    return probs_per_sentences[:, sizes.index(max(sizes))].argmax(axis=1)
''')
    return train, test, strategies


def accuracies(result: dict) -> dict:
    return {row["name"]: row.get("accuracy", row.get("error")) for row in result["datasets"][0]["strategies"]}


def test_learned_strategies_are_scored_only_on_prefixes_they_never_saw(split_files, tmp_path):
    import json
    from conftest import run_script

    train, test, mine = split_files
    out = tmp_path / "r.json"
    run_script("challenge.py", "--train", train, "--dataset", test, "--strategy", f"{mine}:memorize",
               "--strategy", "loglinear", "--strategy", "largest", "--strategy", f"{mine}:biggest", "--json", out)
    result = json.loads(out.read_text())
    scores = accuracies(result)
    # The memorizer knows every training answer, and gains nothing on the test file.
    assert scores[f"{mine}:memorize"] <= 0.05
    assert scores["loglinear"] > scores["largest"] + 0.2
    assert scores[f"{mine}:biggest"] == scores["largest"]  # sizes reach a 4-argument strategy
    rows = {row["name"]: row for row in result["datasets"][0]["strategies"]}
    assert rows["loglinear"]["learned"] == f"fit on {train}" and rows["largest"]["learned"] is None

    # Without --train: K-fold on the test file itself; the memorizer still gains nothing.
    run_script("challenge.py", "--dataset", test, "--strategy", f"{mine}:memorize", "--strategy", "loglinear",
               "--folds", "4", "--json", out)
    result = json.loads(out.read_text())
    assert accuracies(result)[f"{mine}:memorize"] <= 0.05
    assert result["datasets"][0]["folds"] == 4


def test_a_train_file_sharing_prefixes_or_differing_in_models_is_refused(split_files, tmp_path):
    from conftest import run_script

    train, test, _ = split_files
    sentences, probs, target_probs, _ = synthetic(20, seed=9)
    overlapping = write_split(tmp_path / "overlap.pkl", ["test 3", *sentences[1:]], probs, target_probs)
    result = run_script("challenge.py", "--train", overlapping, "--dataset", test, "--strategy", "loglinear",
                        check=False)
    assert result.returncode == 1
    assert f"{overlapping}: shares 1 prefix with {test}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    from harness.dataset import save_dataset
    other = tmp_path / "other.pkl"
    save_dataset(other, ["a", "b", "target"], sentences, np.concatenate([probs[:, :2], target_probs[:, None]], 1))
    result = run_script("challenge.py", "--train", other, "--dataset", test, "--strategy", "loglinear", check=False)
    assert result.returncode == 1 and "differ from" in result.stderr


def test_default_run_pairs_each_test_file_with_its_train_file(tmp_path, monkeypatch):
    import challenge

    sentences, probs, target_probs, _ = synthetic(10)
    for name in ("plain", "wiki-train", "wiki-test", "lonely-test"):
        write_split(tmp_path / f"{name}.pkl", [f"{name} {i}" for i in range(10)], probs, target_probs)
    monkeypatch.setattr(challenge, "DATA_DIR", tmp_path)
    assert challenge.default_datasets() == [(tmp_path / "lonely-test.pkl", None), (tmp_path / "plain.pkl", None),
                                            (tmp_path / "wiki-test.pkl", tmp_path / "wiki-train.pkl")]


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
    from harness.registry import REGISTRY, load_from_file

    path = tmp_path / "orders.py"
    path.write_text(DECORATOR_ORDERS)
    try:
        load_from_file(f"{path}:fit_above")  # importing the file registers all three
        assert [REGISTRY[name].is_learned for name in ("fit-above", "fit-below", "fit-flag")] == [True] * 3
    finally:
        for name in ("fit-above", "fit-below", "fit-flag"):
            REGISTRY.pop(name, None)
