"""challenge.py's leaderboard answers: the emergence curve, paired comparisons (the best built-in
heuristic as reference, --compare), emergent prefixes, --show, decoded tokens in the predictions
CSV, --predict-only on a blind test's public file, and the exit codes.

numpy and tokenizers only (no torch): the bundled data/wikipedia.pkl and small constructed datasets.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, run_script

from harness.dataset import load_dataset, save_dataset

WIKIPEDIA = ROOT / "data" / "wikipedia.pkl"
SUITE_TOKENIZER = ROOT / "suite" / "models" / "suite-1.5m" / "tokenizer.json"

# Two input models and a target over 4 tokens, 20 prefixes; the target's top-1 is token 1 everywhere.
# Model a's top-1 is 3 everywhere; model b's is 1 on prefixes 0-14 and 2 on 15-19, so prefixes
# 15-19 are emergent (no input model's top-1 is the target's), and largest = average = top2-average
# get 15 of 20 right (the reference is then `largest`, the first listed on a tie).
PAIRED = '''
A_RIGHT = set(range(12))
B_RIGHT = set(range(9, 14)) | {18, 19}

def a(sentences, model_names, target_model_name, probs):
    return [1 if i in A_RIGHT else 0 for i in range(len(sentences))]

def b(sentences, model_names, target_model_name, probs):
    return [1 if i in B_RIGHT else 0 for i in range(len(sentences))]
'''


def exact_mcnemar(a_only: int, b_only: int) -> float:
    """By hand: 2 P(X <= min) for X ~ Binomial(a_only + b_only, 1/2), at most 1."""
    n = a_only + b_only
    return min(1.0, 2 * sum(math.comb(n, j) for j in range(min(a_only, b_only) + 1)) / 2 ** n)


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
    assert rows[a]["vs_reference"] == {"reference": "largest", "a_only": 0, "b_only": 3,
                                       "p_value": pytest.approx(exact_mcnemar(0, 3))}
    assert rows[b]["vs_reference"]["a_only"] == 2 and rows[b]["vs_reference"]["b_only"] == 10
    assert rows[b]["vs_reference"]["p_value"] == pytest.approx(exact_mcnemar(2, 10), rel=1e-9)
    assert "reference: largest (top-1 0.750)" in result.stdout and "+0/-3 p=0.25" in result.stdout


def test_emergent_prefixes_are_counted_and_each_strategy_scored_on_them(tmp_path, paired_case):
    path, a, b = paired_case
    out = tmp_path / "r.json"
    result = run_script("challenge.py", "--dataset", path, "--strategy", a, "--strategy", b, "--strategy", "largest",
                        "--json", out)
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
    accuracy = {"largest": (probs[:, -2].argmax(1) == target).mean(),
                "average": (probs[:, :-1].mean(1).argmax(1) == target).mean(),
                "top2-average": (probs[:, -3:-1].mean(1).argmax(1) == target).mean()}
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
    assert max(len(line) for line in result.stdout.splitlines()) <= 120


def test_human_sizes():
    from challenge import human_size
    assert [human_size(n) for n in (999, 1000, 6592, 25472, 793344, 1546720, 70_426_624, 2_775_208_960)] == \
        ["999", "1K", "6.6K", "25K", "793K", "1.5M", "70M", "2.8B"]


def suite_tokenizer():
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(SUITE_TOKENIZER))


def test_show_decodes_every_models_top_k_and_the_guesses():
    code = ("import sys, challenge; rc = challenge.main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, "--dataset", str(WIKIPEDIA), "--show", "3", "--top-k", "4",
                             "--strategy", "largest", "--strategy", "dummy", "--strategy", "loglinear"],
                            cwd=ROOT, capture_output=True, text=True)
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
    guess = {line.split()[0]: line.split(None, 1)[1] for line in lines[lines.index(
        next(line for line in lines if line.startswith("  strategy "))) + 1:]}
    assert guess["largest"] == f"{tokenizer.decode([largest])!r} (id {largest})  {'right' if right else 'wrong'}"
    assert guess["dummy"] == "'<|endoftext|>' (id 0)  wrong"  # special tokens are shown, not dropped
    assert "loglinear" in guess and "error" not in guess["loglinear"]  # learned: fitted by folds, as usual


def test_show_without_a_tokenizer_gives_ids_and_says_why(tmp_path, paired_case):
    path, a, _ = paired_case
    result = run_script("challenge.py", "--dataset", path, "--show", "16", "--strategy", a, "--top-k", "2")
    assert "  token ids only: no tokenizer for 't' in a folder, the bundled suite or the Hugging Face cache" \
        in result.stdout
    assert "\n  b           #2 0.900 · #1 0.040\n" in result.stdout
    assert "\n  t (target)  #1 0.700 · #0 0.100\n" in result.stdout
    assert f"  {a}  #0  wrong" in result.stdout
    bad = run_script("challenge.py", "--dataset", path, "--show", "20", check=False)
    assert bad.returncode == 1 and bad.stderr == f"error: {path}: --show 20: prefixes are numbered 0 to 19\n"


def test_predictions_csv_has_decoded_tokens(tmp_path):
    out = tmp_path / "p.csv"
    run_script("challenge.py", "--dataset", WIKIPEDIA, "--strategy", "largest", "--strategy", "random",
               "--predictions", out)
    with out.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["dataset", "strategy", "index", "sentence", "guess", "guess_token", "target_top1",
                                 "target_token", "correct"]
    tokenizer = suite_tokenizer()
    assert len(rows) == 220 and any("\n" in row["guess_token"] or row["guess_token"].startswith(" ") for row in rows)
    for row in rows:
        assert row["guess_token"] == tokenizer.decode([int(row["guess"])], skip_special_tokens=False)
        assert row["target_token"] == tokenizer.decode([int(row["target_top1"])], skip_special_tokens=False)


# ---- --predict-only

RECORDER = '''
def inputs_only(sentences, model_names, target_model_name, probs):
    assert target_model_name == "hidden" and probs.shape[1] == len(model_names) == 6, (target_model_name, probs.shape)
    return probs[:, -1].view("uint16").argmax(axis=1)
'''


@pytest.fixture
def blind_files(tmp_path):
    """A public file (the input models of wikipedia.pkl's first 60 prefixes, sidecar public: true) and
    a training file with the target (its other 50 prefixes)."""
    dataset = load_dataset(WIKIPEDIA)
    public = tmp_path / "public.pkl"
    save_dataset(public, dataset.model_names[:-1], dataset.sentences[:60], dataset.probs[:60, :-1],
                 {"public": True, "target_model": "hidden"})
    train = tmp_path / "train.pkl"
    save_dataset(train, dataset.model_names, dataset.sentences[60:], dataset.probs[60:])
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    return public, train, f"{recorder}:inputs_only", dataset


def test_predict_only_writes_guesses_from_a_public_file(tmp_path, blind_files):
    public, train, recorder, dataset = blind_files
    out = tmp_path / "p.csv"
    result = run_script("challenge.py", "--dataset", public, "--predict-only", "--predictions", out,
                        "--strategy", recorder, "--strategy", "loglinear", "--train", train)
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
    result = run_script("challenge.py", "--dataset", public, "--predict-only", "--predictions", out,
                        "--strategy", recorder, "--strategy", "loglinear", check=False)
    row = next(line for line in result.stdout.splitlines() if line.startswith("  loglinear "))
    assert result.returncode == 1 and row.split(None, 1)[1].startswith("error: a learned strategy needs --train")
    assert {row["strategy"] for row in csv.DictReader(out.open())} == {recorder}


def test_a_public_file_is_refused_for_scoring_and_checked_against_train(tmp_path, blind_files):
    public, train, _, dataset = blind_files
    result = run_script("challenge.py", "--dataset", public, "--strategy", "largest", check=False)
    assert result.returncode == 1 and result.stderr.startswith(f"error: {public}: a blind test's public file")
    other = tmp_path / "other.pkl"
    save_dataset(other, ["x", *dataset.model_names[1:]], dataset.sentences[60:], dataset.probs[60:])
    result = run_script("challenge.py", "--dataset", public, "--predict-only", "--predictions", tmp_path / "p.csv",
                        "--strategy", "loglinear", "--train", other, check=False)
    assert result.returncode == 1 and f"error: {other}: its models (x, " in result.stderr
    overlapping = tmp_path / "overlap.pkl"
    save_dataset(overlapping, dataset.model_names, dataset.sentences[50:], dataset.probs[50:])
    result = run_script("challenge.py", "--dataset", public, "--predict-only", "--predictions", tmp_path / "p.csv",
                        "--strategy", "loglinear", "--train", overlapping, check=False)
    assert result.returncode == 1 and "shares 10 prefixes with" in result.stderr
    assert not (tmp_path / "p.csv").exists()
    result = run_script("challenge.py", "--dataset", public, "--predict-only", "--predictions", tmp_path / "p.csv",
                        "--strategy", "loglinear", "--train", public, check=False)
    assert result.returncode == 1 and result.stderr.startswith(f"error: {public}: a blind test's public file has "
                                                               "no target: it cannot be a --train file\n")


def test_predict_only_without_a_sidecar_says_which_model_it_leaves_out(tmp_path, blind_files):
    """Without its sidecar a public file is not known as one: its last model is taken as the target,
    and a warning says so rather than silently predicting from one model fewer."""
    public = blind_files[0]
    public.with_suffix(".json").unlink()
    result = run_script("challenge.py", "--dataset", public, "--predict-only", "--predictions", tmp_path / "p.csv",
                        "--strategy", "largest")
    name = load_dataset(public).model_names[-1]
    assert result.stderr == (f"warning: {public}: no valid sidecar, so it is not known to be a blind test's public "
                             f"file: its model {name} is taken as the target and left out\n")
    result = run_script("challenge.py", "--dataset", public, "--predict-only", "--predictions", tmp_path / "p.csv",
                        "--strategy", "largest", "--target", name)
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
        result = run_script("challenge.py", "--dataset", path, "--predict-only", "--predictions", out,
                            "--strategy", "largest", "--strategy", "average", "--json", tmp_path / f"{name}.json")
        assert "target_top1" not in out.read_text().splitlines()[0] and "emergent" not in result.stdout
        outputs.append(out.read_text().replace(str(path), "X"))
    assert outputs[0] == outputs[1]


def test_predict_only_needs_predictions():
    result = run_script("challenge.py", "--dataset", WIKIPEDIA, "--predict-only", check=False)
    assert result.returncode == 2 and "--predict-only needs --predictions" in result.stderr


# ---- exit codes: 0 ok, 1 input / data / strategy error, 2 command line

@pytest.mark.parametrize("case, code", [
    ("ok", 0), ("unknown_strategy", 1), ("bad_spec", 1), ("no_file", 1), ("import_fails", 1), ("no_function", 1),
    ("strategy_raises", 1), ("bad_dataset", 1), ("output_is_a_folder", 1), ("unknown_flag", 2), ("bad_number", 2),
])
def test_exit_codes(tmp_path, case, code):
    (tmp_path / "broken.py").write_text("import no_such_module\n")
    (tmp_path / "fine.py").write_text("def boom(s, m, t, p):\n    raise RuntimeError('boom')\n")
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    args = {"ok": ["--strategy", "largest"], "unknown_strategy": ["--strategy", "nope"],
            "bad_spec": ["--strategy", f"{tmp_path / 'fine.py'}:"], "no_file": ["--strategy", "missing.py:f"],
            "import_fails": ["--strategy", f"{tmp_path / 'broken.py'}:f"],
            "no_function": ["--strategy", f"{tmp_path / 'fine.py'}:other"],
            "strategy_raises": ["--strategy", f"{tmp_path / 'fine.py'}:boom"],
            "bad_dataset": ["--dataset", tmp_path / "bad.pkl"], "output_is_a_folder": ["--json", tmp_path],
            "unknown_flag": ["--no-such-flag"], "bad_number": ["--folds", "x"]}[case]
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
