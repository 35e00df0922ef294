"""blind_test.py: the public file carries no trace of the target, the answers score the participants'
predictions, and a bad predictions file is refused in one line while the others are still scored."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from conftest import ROOT, run_script

from harness.data.dataset import load_dataset, model_sizes, read_sidecar, save_dataset
from harness.scoring.top1 import top1

N, V = 20, 50
TARGET = "secret-target-7b"
INPUTS = ["tiny-in-1", "tiny-in-2"]


def synthetic_dataset(path, seed: int = 0):
    """Three models (the last the target) with peaked rows, and a sidecar that names the target
    everywhere a real one does: models, target_model, command, extra, paths."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N, 3, V)) * 4
    probs = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    names = INPUTS + [TARGET]
    sentences = [f"prefix number {i}, with a comma" for i in range(N)]
    metadata = {
        "models": [
            {
                "name": name,
                "path": f"/models/{TARGET}/{name}",
                "non_embedding_params": 1000 * (i + 1),
                "total_params": 98765 + i,
            }
            for i, name in enumerate(names)
        ],
        "target_model": TARGET,
        "command": ["preprocess_train.py", "--models", *names],
        "extra": {"note": f"trained for {TARGET}"},
        "num_prefixes": N,
        "vocab_size": V,
    }
    save_dataset(path, names, sentences, probs.astype(np.float16), metadata)
    return load_dataset(path)


@pytest.fixture
def blind(tmp_path):
    """(dataset, public path, answers path): the synthetic dataset split."""
    dataset = synthetic_dataset(tmp_path / "full.pkl")
    public, answers = tmp_path / "public.pkl", tmp_path / "answers.json"
    run_script("blind_test.py", "split", dataset.path, "--public", public, "--answers", answers)
    return dataset, public, answers


