"""The command lines, as a user runs them: challenge.py (original-format compatibility, the
leaderboard, strategy errors in rows, --show, --predict-only, every bad input and exit code) and
the stale sidecar's one warning. The engine itself is tested in test_evaluate.py and test_scoring.py.

numpy and tokenizers only (no torch): the bundled data/wikipedia.pkl and small constructed datasets.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import pickle
import runpy
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, run_script

from harness import InputError
from harness.data.dataset import load_dataset, save_dataset


def challenge_main():
    """challenge.py's `main`, run from the script as a user's `python challenge.py` would (nothing imports it)."""
    return runpy.run_path(str(ROOT / "challenge.py"), run_name="challenge_cli_test")["main"]


PYTHIA = [f"EleutherAI/pythia-{s}" for s in ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "12b")]
V = 50277

ORIGINAL_STRATEGIES = """
import random
import numpy as np

NUM_TOKENS = 50277

def dummy_strategy(sentences, model_names, target_model_name, probs_per_sentences):
    guesses_per_sentence = []
    for sentence in sentences:
        guesses_per_sentence.append(0)
    return guesses_per_sentence

def random_strategy(sentences, model_names, target_model_name, probs_per_sentences):
    guesses_per_sentence = []
    for sentence in sentences:
        guesses_per_sentence.append(random.randint(0, NUM_TOKENS - 1))
    return guesses_per_sentence

def average_strategy(sentences, model_names, target_model_name, probs_per_sentences):
    guesses_per_sentence = []
    for sentence_num, sentence in enumerate(sentences):
        average_probs = np.mean(probs_per_sentences[sentence_num], axis=0)
        guesses_per_sentence.append(np.argmax(average_probs))
    return guesses_per_sentence
"""


def synthetic_probs(num_sentences: int = 40, num_models: int = 7, vocab: int = V, seed: int = 0) -> np.ndarray:
    """Peaked distributions whose top-1 drifts with model size, like a real suite's."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(num_sentences, 1, vocab)).astype(np.float32) * 2
    logits = logits + rng.normal(size=(num_sentences, num_models, vocab)).astype(np.float32) * 0.8
    logits[:, :, :5] += 6  # a few tokens every model likes: top-1s often agree
    probs = np.exp(logits - logits.max(axis=2, keepdims=True))
    return (probs / probs.sum(axis=2, keepdims=True)).astype(np.float16)


@pytest.fixture(scope="module")
def original_pickle(tmp_path_factory):
    """A dataset exactly as the original challenge wrote it: pickle.dump of the tuple, default protocol."""
    path = tmp_path_factory.mktemp("orig") / "wikipedia.pkl"
    sentences = [f"Sentence number {i} about a topic" for i in range(40)]
    with open(path, "wb") as f:
        pickle.dump((PYTHIA, sentences, synthetic_probs()), f)
    return path


def read_pickle(path):
    with open(path, "rb") as f:  # closed at once: an open file left to the garbage collector is a ResourceWarning
        return pickle.load(f)


def expected_accuracies(path):
    names, sentences, probs = read_pickle(path)
    target = probs[:, -1].astype(np.float32).argmax(1)
    inputs = probs[:, :-1].astype(np.float32)
    return {
        "dummy": np.mean(target == 0),
        "average": np.mean(inputs.mean(1).argmax(1) == target),
        "largest": np.mean(inputs[:, -1].argmax(1) == target),
    }


def test_original_pickle_and_strategies_score_unchanged(tmp_path, original_pickle):
    strategy_file = tmp_path / "original_strategies.py"
    strategy_file.write_text(ORIGINAL_STRATEGIES)
    out = tmp_path / "results.json"
    run_script(
        "challenge.py",
        "--dataset",
        original_pickle,
        "--json",
        out,
        *[
            arg
            for f in ("dummy_strategy", "random_strategy", "average_strategy")
            for arg in ("--strategy", f"{strategy_file}:{f}")
        ],
        "--strategy",
        "average",
        "--strategy",
        "largest",
    )
    result = json.loads(out.read_text())["datasets"][0]
    scores = {row["name"].split(":")[-1]: row for row in result["strategies"]}
    expected = expected_accuracies(original_pickle)
    assert result["target"] == "EleutherAI/pythia-12b" and result["inputs"] == PYTHIA[:-1]
    assert scores["dummy_strategy"]["accuracy"] == expected["dummy"]
    assert scores["average_strategy"]["accuracy"] == pytest.approx(expected["average"], abs=1 / 40)
    assert scores["average"]["accuracy"] == expected["average"]
    assert scores["largest"]["accuracy"] == expected["largest"]
    assert 0 < expected["largest"] < 1 and scores["random_strategy"]["n"] == 40


def test_read_only_array_scores(tmp_path, original_pickle):
    names, sentences, probs = read_pickle(original_pickle)
    probs.setflags(write=False)  # protocol 5 then stores bytes, and the array loads read-only
    path = tmp_path / "readonly.pkl"
    path.write_bytes(pickle.dumps((names, sentences, probs), protocol=5))
    assert not load_dataset(path).probs.flags.writeable
    result = run_script("challenge.py", "--dataset", path, "--strategy", "largest", "--json", tmp_path / "r.json")
    row = json.loads((tmp_path / "r.json").read_text())["datasets"][0]["strategies"][0]
    assert row["accuracy"] == expected_accuracies(original_pickle)["largest"] and "Traceback" not in result.stderr


@pytest.mark.numpy2
def test_numpy1_pickle_loads(tmp_path, original_pickle):
    # numpy 1.x wrote "numpy.core.multiarray"; protocol 2's GLOBAL opcode spells it out as text.
    names, sentences, probs = read_pickle(original_pickle)
    data = pickle.dumps((names, sentences, probs), protocol=2)
    assert b"numpy._core.multiarray" in data
    path = tmp_path / "numpy1.pkl"
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert np.array_equal(load_dataset(path).probs, probs)


def test_leaderboard_lists_every_strategy_with_ci(original_pickle):
    result = run_script("challenge.py", "--dataset", original_pickle)
    for name in ("dummy", "random", "average", "largest"):
        assert f"\n  {name} " in result.stdout
    assert "95% CI" in result.stdout and "emergent: " in result.stdout
    assert "agreement with the target (pythia-*): 70m " in result.stdout  # hub names, no sidecar: short names