def write_predictions(
    path, rows: list[dict], columns=("dataset", "strategy", "index", "sentence", "guess", "guess_token")
):
    """A participant's file in the format of `challenge.py --predict-only --predictions`."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def rows_for(sentences, guesses, strategy: str = "mine") -> list[dict]:
    return [
        {"dataset": "public.pkl", "strategy": strategy, "index": i, "sentence": s, "guess": int(g), "guess_token": ""}
        for i, (s, g) in enumerate(zip(sentences, guesses))
    ]


def test_public_file_holds_the_inputs_exactly_and_no_trace_of_the_target(tmp_path):
    source = ROOT / "data" / "wikipedia.pkl"
    dataset = load_dataset(source)
    public, answers = tmp_path / "public.pkl", tmp_path / "answers.json"
    run_script("blind_test.py", "split", source, "--public", public, "--answers", answers)

    loaded = load_dataset(public)
    assert loaded.model_names == dataset.model_names[:-1]
    assert loaded.sentences == dataset.sentences
    assert loaded.probs.dtype == np.float16 and np.array_equal(loaded.probs, dataset.probs[:, :-1])
    sidecar = json.loads(public.with_suffix(".json").read_text())
    assert set(sidecar) == {"format", "public", "target_model", "models", "num_prefixes", "vocab_size", "pickle"}
    assert sidecar["public"] is True and sidecar["target_model"] == "hidden"
    assert [m["name"] for m in sidecar["models"]] == loaded.model_names
    assert (
        model_sizes(loaded.model_names, read_sidecar(loaded.path))["suite-0.79m"]["non_embedding_params"] == 793344
    )  # sizes still reach strategies

    target = dataset.model_names[-1]
    everything = public.read_bytes() + public.with_suffix(".json").read_bytes()
    assert target.encode() not in everything and b"command" not in everything and b"extra" not in everything
    target_probs = dataset.probs[:, -1]
    for i in (0, 7, 50, 109):
        # 32 bytes of the target's row around its top-1, where it differs from every input model's row.
        start = max(0, int(top1(target_probs[i])) - 8)
        window = target_probs[i, start : start + 16]
        assert not any(np.array_equal(window, dataset.probs[i, j, start : start + 16]) for j in range(6))
        assert window.tobytes() not in everything
        assert target_probs[i].tobytes() not in everything

    record = json.loads(answers.read_text())
    assert record["target_model"] == target and record["input_models"] == loaded.model_names
    assert record["sentences"] == dataset.sentences
    assert record["target_top1"] == top1(target_probs).tolist()
    assert record["public_pickle"]["sha256"] == sidecar["pickle"]["sha256"]


def test_sidecar_drops_everything_that_names_the_target(blind):
    dataset, public, answers = blind
    text = public.read_bytes() + public.with_suffix(".json").read_bytes()
    assert TARGET.encode() not in text and b"/models/" not in text and b"98767" not in text  # name, path, its size
    assert [m["total_params"] for m in json.loads(public.with_suffix(".json").read_text())["models"]] == [98765, 98766]
    assert load_dataset(public).probs.shape == (N, 2, V)


def test_target_in_the_middle(tmp_path):
    dataset = synthetic_dataset(tmp_path / "full.pkl")
    public, answers = tmp_path / "public.pkl", tmp_path / "answers.json"
    run_script(
        "blind_test.py", "split", dataset.path, "--public", public, "--answers", answers, "--target", "tiny-in-2"
    )
    loaded = load_dataset(public)
    assert loaded.model_names == ["tiny-in-1", TARGET]
    assert np.array_equal(loaded.probs, dataset.probs[:, [0, 2]])
    assert json.loads(answers.read_text())["target_top1"] == top1(dataset.probs[:, 1]).tolist()


@pytest.mark.parametrize(
    "public, answers",
    [
        ("full.pkl", "answers.json"),
        ("public.pkl", "public.pkl"),
        ("public.pkl", "public.json"),
        ("public.pkl", "full.json"),
        ("full.json", "answers.json"),
    ],
)
def test_split_refuses_to_overwrite_the_dataset_or_itself(tmp_path, public, answers):
    dataset = synthetic_dataset(tmp_path / "full.pkl")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = run_script(
        "blind_test.py",
        "split",
        dataset.path,
        "--public",
        tmp_path / public,
        "--answers",
        tmp_path / answers,
        check=False,
    )
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_accuracy_and_p_value_equal_hand_computed_ones(blind, tmp_path):
    dataset, public, answers = blind
    target = top1(dataset.probs[:, -1])
    wrong = (target + 1) % V
    right_a = np.arange(N) < 15  # A: 15 of 20
    right_b = (np.arange(N) < 8) | (np.arange(N) >= 17)  # B: 11 of 20; A only 7, B only 3
    write_predictions(tmp_path / "alice.csv", rows_for(dataset.sentences, np.where(right_a, target, wrong)))
    write_predictions(tmp_path / "bob.csv", rows_for(dataset.sentences, np.where(right_b, target, wrong)))
    result = run_script(
        "blind_test.py",
        "score",
        "--answers",
        answers,
        tmp_path / "alice.csv",
        tmp_path / "bob.csv",
        "--json",
        tmp_path / "out.json",
        "--seed",
        3,
    )

    out = json.loads((tmp_path / "out.json").read_text())
    alice, bob = out["submissions"]
    assert (alice["name"], bob["name"]) == ("alice", "bob")
    assert alice["accuracy"] == 15 / 20 and bob["accuracy"] == 11 / 20 and alice["n"] == N
    expected_p = min(1.0, 2 * sum(math.comb(10, j) for j in range(3 + 1)) / 2**10)  # 2 P(X <= 3), X ~ B(10, 1/2)
    assert bob["vs_best"]["a_only"] == 3 and bob["vs_best"]["b_only"] == 7
    assert bob["vs_best"]["p_value"] == pytest.approx(expected_p, rel=1e-9)
    assert out["pairs"] == [{"a": "alice", "b": "bob", "a_only": 7, "b_only": 3, "p_value": bob["vs_best"]["p_value"]}]
    assert out["seed"] == 3 and alice["ci95"][0] <= 0.75 <= alice["ci95"][1]
    assert "+3/-7 p=0.34" in result.stdout and result.stderr == ""


def test_several_strategies_in_one_file_are_separate_submissions(blind, tmp_path):
    dataset, public, answers = blind
    target = top1(dataset.probs[:, -1])
    rows = rows_for(dataset.sentences, target, "oracle") + rows_for(dataset.sentences, np.zeros(N), "zero")
    write_predictions(tmp_path / "team.csv", rows[::-1])  # any row order
    run_script("blind_test.py", "score", "--answers", answers, tmp_path / "team.csv", "--json", tmp_path / "out.json")
    scored = {row["name"]: row["accuracy"] for row in json.loads((tmp_path / "out.json").read_text())["submissions"]}
    assert scored == {"team/oracle": 1.0, "team/zero": float((target == 0).mean())}


def _drop(rows):
    return rows[:3] + rows[4:]


def _repeat(rows):
    return rows + [rows[5]]


def _foreign(rows):
    return [{**row, "sentence": "a prefix of another file"} if row["index"] == 2 else row for row in rows]


def _unknown_index(rows):
    return rows + [{**rows[0], "index": N}]


def _guess(value):
    return lambda rows: [{**row, "guess": value} if row["index"] == 4 else row for row in rows]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (_drop, "1 of 20 prefixes missing (index 3)"),
        (_repeat, "1 prefix given more than once (index 5)"),
        (_foreign, "not the answers' prefix at that index"),
        (_unknown_index, "no prefix of the answers"),
        (_guess(V), f"not a token id in [0, {V})"),
        (_guess(-1), f"not a token id in [0, {V})"),
        (_guess("3.5"), "'3.5'"),
        (_guess(""), f"not a token id in [0, {V})"),
    ],
)
def test_bad_predictions_are_refused_in_one_line_and_the_others_still_scored(blind, tmp_path, mutate, expected):
    dataset, public, answers = blind
    guesses = top1(dataset.probs[:, 1])
    good = write_predictions(tmp_path / "good.csv", rows_for(dataset.sentences, guesses))
    bad = write_predictions(tmp_path / "bad.csv", mutate(rows_for(dataset.sentences, guesses)))
    result = run_script(
        "blind_test.py", "score", "--answers", answers, bad, good, "--json", tmp_path / "out.json", check=False
    )
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and str(bad) in errors[0] and expected in errors[0], result.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    assert [row["name"] for row in out["submissions"] if "error" not in row] == ["good"]
    assert [row["file"] for row in out["submissions"] if "error" in row] == [str(bad)]
    assert "good" in result.stdout and "1 refused" in result.stdout


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"\xff\xfe\x00strategy,index", "not UTF-8"),
        (b"", "no header"),
        (b"strategy,index,sentence\nmine,0,prefix number 0\n", "no column guess"),
        (b"strategy,index,sentence,guess\nmine,0\n", "line 2 has 2 fields"),
        (b"strategy,index,sentence,guess\n", "no predictions"),
        (b"dataset,strategy,index,sentence,guess\na.pkl,m,0,x,1\nb.pkl,m,0,x,1\n", "2 datasets"),
    ],
)
def test_malformed_csv_is_refused_in_one_line(blind, tmp_path, content, expected):
    dataset, public, answers = blind
    good = write_predictions(tmp_path / "good.csv", rows_for(dataset.sentences, np.zeros(N)))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    result = run_script("blind_test.py", "score", "--answers", answers, good, bad, check=False)
    errors = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(errors) == 1 and str(bad) in errors[0] and expected in errors[0], (
        result.stderr
    )
    assert "good" in result.stdout


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda text: text[: len(text) // 2], "malformed JSON"),
        (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "target_top1"}), "no target_top1"),
        (lambda text: json.dumps({**json.loads(text), "target_top1": [V] * N}), "outside [0, 50)"),
        (lambda text: json.dumps({**json.loads(text), "tied_tokens": [[]]}), "one list per sentence"),
    ],
)
def test_malformed_answers_are_one_line(blind, tmp_path, edit, expected):
    dataset, public, answers = blind
    answers.write_text(edit(answers.read_text()))
    good = write_predictions(tmp_path / "good.csv", rows_for(dataset.sentences, np.zeros(N)))
    result = run_script("blind_test.py", "score", "--answers", answers, good, check=False)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0 and expected in result.stderr, (
        result.stderr
    )
    assert str(answers) in result.stderr


def test_json_may_not_overwrite_the_answers(blind, tmp_path):
    dataset, public, answers = blind
    before = answers.read_text()
    good = write_predictions(tmp_path / "good.csv", rows_for(dataset.sentences, np.zeros(N)))
    result = run_script("blind_test.py", "score", "--answers", answers, good, "--json", answers, check=False)
    assert result.returncode == 1 and answers.read_text() == before


def test_split_needs_two_input_models(tmp_path):
    save_dataset(tmp_path / "two.pkl", ["a", "b"], ["x"], np.full((1, 2, 4), 0.25, np.float16))
    result = run_script(
        "blind_test.py",
        "split",
        tmp_path / "two.pkl",
        "--public",
        tmp_path / "p.pkl",
        "--answers",
        tmp_path / "a.json",
        check=False,
    )
    assert result.returncode == 1 and "at least 3 models" in result.stderr and not (tmp_path / "p.pkl").exists()


def test_the_whole_blind_test_from_split_to_leaderboard(tmp_path):
    """The README's steps on the bundled data: the organizer splits, a participant predicts from the
    public file with challenge.py --predict-only, the organizer scores: the same numbers as scoring
    the full dataset directly."""
    full = ROOT / "data" / "wikipedia.pkl"
    public, answers, mine = tmp_path / "public.pkl", tmp_path / "answers.json", tmp_path / "mine.csv"
    run_script("blind_test.py", "split", full, "--public", public, "--answers", answers)
    run_script(
        "challenge.py",
        "--dataset",
        public,
        "--predict-only",
        "--predictions",
        mine,
        "--strategy",
        "largest",
        "--strategy",
        "top2-average",
    )
    with open(mine, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert "target_top1" not in rows[0] and len(rows) == 2 * 110
    scored = run_script("blind_test.py", "score", "--answers", answers, mine, "--json", tmp_path / "scores.json")
    assert "2 submissions scored" in scored.stdout
    direct = tmp_path / "direct.json"
    run_script(
        "challenge.py", "--dataset", full, "--strategy", "largest", "--strategy", "top2-average", "--json", direct
    )
    expected = {row["name"]: row for row in json.loads(direct.read_text())["datasets"][0]["strategies"]}
    blind_rows = {row["name"]: row for row in json.loads((tmp_path / "scores.json").read_text())["submissions"]}
    for strategy in ("largest", "top2-average"):
        assert blind_rows[f"mine/{strategy}"]["accuracy"] == expected[strategy]["accuracy"]
        assert blind_rows[f"mine/{strategy}"]["ci95"] == expected[strategy]["ci95"]


def test_ties_and_emergent_prefixes_by_hand(tmp_path):
    """Four prefixes built so that every count can be checked by hand: inputs a and b rank tokens 0
    and 1 first; the target ranks 2 (tied with 4), 0, 1 (tied with 3 and 5) and 1 first."""
    V = 8
    inputs = np.full((4, 2, V), 0.05)
    inputs[:, 0, 0] = inputs[:, 1, 1] = 0.65
    target = np.full((4, V), 0.05)
    for row, peaks in enumerate([{2: 0.35, 4: 0.35}, {0: 0.65}, {5: 0.25, 1: 0.25, 3: 0.25}, {1: 0.65}]):
        for token, p in peaks.items():
            target[row, token] = p
    probs = np.concatenate([inputs, target[:, None]], axis=1)
    probs = (probs / probs.sum(axis=2, keepdims=True)).astype(np.float16)
    save_dataset(tmp_path / "full.pkl", ["a", "b", "t"], [f"p{i}" for i in range(4)], probs)
    public, answers = tmp_path / "public.pkl", tmp_path / "answers.json"
    run_script("blind_test.py", "split", tmp_path / "full.pkl", "--public", public, "--answers", answers)
    record = json.loads(answers.read_text())
    assert record["target_top1"] == [2, 0, 1, 1]
    assert record["tied_tokens"] == [[4], [], [3, 5], []]
    assert record["emergent_prefixes"] == [0]
    guesses = write_predictions(tmp_path / "g.csv", rows_for([f"p{i}" for i in range(4)], [4, 0, 3, 1]))
    run_script("blind_test.py", "score", "--answers", answers, guesses, "--json", tmp_path / "s.json")
    row = json.loads((tmp_path / "s.json").read_text())["submissions"][0]
    assert (row["correct"], row["tied_misses"], row["emergent_correct"]) == (2, 2, 0)
    right = write_predictions(tmp_path / "r.csv", rows_for([f"p{i}" for i in range(4)], [2, 0, 1, 1]))
    run_script("blind_test.py", "score", "--answers", answers, right, "--json", tmp_path / "s.json")
    row = json.loads((tmp_path / "s.json").read_text())["submissions"][0]
    assert (row["correct"], row["tied_misses"], row["emergent_correct"]) == (4, 0, 1)


def test_a_predictions_file_given_twice_is_refused_even_through_a_link(blind, tmp_path):
    dataset, public, answers = blind
    good = write_predictions(tmp_path / "good.csv", rows_for(dataset.sentences, np.zeros(N)))
    (tmp_path / "again.csv").symlink_to(good)
    result = run_script(
        "blind_test.py",
        "score",
        "--answers",
        answers,
        good,
        tmp_path / "again.csv",
        "--json",
        tmp_path / "out" / "s.json",
        check=False,
    )
    assert result.returncode == 2 and "a predictions file is given twice" in result.stderr
    assert not (tmp_path / "out").exists()  # refused before any output folder is made