def test_reach_statistics(tmp_path):
    probs = np.zeros((4, 3, 10), dtype=np.float16)
    top = [[1, 2, 1], [3, 3, 4], [5, 6, 6], [7, 7, 7]]  # target = last: reached by an input in rows 0, 2, 3
    for i, row in enumerate(top):
        for j, token in enumerate(row):
            probs[i, j, token] = 1
    path = tmp_path / "reach.pkl"
    save_dataset(path, ["a", "b", "t"], ["w", "x", "y", "z"], probs)
    run_script(
        "challenge.py",
        "--dataset",
        path,
        "--json",
        tmp_path / "r.json",
        "--strategy",
        "largest",
        "--predictions",
        tmp_path / "p.csv",
    )
    result = json.loads((tmp_path / "r.json").read_text())["datasets"][0]
    assert result["input_model_reach"]["some_input_model"] == 0.75
    assert result["input_model_reach"]["no_input_model"] == 0.25
    assert result["strategies"][0]["accuracy"] == 0.5 and result["strategies"][0]["correct"] == 2
    with (tmp_path / "p.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    # no tokenizer for "t": no token text
    assert [
        (row["sentence"], row["guess"], row["guess_token"], row["target_top1"], row["correct"]) for row in rows
    ] == [
        ("w", "2", "", "1", "False"),
        ("x", "3", "", "4", "False"),
        ("y", "6", "", "6", "True"),
        ("z", "7", "", "7", "True"),
    ]


def test_target_and_num_samples(tmp_path, original_pickle):
    out = tmp_path / "r.json"
    run_script(
        "challenge.py",
        "--dataset",
        original_pickle,
        "--target",
        "EleutherAI/pythia-1b",
        "--num-samples",
        10,
        "--strategy",
        "largest",
        "--json",
        out,
    )
    result = json.loads(out.read_text())["datasets"][0]
    assert result["n"] == 10 and "EleutherAI/pythia-1b" not in result["inputs"] and len(result["inputs"]) == 6
    _, _, probs = read_pickle(original_pickle)
    expected = np.mean(probs[:10, 6].astype(np.float32).argmax(1) == probs[:10, 3].astype(np.float32).argmax(1))
    assert result["strategies"][0]["accuracy"] == expected


def test_seed_makes_random_reproducible(tmp_path, original_pickle):
    def random_guesses(seed):
        out = tmp_path / f"p{seed}.csv"
        run_script(
            "challenge.py", "--dataset", original_pickle, "--strategy", "random", "--seed", seed, "--predictions", out
        )
        return [row["guess"] for row in csv.DictReader(out.open())]

    assert random_guesses(1) == random_guesses(1) != random_guesses(2)


def test_list_shows_names_and_descriptions():
    result = run_script("challenge.py", "--list")
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert set(lines) >= {"dummy", "random", "average", "largest"} and all(lines.values())


IN_PROCESS = "import runpy, sys; main = runpy.run_path('challenge.py', run_name='cli')['main']; "


def test_scoring_needs_neither_torch_nor_transformers(original_pickle):
    # Every built-in strategy but those that declare `requires=("torch",)` (lowrank's fit), which the
    # default run skips with a note where torch is missing.
    code = (
        IN_PROCESS + "from strategies import load_builtin; "
        "names = [s.name for s in load_builtin().values() if 'torch' not in getattr(s.fn, 'requires', ())]; "
        "assert 'loglinear-ce' in names and 'lowrank' not in names; "
        "rc = main(['--dataset', sys.argv[1], *[a for n in names for a in ('--strategy', n)]]); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; sys.exit(rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(original_pickle)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_strategy_defined_in_the_marked_spot_is_scored(tmp_path, original_pickle):
    source = (ROOT / "challenge.py").read_text()
    marker = "##############################################\n\n\ndef parse_args"
    assert marker in source
    edited = source.replace(
        marker,
        marker.replace(
            "\n\n\ndef parse_args",
            """
@register("mine", "token 1 every time")
def mine(sentences, model_names, target_model_name, probs_per_sentences):
    return [1] * len(sentences)


def parse_args""",
        ),
    )
    script = tmp_path / "challenge.py"
    script.write_text(edited)
    result = subprocess.run(
        [sys.executable, str(script), "--dataset", str(original_pickle)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert "\n  mine " in result.stdout and "\n  average " in result.stdout
    assert "\n  geometric " in result.stdout  # the block's own example is live


BROKEN_STRATEGIES = """
import numpy as np
def raises(s, m, t, p): raise RuntimeError("boom")
def index_error(s, m, t, p):
    return p[len(s)]
def no_return(s, m, t, p): p.argmax(axis=2)
def a_dict(s, m, t, p): return {i: 0 for i in range(len(s))}
def short(s, m, t, p): return [0] * (len(s) - 1)
def floats(s, m, t, p): return np.full(len(s), 0.5)
def out_of_range(s, m, t, p): return [p.shape[2]] * len(s)
def negative(s, m, t, p): return [-1] * len(s)
def ragged(s, m, t, p): return [[1, 2], [3]] + [0] * (len(s) - 2)
def two_arguments(s, p): return [0] * len(s)
def inside_numpy(s, m, t, p):
    return np.linalg.inv(np.zeros((2, 2)))  # raised in numpy's own Python code
def nan_distribution(s, m, t, p):
    q = p[:, -1].astype(np.float32)
    q[2, 5] = np.nan
    return q
def negative_distribution(s, m, t, p):
    q = p[:, -1].astype(np.float32)
    q[4, 0] -= 2
    q[4, 1] += 2  # still sums to 1
    return q
def unnormalised_distribution(s, m, t, p): return p[:, -1].astype(np.float32) * 2
def wrong_width(s, m, t, p): return p[:, -1, :-1]
"""


def test_broken_strategies_get_one_line_errors_and_others_still_score(tmp_path, original_pickle):
    path = tmp_path / "broken.py"
    path.write_text(BROKEN_STRATEGIES)
    names = [
        "raises",
        "index_error",
        "no_return",
        "a_dict",
        "short",
        "floats",
        "out_of_range",
        "negative",
        "ragged",
        "two_arguments",
        "inside_numpy",
        "nan_distribution",
        "negative_distribution",
        "unnormalised_distribution",
        "wrong_width",
    ]
    result = run_script(
        "challenge.py",
        "--dataset",
        original_pickle,
        "--strategy",
        "dummy",
        "--json",
        tmp_path / "r.json",
        *[a for n in names for a in ("--strategy", f"{path}:{n}")],
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    rows = {
        r["name"].split(":")[-1]: r for r in json.loads((tmp_path / "r.json").read_text())["datasets"][0]["strategies"]
    }
    assert "accuracy" in rows["dummy"]
    assert rows["raises"]["error"] == f"raised RuntimeError: boom (at {path}:3)"  # the strategy's own line
    assert (
        rows["index_error"]["error"].startswith("raised IndexError: ")
        and f"(at {path}:5)" in rows["index_error"]["error"]
    )
    assert rows["no_return"]["error"] == "returned None, expected one token id per sentence"
    assert rows["a_dict"]["error"] == "returned dict, expected one token id per sentence"
    assert rows["short"]["error"] == "returned 39 guesses for 40 sentences"
    assert "float64" in rows["floats"]["error"]
    assert "outside [0, 50277)" in rows["out_of_range"]["error"] and "token id -1" in rows["negative"]["error"]
    assert "not a list of token ids" in rows["ragged"]["error"]
    # never entered: where it is defined; failing inside numpy: the strategy's own line, not numpy's
    assert rows["two_arguments"]["error"].startswith("raised TypeError: ")
    assert rows["two_arguments"]["error"].endswith(f"(defined at {path}:13)")
    assert rows["inside_numpy"]["error"].startswith("raised LinAlgError: ")
    assert rows["inside_numpy"]["error"].endswith(f"(at {path}:15)")
    assert rows["nan_distribution"]["error"] == "returned NaN or infinite probabilities for sentence 2"
    assert rows["negative_distribution"]["error"].startswith("returned a negative probability (")
    assert rows["negative_distribution"]["error"].endswith(") for sentence 4")
    assert rows["unnormalised_distribution"]["error"] == (
        "returned a distribution summing to 2 for sentence 0 (each row must sum to 1 within 0.02)"
    )
    assert rows["wrong_width"]["error"].startswith("returned an array of shape (40, 50276), expected")
    for name in names:
        assert f"{path}:{name}" in result.stdout and "error:" in result.stdout


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


class EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('pathlib').Path('PWNED').touch()",))


def bad_files(tmp_path, original_pickle):
    good = original_pickle.read_bytes()
    names, sentences, probs = pickle.loads(good)

    def dump(obj):
        return pickle.dumps(obj, protocol=5)

    nan, inf, negative, unnormalised = (probs.copy() for _ in range(4))
    nan[3, 2, 7] = np.nan
    inf[5, 0, 1] = np.inf
    negative[1, 1, 0] = -0.5
    unnormalised[2, 4] *= 3
    return {
        "os_system": (dump((names, sentences, Evil())), "refers to posix.system"),
        "builtins_eval": (dump(EvalEvil()), "refers to builtins.eval"),
        "truncated": (good[: len(good) // 2], "truncated or malformed pickle"),
        "garbage": (b"this is not a pickle at all", "truncated or malformed pickle"),
        "empty": (b"", "truncated or malformed pickle"),
        "not_a_tuple": (dump([names, sentences, probs]), "expected a tuple"),
        "two_elements": (dump((names, probs)), "of length 2"),
        "wrong_shape": (dump((names, sentences[:-1], probs)), "expected (39 sentences, 7 models"),
        "names_not_str": (dump(([1, 2, 3, 4, 5, 6, 7], sentences, probs)), "model_names must be a list of str"),
        "not_array": (dump((names, sentences, probs.tolist()[:1])), "probs must be a numpy array"),
        "integer_probs": (dump((names, sentences, probs.astype(np.int32))), "must be floating point"),
        "nan": (
            dump((names, sentences, nan)),
            "NaN, inf or negative values (sentence 3, model 'EleutherAI/pythia-410m')",
        ),
        "inf": (dump((names, sentences, inf)), "NaN, inf or negative values (sentence 5"),
        "negative": (dump((names, sentences, negative)), "NaN, inf or negative values (sentence 1"),
        "unnormalised": (dump((names, sentences, unnormalised)), "sentence 2, model 'EleutherAI/pythia-1.4b' sum to 3"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "os_system",
        "builtins_eval",
        "truncated",
        "garbage",
        "empty",
        "not_a_tuple",
        "two_elements",
        "wrong_shape",
        "names_not_str",
        "not_array",
        "integer_probs",
        "nan",
        "inf",
        "negative",
        "unnormalised",
    ],
)
def test_bad_dataset_is_a_one_line_error_and_runs_no_code(tmp_path, original_pickle, case):
    content, message = bad_files(tmp_path, original_pickle)[case]
    path = tmp_path / f"{case}.pkl"
    path.write_bytes(content)
    result = subprocess.run(
        [sys.executable, str(ROOT / "challenge.py"), "--dataset", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1 and error_lines[0].startswith(f"error: {path}: ") and message in error_lines[0], (
        result.stderr
    )
    assert not (tmp_path / "PWNED").exists()


def test_missing_dataset_and_bad_files_in_a_list(tmp_path, original_pickle):
    result = run_script(
        "challenge.py",
        "--dataset",
        tmp_path / "nope.pkl",
        "--dataset",
        original_pickle,
        "--strategy",
        "dummy",
        check=False,
    )
    assert result.returncode == 1 and "nope.pkl: no such file" in result.stderr
    assert f"{original_pickle}: 40 prefixes" in result.stdout  # the good dataset is still scored


def test_no_dataset_says_which_files_are_missing(tmp_path):
    from harness.scoring.evaluate import default_datasets

    with pytest.raises(InputError) as error:
        default_datasets(tmp_path)
    assert f"{tmp_path / 'wikipedia.pkl'} and {tmp_path / 'glue-rte.pkl'} are missing" in str(error.value)
    assert "preprocess_train.py" in str(error.value)


def test_unknown_strategy_is_an_error():
    result = run_script("challenge.py", "--strategy", "nonexistent", check=False)
    assert result.returncode == 1 and result.stderr.startswith("error: unknown strategy 'nonexistent'")


def test_save_is_atomic_on_failure(tmp_path):
    path = tmp_path / "d.pkl"
    save_dataset(path, ["a", "b"], ["x"], np.full((1, 2, 4), 0.25, dtype=np.float16))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        save_dataset(path, ["a", "b"], ["x", "y"], np.full((1, 2, 4), 0.25, dtype=np.float16))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["d.pkl"]
    with pytest.raises(InputError):
        load_dataset(tmp_path)


# Each test below runs without torch or transformers (numpy, and tokenizers for load_tokenizer).

VANDALS = """
def vandal(sentences, model_names, target_model_name, probs):
    sentences.clear()
    model_names.reverse()
    probs[:] = 0
    return [0] * len(probs)

def nudge(sentences, model_names, target_model_name, probs):
    probs += 1e-9
    return probs[:, -1].argmax(axis=1)

def unlock(sentences, model_names, target_model_name, probs):
    probs.flags.writeable = True
    probs[:] = 0

def by_name(sentences, model_names, target_model_name, probs):
    assert len(sentences) == len(probs) and model_names[-1].endswith("2.8b"), "a shared list was changed"
    return probs[:, model_names.index("EleutherAI/pythia-2.8b")].argmax(axis=1)
"""


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_a_strategy_writing_into_its_input_changes_no_other_score(tmp_path, original_pickle, position):
    path = tmp_path / "vandals.py"
    path.write_text(VANDALS)
    vandals = [f"{path}:{name}" for name in ("vandal", "nudge", "unlock")]
    honest = ["largest", "average", f"{path}:by_name"]
    order = {"first": vandals + honest, "middle": honest[:2] + vandals + honest[2:], "last": honest + vandals}[position]
    out = tmp_path / "r.json"
    result = run_script(
        "challenge.py",
        "--dataset",
        original_pickle,
        "--json",
        out,
        *[a for name in order for a in ("--strategy", name)],
        check=False,
    )
    assert result.returncode == 1
    rows = {r["name"]: r for r in json.loads(out.read_text())["datasets"][0]["strategies"]}
    expected = expected_accuracies(original_pickle)
    assert rows["largest"]["accuracy"] == rows[f"{path}:by_name"]["accuracy"] == expected["largest"]
    assert rows["average"]["accuracy"] == expected["average"]
    assert "read-only" in rows[f"{path}:vandal"]["error"] and f"(at {path}:5)" in rows[f"{path}:vandal"]["error"]
    assert "read-only" in rows[f"{path}:nudge"]["error"]
    assert "WRITEABLE" in rows[f"{path}:unlock"]["error"]


UNLOCK_BASE = """
def unlock_base(sentences, model_names, target_model_name, probs):
    while isinstance(probs.base, type(probs)):  # down to the array that owns the memory
        probs = probs.base
    probs.flags.writeable = True
    probs[:] = 0
    return probs[:, 0].argmax(axis=1)
"""


def test_a_strategy_cannot_unlock_the_copy_made_for_a_target_in_the_middle(tmp_path):
    path = tmp_path / "unlock.py"
    path.write_text(UNLOCK_BASE)
    honest = ["--strategy", "largest", "--strategy", "average"]
    scores = {}
    for strategies in (honest, ["--strategy", f"{path}:unlock_base", *honest]):
        out = tmp_path / "r.json"
        run_script(
            "challenge.py",
            "--dataset",
            ROOT / "data" / "wikipedia.pkl",
            "--target",
            "suite-0.79m",
            *strategies,
            "--json",
            out,
            check=False,
        )
        rows = json.loads(out.read_text())["datasets"][0]["strategies"]
        scores[len(strategies)] = {row["name"]: row.get("accuracy", row.get("error")) for row in rows}
    assert scores[6]["largest"] == scores[4]["largest"] > 0.5 and scores[6]["average"] == scores[4]["average"]
    assert "WRITEABLE" in scores[6][f"{path}:unlock_base"]


def test_tied_target_top1_is_counted(tmp_path):
    probs = np.full((4, 3, 8), 0.125, dtype=np.float16)
    probs[:, :, :] = [0.3, 0.3, 0.1, 0.1, 0.1, 0.05, 0.05, 0]  # every model ties tokens 0 and 1 ...
    probs[2:, -1] = [0.05, 0.6, 0.1, 0.1, 0.1, 0.05, 0, 0]  # ... but the target only in rows 0 and 1
    path = tmp_path / "ties.pkl"
    save_dataset(path, ["a", "b", "t"], ["w", "x", "y", "z"], probs)
    strategy = tmp_path / "second.py"
    strategy.write_text("def second(s, m, t, p):\n    return [1] * len(s)\n")
    out = tmp_path / "r.json"
    result = run_script(
        "challenge.py", "--dataset", path, "--json", out, "--strategy", "dummy", "--strategy", f"{strategy}:second"
    )
    data = json.loads(out.read_text())["datasets"][0]
    rows = {r["name"].split(":")[-1]: r for r in data["strategies"]}
    assert data["tied_targets"] == 2
    assert rows["dummy"]["accuracy"] == 0.5 and rows["dummy"]["tied_misses"] == 0  # the first argmax counts
    assert rows["second"]["accuracy"] == 0.5 and rows["second"]["tied_misses"] == 2
    assert "float16 tie for 2 prefixes" in result.stdout and f"{strategy}:second 2" in result.stdout


def test_output_folders_are_created(tmp_path, original_pickle):
    run_script(
        "challenge.py",
        "--dataset",
        original_pickle,
        "--strategy",
        "dummy",
        "--json",
        tmp_path / "new" / "r.json",
        "--predictions",
        tmp_path / "other" / "deep" / "p.csv",
    )
    assert json.loads((tmp_path / "new" / "r.json").read_text())["datasets"][0]["n"] == 40
    assert (tmp_path / "other" / "deep" / "p.csv").read_text().startswith("dataset,strategy")


@pytest.mark.parametrize("flag", ["--json", "--predictions"])
@pytest.mark.parametrize("problem", ["folder", "file_in_the_way", "read_only"])
def test_unwritable_output_is_one_line_before_any_scoring(tmp_path, original_pickle, flag, problem):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "locked").mkdir(mode=0o500)
    if problem == "read_only" and os.access(tmp_path / "locked", os.W_OK):
        pytest.skip("running as root: permissions do not stop writes")
    target = {
        "folder": tmp_path,
        "file_in_the_way": tmp_path / "a_file" / "r.out",
        "read_only": tmp_path / "locked" / "r.out",
    }[problem]
    result = run_script("challenge.py", "--dataset", original_pickle, flag, target, check=False)
    assert result.returncode == 1 and result.stdout == ""  # refused before scoring anything
    assert result.stderr.startswith(f"error: {target}: ") and len(result.stderr.strip().splitlines()) == 1, (
        result.stderr
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "locked"]


def test_full_disk_is_one_line_after_the_leaderboard(monkeypatch, tmp_path, original_pickle, capsys):
    import harness.data.files

    def full(path, write, mode="wb"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(harness.data.files, "atomic_write", full)  # what write_output writes with
    main = challenge_main()
    assert main(["--dataset", str(original_pickle), "--strategy", "dummy", "--json", str(tmp_path / "r.json")]) == 1
    captured = capsys.readouterr()
    assert "dummy" in captured.out
    assert (
        captured.err
        == f"error: {tmp_path / 'r.json'}: cannot be written (No space left on device); nothing was written\n"
    )


def test_debug_prints_the_strategy_traceback(tmp_path, original_pickle):
    path = tmp_path / "broken.py"
    path.write_text(BROKEN_STRATEGIES)
    quiet = run_script("challenge.py", "--dataset", original_pickle, "--strategy", f"{path}:index_error", check=False)
    loud = run_script(
        "challenge.py", "--dataset", original_pickle, "--strategy", f"{path}:index_error", "--debug", check=False
    )
    assert quiet.returncode == loud.returncode == 1 and "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and f'File "{path}", line 5, in index_error' in loud.stderr


def test_num_samples_beyond_the_dataset_warns(original_pickle):
    result = run_script("challenge.py", "--dataset", original_pickle, "--strategy", "dummy", "--num-samples", 1000)
    assert f"warning: {original_pickle}: --num-prefixes 1000, but it has only 40 prefixes; scoring 40" in result.stderr
    assert f"{original_pickle}: 40 prefixes" in result.stdout


SUITE_NAMES = [f"build/suite/models/suite-{size}" for size in ("0.0066m", "0.79m", "1.5m")]


def test_target_by_short_name(tmp_path, original_pickle):
    path = tmp_path / "suite.pkl"
    save_dataset(path, SUITE_NAMES, ["a", "b"], np.full((2, 3, 4), 0.25, dtype=np.float16))
    out = tmp_path / "r.json"
    run_script(
        "challenge.py",
        "--dataset",
        path,
        "--dataset",
        original_pickle,
        "--target",
        "suite-0.79m",
        "--strategy",
        "dummy",
        "--json",
        out,
        check=False,
    )
    first, second = json.loads(out.read_text())["datasets"]
    assert first["target"] == SUITE_NAMES[1] and first["inputs"] == [SUITE_NAMES[0], SUITE_NAMES[2]]
    assert "no model 'suite-0.79m'" in second["error"]
    run_script("challenge.py", "--dataset", original_pickle, "--target", "pythia-1b", "--json", out)
    assert json.loads(out.read_text())["datasets"][0]["target"] == "EleutherAI/pythia-1b"


def test_ambiguous_short_target_is_an_error(tmp_path):
    path = tmp_path / "twins.pkl"
    save_dataset(path, ["run1/m", "run2/m", "t"], ["a"], np.full((1, 3, 4), 0.25, dtype=np.float16))
    result = run_script("challenge.py", "--dataset", path, "--target", "m", check=False)
    assert result.returncode == 1
    assert result.stderr == f"error: {path}: model 'm' is ambiguous: it matches run1/m, run2/m\n"


def test_one_input_model_and_one_prefix_read_right(tmp_path):
    path = tmp_path / "small.pkl"
    save_dataset(path, ["a", "t"], ["only"], np.full((1, 2, 4), 0.25, dtype=np.float16))
    result = run_script("challenge.py", "--dataset", path, "--strategy", "dummy")
    assert f"{path}: 1 prefix, 1 input model, target t" in result.stdout


def test_a_name_registered_twice_names_both_definitions(tmp_path, original_pickle):
    source = (ROOT / "challenge.py").read_text()
    marker = "##############################################\n\n\ndef parse_args"
    line = source[: source.index(marker)].count("\n") + 2  # the decorator's line in the edited copy
    script = tmp_path / "challenge.py"
    script.write_text(
        source.replace(
            marker,
            marker.replace(
                "\n\n\ndef parse_args",
                """
@register("average", "my own average")
def my_average(sentences, model_names, target_model_name, probs_per_sentences):
    return [1] * len(sentences)


def parse_args""",
            ),
        )
    )
    result = subprocess.run(
        [sys.executable, str(script), "--dataset", str(original_pickle)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"error: strategy 'average' is registered twice: {script}:{line} and strategies/average.py:8; rename one\n"
    )


TOKENIZER_PROBE = """
import sys
from strategies import load_tokenizer
tokenizer = load_tokenizer(sys.argv[1])
ids = tokenizer.encode(" the cat").ids
print(type(tokenizer).__module__, repr(tokenizer.decode(ids)), tokenizer.id_to_token(0), "transformers" in sys.modules)
"""


@pytest.mark.parametrize("name", ["build/suite/models/suite-0.79m", "suite-1.5m", "mytok", "SUITE_TOKENIZER_DIR"])
def test_load_tokenizer_needs_only_tokenizers_from_any_folder(tmp_path, name):
    (tmp_path / "mytok").mkdir()
    (tmp_path / "mytok" / "tokenizer.json").write_bytes(
        (ROOT / "suite" / "models" / "suite-1.5m" / "tokenizer.json").read_bytes()
    )
    name = str(ROOT / "suite" / "models" / "suite-0.0066m") if name == "SUITE_TOKENIZER_DIR" else name
    # From another folder (the point of the test), the project importable as an installed package would be.
    result = subprocess.run(
        [sys.executable, "-c", TOKENIZER_PROBE, name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["tokenizers", "'", "the", "cat'", "<|endoftext|>", "False"]


def test_load_tokenizer_prefers_the_model_folder_and_fails_in_one_line(monkeypatch, tmp_path):
    import harness.data.tokenizer
    import strategies

    model_dir = tmp_path / "suite" / "models" / "suite-9m"
    model_dir.mkdir(parents=True)
    (model_dir / "tokenizer.json").write_bytes(
        (ROOT / "suite" / "models" / "suite-1.5m" / "tokenizer.json").read_bytes()
    )
    monkeypatch.setattr(harness.data.tokenizer, "SUITE_MODELS", tmp_path / "suite" / "models")
    strategies.load_tokenizer.cache_clear()
    try:
        assert strategies.load_tokenizer("build/suite/models/suite-9m").id_to_token(0) == "<|endoftext|>"
        assert strategies.load_tokenizer("build/suite/models/suite-9m") is strategies.load_tokenizer(
            "build/suite/models/suite-9m"
        )
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(OSError, match="^no tokenizer for 'nobody/no-such-model': ") as error:
            strategies.load_tokenizer("nobody/no-such-model")
        assert "\n" not in str(error.value)
    finally:
        strategies.load_tokenizer.cache_clear()


SHARED_STATE = """
from __future__ import annotations
from dataclasses import dataclass
import numpy as np

print("imported")
SEEN = []

@dataclass
class Memory:
    guesses: np.ndarray | None = None

def first(s, m, t, p):
    SEEN.append("first")
    return p[:, -1].argmax(axis=1)

def second(s, m, t, p):
    assert SEEN == ["first"], "module state not shared"
    return p[:, -1].argmax(axis=1)
"""


def test_a_strategy_file_runs_once_for_all_its_functions(tmp_path, original_pickle):
    """Functions named from one file share its module (run once), which may hold dataclasses."""
    path = tmp_path / "shared.py"
    path.write_text(SHARED_STATE)
    out = tmp_path / "r.json"
    result = run_script(
        "challenge.py",
        "--dataset",
        original_pickle,
        "--strategy",
        f"{path}:first",
        "--strategy",
        f"{path}:second",
        "--json",
        out,
    )
    assert result.stdout.count("imported") == 1
    rows = json.loads(out.read_text())["datasets"][0]["strategies"]
    assert [row.get("error") for row in rows] == [None, None]


def test_the_same_definition_registered_again_is_no_clash():
    """Running a definition twice (a module imported again) re-registers it quietly; another
    definition under the name is still refused."""
    from strategies import REGISTRY, register

    def mine(sentences, model_names, target_model_name, probs):
        return [0] * len(sentences)

    def other(sentences, model_names, target_model_name, probs):
        return [1] * len(sentences)

    try:
        register("twice-test")(mine)
        register("twice-test")(mine)
        assert REGISTRY["twice-test"].fn is mine
        with pytest.raises(InputError, match="'twice-test' is registered twice"):
            register("twice-test")(other)
    finally:
        REGISTRY.pop("twice-test", None)


# ---- the leaderboard: emergence curve, reference, --compare, emergent prefixes, --show, CSV

WIKIPEDIA = ROOT / "data" / "wikipedia.pkl"
SUITE_TOKENIZER = ROOT / "suite" / "models" / "suite-1.5m" / "tokenizer.json"

# Two input models and a target over 4 tokens, 20 prefixes; the target's top-1 is token 1 everywhere.
# Model a's top-1 is 3 everywhere; model b's is 1 on prefixes 0-14 and 2 on 15-19, so prefixes
# 15-19 are emergent (no input model's top-1 is the target's), and largest = average = top2-average
# get 15 of 20 right (the reference is then `largest`, the first listed on a tie).
PAIRED = """
A_RIGHT = set(range(12))
B_RIGHT = set(range(9, 14)) | {18, 19}

def a(sentences, model_names, target_model_name, probs):
    return [1 if i in A_RIGHT else 0 for i in range(len(sentences))]

def b(sentences, model_names, target_model_name, probs):
    return [1 if i in B_RIGHT else 0 for i in range(len(sentences))]
"""


def exact_mcnemar(a_only: int, b_only: int) -> float:
    """By hand: 2 P(X <= min) for X ~ Binomial(a_only + b_only, 1/2), at most 1."""
    n = a_only + b_only
    return min(1.0, 2 * sum(math.comb(n, j) for j in range(min(a_only, b_only) + 1)) / 2**n)


@pytest.fixture
def paired_case(tmp_path):
    probs = np.zeros((20, 3, 4), dtype=np.float16)
    probs[:, 0] = [0.2, 0.2, 0.2, 0.4]
    probs[:15, 1] = [0.03, 0.9, 0.04, 0.03]
    probs[15:, 1] = [0.03, 0.04, 0.9, 0.03]
    probs[:, 2] = [0.1, 0.7, 0.1, 0.1]
    path = tmp_path / "paired.pkl"
    save_dataset(path, ["a", "b", "t"], [f"prefix {i}" for i in range(20)], probs)
    strategies = tmp_path / "paired.py"
    strategies.write_text(PAIRED)
    return path, f"{strategies}:a", f"{strategies}:b"


def test_paired_p_value_is_the_exact_binomial_through_the_cli(tmp_path, paired_case):
    path, a, b = paired_case
    out = tmp_path / "r.json"
    result = run_script("challenge.py", "--dataset", path, "--strategy", a, "--compare", a, b, "--json", out)
    data = json.loads(out.read_text())["datasets"][0]
    # a right on 0-11, b on 9-13 and 18-19: only a on 0-8 (9), only b on 12, 13, 18, 19 (4).
    comparison = data["comparisons"][0]
    assert (comparison["a"], comparison["b"], comparison["a_only"], comparison["b_only"]) == (a, b, 9, 4)
    assert comparison["p_value"] == pytest.approx(exact_mcnemar(9, 4), rel=1e-9)  # 2 * 1093 / 8192
    assert f"compare {a} vs {b}: +9/-4 p=0.27" in result.stdout
    # The reference is computed though no heuristic was asked for, and every row is compared with it.
    assert data["reference"] == {"name": "largest", "accuracy": 0.75, "correct": 15}
    rows = {row["name"]: row for row in data["strategies"]}
    assert list(rows) == [a, b]  # --compare's strategies are scored; the hidden reference is no row
    assert rows[a]["vs_reference"] == {
        "reference": "largest",
        "a_only": 0,
        "b_only": 3,
        "p_value": pytest.approx(exact_mcnemar(0, 3)),
    }
    assert rows[b]["vs_reference"]["a_only"] == 2 and rows[b]["vs_reference"]["b_only"] == 10
    assert rows[b]["vs_reference"]["p_value"] == pytest.approx(exact_mcnemar(2, 10), rel=1e-9)
    assert "reference: largest (top-1 0.750)" in result.stdout and "+0/-3 p=0.25" in result.stdout


def test_emergent_prefixes_are_counted_and_each_strategy_scored_on_them(tmp_path, paired_case):
    path, a, b = paired_case
    out = tmp_path / "r.json"
    result = run_script(
        "challenge.py", "--dataset", path, "--strategy", a, "--strategy", b, "--strategy", "largest", "--json", out
    )
    data = json.loads(out.read_text())["datasets"][0]
    assert data["emergent"] == 5  # prefixes 15-19
    assert {row["name"]: row["emergent_correct"] for row in data["strategies"]} == {a: 0, b: 2, "largest": 0}
    assert "emergent: 5 of 20 prefixes (25.0%): no input model's top-1 is the target's" in result.stdout
    assert [line for line in result.stdout.splitlines() if line.startswith(f"  {b} ")][0].endswith(" 2/5")


def test_reference_is_the_most_accurate_heuristic_and_the_curve_follows_size(tmp_path):
    out = tmp_path / "r.json"
    result = run_script("challenge.py", "--dataset", WIKIPEDIA, "--strategy", "dummy", "--json", out)
    data = json.loads(out.read_text())["datasets"][0]
    dataset = load_dataset(WIKIPEDIA)
    probs = dataset.probs.astype(np.float32)
    target = probs[:, -1].argmax(axis=1)
    accuracy = {
        "largest": (probs[:, -2].argmax(1) == target).mean(),
        "average": (probs[:, :-1].mean(1).argmax(1) == target).mean(),
        "top2-average": (probs[:, -3:-1].mean(1).argmax(1) == target).mean(),
    }
    best = max(accuracy, key=accuracy.get)
    assert data["reference"]["name"] == best and data["reference"]["accuracy"] == pytest.approx(accuracy[best])
    assert f"reference: {best} (top-1 {accuracy[best]:.3f})" in result.stdout
    # One line, smallest input model first, labelled with its size from the sidecar.
    agreement = (probs[:, :-1].argmax(2) == target[:, None]).mean(0)
    sizes = [m["non_embedding_params"] for m in json.loads(WIKIPEDIA.with_suffix(".json").read_text())["models"][:-1]]
    assert sizes == sorted(sizes) and [p["agreement"] for p in data["emergence_curve"]] == pytest.approx(agreement)
    assert sizes[0] == 6592 and sizes[-1] == 793344
    assert f"  agreement with the target: 6.6K {agreement[0]:.1%} · 25K {agreement[1]:.1%} · " in result.stdout
    assert f" · 793K {agreement[-1]:.1%}\n" in result.stdout


@pytest.mark.parametrize("columns", [80, 100])
def test_output_fits_the_terminal(columns):
    # Two datasets with tasks and a noise ceiling: every table and note of the default leaderboard.
    args = ["--dataset", ROOT / "data" / "glue-rte.pkl", "--dataset", WIKIPEDIA]
    narrow = run_script("challenge.py", *args, env={"COLUMNS": str(columns)}).stdout
    assert max(len(line) for line in narrow.splitlines()) <= columns
    # Folded, not dropped: the columns that moved below are still printed, under titles that say whose.
    titles = " ".join(line for line in narrow.splitlines() if line.startswith(("  strategy ", "  dataset ")))
    assert all(title in titles for title in ("seconds", "emergent", "task", "steepest", "noise ceiling"))
    if columns == 80:
        assert "  strategy      KL 95% CI       seconds  emergent  task" in narrow.splitlines()


def test_a_table_folds_by_priority_and_repeats_the_row_names():
    from harness.cli import Column, table

    columns = [
        Column("name", ["a", "bb"]),
        Column("top-1", ["0.5", "0.25"], right=True),
        Column("95% CI", ["[0.1, 0.9]", "[0.2, 0.3]"], fold=2, folded_title="top-1 95% CI"),
        Column("seconds", ["1.00", "12.00"], right=True, fold=1),
    ]
    assert table(columns, 80) == [
        "  name  top-1  95% CI      seconds",
        "  a       0.5  [0.1, 0.9]     1.00",
        "  bb     0.25  [0.2, 0.3]    12.00",
    ]
    # 28 columns: "seconds" (fold 1) still fits beside top-1; the interval (fold 2) moves below.
    assert table(columns, 28) == [
        "  name  top-1  seconds",
        "  a       0.5     1.00",
        "  bb     0.25    12.00",
        "  name  top-1 95% CI",
        "  a     [0.1, 0.9]",
        "  bb    [0.2, 0.3]",
    ]


def suite_tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(SUITE_TOKENIZER))


def test_show_decodes_every_models_top_k_and_the_guesses():
    code = (
        IN_PROCESS + "rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; sys.exit(rc)"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "--dataset",
            str(WIKIPEDIA),
            "--show",
            "3",
            "--top-k",
            "4",
            "--strategy",
            "largest",
            "--strategy",
            "dummy",
            "--strategy",
            "loglinear-ce",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    dataset, tokenizer = load_dataset(WIKIPEDIA), suite_tokenizer()
    assert f"  prefix: {dataset.sentences[3]!r}" in lines
    for j, name in enumerate(dataset.model_names):
        row = dataset.probs[3, j].astype(np.float32)
        top = np.argsort(-row, kind="stable")[:4]
        label = f"{name} (target)" if j == len(dataset.model_names) - 1 else name
        expected = " · ".join(f"{tokenizer.decode([int(k)])!r} {row[k]:.3f}" for k in top)
        assert [line for line in lines if line.startswith(f"  {label} ")][0].endswith(f"  {expected}")
    largest = int(dataset.probs[3, -2].astype(np.float32).argmax())
    right = largest == int(dataset.probs[3, -1].astype(np.float32).argmax())
    headers = [i for i, line in enumerate(lines) if line.startswith("  strategy ")]
    assert len(headers) == 2  # the guesses, then the returned distributions' top-k
    guess = {line.split()[0]: line.split(None, 1)[1] for line in lines[headers[0] + 1 : headers[1]]}
    assert guess["largest"].startswith(
        f"{tokenizer.decode([largest])!r} (id {largest})  {'right' if right else 'wrong'}  (KL "
    )
    assert guess["dummy"] == "'<|endoftext|>' (id 0)  wrong"  # special tokens are shown, not dropped
    assert "loglinear-ce" in guess and "error" not in guess["loglinear-ce"]  # learned: fitted by folds, as usual
    shown = {line.split()[0]: line.split(None, 1)[1] for line in lines[headers[1] + 1 :]}
    assert set(shown) == {"largest", "loglinear-ce"}  # dummy returns ids
    row = dataset.probs[3, -2].astype(np.float32)  # largest's distribution is the largest input model's
    assert shown["largest"] == " · ".join(
        f"{tokenizer.decode([int(k)])!r} {row[k]:.3f}" for k in np.argsort(-row, kind="stable")[:4]
    )
    assert any(line.startswith("  difficulty: KL(target || ") for line in lines)


def test_show_without_a_tokenizer_gives_ids_and_says_why(tmp_path, paired_case):
    path, a, _ = paired_case
    result = run_script("challenge.py", "--dataset", path, "--show", "16", "--strategy", a, "--top-k", "2")
    assert (
        "  token ids only: no tokenizer for 't' in a folder, the bundled suite or the Hugging Face cache"
        in result.stdout
    )
    assert "\n  b           #2 0.900 · #1 0.040\n" in result.stdout
    assert "\n  t (target)  #1 0.700 · #0 0.100\n" in result.stdout
    assert f"  {a}  #0  wrong" in result.stdout
    bad = run_script("challenge.py", "--dataset", path, "--show", "20", check=False)
    assert bad.returncode == 1 and bad.stderr == f"error: {path}: --show 20: prefixes are numbered 0 to 19\n"


def test_predictions_csv_has_decoded_tokens(tmp_path):
    out = tmp_path / "p.csv"
    run_script(
        "challenge.py", "--dataset", WIKIPEDIA, "--strategy", "largest", "--strategy", "random", "--predictions", out
    )
    with out.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == [
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
    ]
    tokenizer = suite_tokenizer()
    assert len(rows) == 220 and any("\n" in row["guess_token"] or row["guess_token"].startswith(" ") for row in rows)
    for row in rows:
        assert row["guess_token"] == tokenizer.decode([int(row["guess"])], skip_special_tokens=False)
        assert row["target_token"] == tokenizer.decode([int(row["target_top1"])], skip_special_tokens=False)


# ---- --predict-only

RECORDER = """
def inputs_only(sentences, model_names, target_model_name, probs):
    assert target_model_name == "hidden" and probs.shape[1] == len(model_names) == 6, (target_model_name, probs.shape)
    return probs[:, -1].view("uint16").argmax(axis=1)
"""


@pytest.fixture
def blind_files(tmp_path):
    """A public file (the input models of wikipedia.pkl's first 60 prefixes, sidecar public: true) and
    a training file with the target (its other 50 prefixes)."""
    dataset = load_dataset(WIKIPEDIA)
    public = tmp_path / "public.pkl"
    save_dataset(
        public,
        dataset.model_names[:-1],
        dataset.sentences[:60],
        dataset.probs[:60, :-1],
        {"public": True, "target_model": "hidden"},
    )
    train = tmp_path / "train.pkl"
    save_dataset(train, dataset.model_names, dataset.sentences[60:], dataset.probs[60:])
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    return public, train, f"{recorder}:inputs_only", dataset


def test_predict_only_writes_guesses_from_a_public_file(tmp_path, blind_files):
    public, train, recorder, dataset = blind_files
    out = tmp_path / "p.csv"
    result = run_script(
        "challenge.py",
        "--dataset",
        public,
        "--predict-only",
        "--predictions",
        out,
        "--strategy",
        recorder,
        "--strategy",
        "loglinear",
        "--train",
        train,
    )
    assert f"  {recorder}  60 guesses written" in result.stdout and "95% CI" not in result.stdout
    with out.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["dataset", "strategy", "index", "sentence", "guess", "guess_token"]
    mine = [row for row in rows if row["strategy"] == recorder]
    expected = dataset.probs[:60, -2].astype(np.float32).argmax(axis=1)
    assert [int(row["guess"]) for row in mine] == expected.tolist()
    assert [row["sentence"] for row in mine] == dataset.sentences[:60]
    assert mine[0]["guess_token"] == suite_tokenizer().decode([int(expected[0])])
    assert len([row for row in rows if row["strategy"] == "loglinear"]) == 60

    # Without --train a learned strategy cannot fit: one line in its row; the others are written.
    result = run_script(
        "challenge.py",
        "--dataset",
        public,
        "--predict-only",
        "--predictions",
        out,
        "--strategy",
        recorder,
        "--strategy",
        "loglinear",
        check=False,
    )
    row = next(line for line in result.stdout.splitlines() if line.startswith("  loglinear "))
    assert result.returncode == 1 and row.split(None, 1)[1].startswith("error: a learned strategy needs --train")
    assert {row["strategy"] for row in csv.DictReader(out.open())} == {recorder}


def test_a_public_file_is_refused_for_scoring_and_checked_against_train(tmp_path, blind_files):
    public, train, _, dataset = blind_files
    result = run_script("challenge.py", "--dataset", public, "--strategy", "largest", check=False)
    assert result.returncode == 1 and result.stderr.startswith(f"error: {public}: a blind test's public file")
    other = tmp_path / "other.pkl"
    save_dataset(other, ["x", *dataset.model_names[1:]], dataset.sentences[60:], dataset.probs[60:])
    result = run_script(
        "challenge.py",
        "--dataset",
        public,
        "--predict-only",
        "--predictions",
        tmp_path / "p.csv",
        "--strategy",
        "loglinear",
        "--train",
        other,
        check=False,
    )
    assert result.returncode == 1 and f"error: {other}: its models (x, " in result.stderr
    overlapping = tmp_path / "overlap.pkl"
    save_dataset(overlapping, dataset.model_names, dataset.sentences[50:], dataset.probs[50:])
    result = run_script(
        "challenge.py",
        "--dataset",
        public,
        "--predict-only",
        "--predictions",
        tmp_path / "p.csv",
        "--strategy",
        "loglinear",
        "--train",
        overlapping,
        check=False,
    )
    assert result.returncode == 1 and "shares 10 prefixes with" in result.stderr
    assert not (tmp_path / "p.csv").exists()
    result = run_script(
        "challenge.py",
        "--dataset",
        public,
        "--predict-only",
        "--predictions",
        tmp_path / "p.csv",
        "--strategy",
        "loglinear",
        "--train",
        public,
        check=False,
    )
    assert result.returncode == 1 and result.stderr.startswith(
        f"error: {public}: a blind test's public file has no target: it cannot be a --train file\n"
    )


def test_predict_only_without_a_sidecar_says_which_model_it_leaves_out(tmp_path, blind_files):
    """Without its sidecar a public file is not known as one: its last model is taken as the target,
    and a warning says so rather than silently predicting from one model fewer."""
    public = blind_files[0]
    public.with_suffix(".json").unlink()
    result = run_script(
        "challenge.py",
        "--dataset",
        public,
        "--predict-only",
        "--predictions",
        tmp_path / "p.csv",
        "--strategy",
        "largest",
    )
    name = load_dataset(public).model_names[-1]
    assert result.stderr == (
        f"warning: {public}: no valid sidecar, so it is not known to be a blind test's public "
        f"file: its model {name} is taken as the target and left out\n"
    )
    result = run_script(
        "challenge.py",
        "--dataset",
        public,
        "--predict-only",
        "--predictions",
        tmp_path / "p.csv",
        "--strategy",
        "largest",
        "--target",
        name,
    )
    assert result.stderr == ""  # the user named the target: nothing to warn about


def test_predict_only_never_reads_the_target(tmp_path):
    """Two files that differ only in the target's probabilities give the same predictions."""
    dataset = load_dataset(WIKIPEDIA)
    other_target = dataset.probs.copy()
    other_target[:, -1] = other_target[::-1, 0]  # another, valid, distribution per prefix
    outputs = []
    for name, probs in (("one", dataset.probs), ("two", other_target)):
        path = tmp_path / f"{name}.pkl"
        save_dataset(path, dataset.model_names, dataset.sentences, probs)
        out = tmp_path / f"{name}.csv"
        result = run_script(
            "challenge.py",
            "--dataset",
            path,
            "--predict-only",
            "--predictions",
            out,
            "--strategy",
            "largest",
            "--strategy",
            "average",
            "--json",
            tmp_path / f"{name}.json",
        )
        assert "target_top1" not in out.read_text().splitlines()[0] and "emergent" not in result.stdout
        outputs.append(out.read_text().replace(str(path), "X"))
    assert outputs[0] == outputs[1]


def test_predict_only_needs_predictions():
    result = run_script("challenge.py", "--dataset", WIKIPEDIA, "--predict-only", check=False)
    assert result.returncode == 2 and "--predict-only needs --predictions" in result.stderr


# ---- exit codes: 0 ok, 1 input / data / strategy error, 2 command line


@pytest.mark.parametrize(
    "case, code",
    [
        ("ok", 0),
        ("unknown_strategy", 1),
        ("bad_spec", 1),
        ("no_file", 1),
        ("import_fails", 1),
        ("no_function", 1),
        ("strategy_raises", 1),
        ("bad_dataset", 1),
        ("output_is_a_folder", 1),
        ("unknown_flag", 2),
        ("bad_number", 2),
    ],
)
def test_exit_codes(tmp_path, case, code):
    (tmp_path / "broken.py").write_text("import no_such_module\n")
    (tmp_path / "fine.py").write_text("def boom(s, m, t, p):\n    raise RuntimeError('boom')\n")
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    args = {
        "ok": ["--strategy", "largest"],
        "unknown_strategy": ["--strategy", "nope"],
        "bad_spec": ["--strategy", f"{tmp_path / 'fine.py'}:"],
        "no_file": ["--strategy", "missing.py:f"],
        "import_fails": ["--strategy", f"{tmp_path / 'broken.py'}:f"],
        "no_function": ["--strategy", f"{tmp_path / 'fine.py'}:other"],
        "strategy_raises": ["--strategy", f"{tmp_path / 'fine.py'}:boom"],
        "bad_dataset": ["--dataset", tmp_path / "bad.pkl"],
        "output_is_a_folder": ["--json", tmp_path],
        "unknown_flag": ["--no-such-flag"],
        "bad_number": ["--folds", "x"],
    }[case]
    dataset = [] if case == "bad_dataset" else ["--dataset", WIKIPEDIA]
    result = run_script("challenge.py", *dataset, *args, check=False)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    if case == "strategy_raises":  # in the strategy's row
        assert f"{tmp_path / 'fine.py'}:boom" in result.stdout and "error: raised RuntimeError: boom" in result.stdout
    elif code == 1:
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    elif code == 2:
        assert "usage: " in result.stderr


@pytest.mark.parametrize("script", ["challenge.py", "preprocess_train.py", "blind_test.py"])
def test_help_documents_the_exit_codes(script):
    result = run_script(script, "--help")
    assert "exit status:" in result.stdout
    for line in ("\n  1    ", "\n  2    a bad command line", "\n  130  interrupted"):
        assert line in result.stdout


# ---- a stale sidecar: read once per dataset, so it warns once, in one line


def test_a_stale_sidecar_warns_once_in_one_line(tmp_path):
    dataset = load_dataset(WIKIPEDIA)
    path = tmp_path / "stale.pkl"
    save_dataset(
        path,
        dataset.model_names,
        dataset.sentences[:40],
        dataset.probs[:40],
        {"models": [{"name": name} for name in dataset.model_names]},
    )
    with open(path, "wb") as f:  # the pickle rewritten without its sidecar: the sidecar describes another file
        pickle.dump((dataset.model_names, dataset.sentences[:30], dataset.probs[:30]), f)
    train = tmp_path / "train.pkl"
    save_dataset(train, dataset.model_names, dataset.sentences[60:], dataset.probs[60:])
    report = ["--report", tmp_path / "report"] if _has_matplotlib() else []
    runs = [
        run_script(
            "challenge.py",
            "--dataset",
            path,
            "--strategy",
            "largest",
            "--strategy",
            "loglinear",
            "--json",
            tmp_path / "r.json",
            *report,
        ),
        run_script("challenge.py", "--dataset", path, "--train", train, "--strategy", "loglinear", "--show", "2"),
        run_script(
            "blind_test.py", "split", path, "--public", tmp_path / "public.pkl", "--answers", tmp_path / "answers.json"
        ),
    ]
    for result in runs:
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and result.stderr.count("\n") == 1, result.stderr
        assert warnings[0].startswith(f"warning: {path.with_suffix('.json')}: describes another version of {path}")


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_metric_ranks_the_leaderboard_and_json_has_every_metric(tmp_path):
    out = tmp_path / "r.json"
    result = run_script(
        "challenge.py",
        "--dataset",
        WIKIPEDIA,
        "--strategy",
        "largest",
        "--strategy",
        "average",
        "--strategy",
        "dummy",
        "--metric",
        "alpha",
        "--json",
        out,
    )
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("  strategy "))
    rows = [line.split()[0] for line in lines[header + 1 : header + 4]]
    data = json.loads(out.read_text())["datasets"][0]
    by_name = {row["name"]: row for row in data["strategies"]}
    alpha = {name: by_name[name]["metrics"]["alpha"]["mean"] for name in ("largest", "average")}
    assert rows == sorted(alpha, key=lambda name: -alpha[name]) + ["dummy"]  # ids (dummy) rank last
    assert "alpha = 1 - TV(target, model): " in result.stdout
    for name in ("largest", "average"):
        assert set(by_name[name]["metrics"]) == {"top1", "top5", "log_loss", "kl", "alpha", "tokens_per_pass"}
    assert set(by_name["dummy"]["metrics"]) == {"top1"}
    # largest's distribution is its largest input model's: the same numbers as that model's in the curve
    assert by_name["largest"]["metrics"] == data["emergence_curve"][-1]["metrics"]
    assert {"kl", "alpha", "top5"} <= set(by_name["average"]["vs_reference"])
    assert data["floor"] == 2.0**-24 and len(data["hardest"]) == 10
    assert data["near_ties"]["prefixes"] > 0
    bad = run_script("challenge.py", "--metric", "accuracy", check=False)
    assert bad.returncode == 2 and "--metric: invalid choice: 'accuracy'" in bad.stderr


def test_a_package_never_installed_is_one_line_naming_it(tmp_path):
    # As on a machine where `pip install -r requirements.txt` was skipped: tqdm cannot be imported.
    (tmp_path / "tqdm.py").write_text("raise ModuleNotFoundError(\"No module named 'tqdm'\", name='tqdm')\n")
    result = run_script(
        "challenge.py", "--dataset", WIKIPEDIA, "--strategy", "largest", check=False, env={"PYTHONPATH": str(tmp_path)}
    )
    assert result.returncode == 1
    assert result.stderr == (
        "error: the tqdm package is not installed: python3 -m pip install -r requirements.txt "
        "(requirements-dev.txt to build datasets)\n"
    )


def test_a_table_keeps_two_columns_with_the_same_cells():
    from harness.cli import Column, table

    same = lambda: Column("vs ref", ["", ""], fold=1)
    lines = table([Column("name", ["a", "b"]), Column("top-1", ["0.5", "0.2"]), same(), same()], 80)
    assert lines[0] == "  name  top-1  vs ref  vs ref"


def test_progress_bars_fit_the_columns(monkeypatch):
    import io

    from harness.cli import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("COLUMNS", "90")
    bar = progress(total=10, file=terminal, mininterval=0)
    assert bar.ncols == 90  # tqdm alone would size it by the terminal and ignore $COLUMNS
    bar.set_postfix_str("fitting a-strategy-with-a-long-name")
    bar.update(5)
    bar.close()
    drawn = [part.rstrip("\n") for part in terminal.getvalue().split("\r") if part.strip()]
    assert len(drawn) >= 2 and all(len(part) <= 90 for part in drawn)
