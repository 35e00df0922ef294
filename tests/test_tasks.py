"""Tasks with answers: the answer pass of preprocessing (teacher-forced log-likelihood, greedy and
first-token accuracy, choices), its record in the sidecar, and task accuracy against scale."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ROOT, run_script
from transformers import AutoModelForCausalLM

from harness.data.dataset import AnswerScores, load_dataset, sidecar_answer_scores
from harness.models.inference import answer_logprobs, answer_scores, fit_answers
from harness.scoring.tasks import steepest_rise, strategy_task_accuracy, task_curve, unpaired_test

pytestmark = pytest.mark.torch  # CI's numpy-1 run has no torch


def direct_scores(model, prefix: list[int], answer: list[int], vocab_size: int) -> tuple:
    """One sequence, no padding: the log-probabilities the batched pass must reproduce."""
    with torch.no_grad():
        logprobs = model(torch.tensor([prefix + answer])).logits[0, :, :vocab_size].float().log_softmax(-1)
    steps = logprobs[len(prefix) - 1 : len(prefix) + len(answer) - 1]
    target = torch.tensor(answer)
    return (
        float(steps[torch.arange(len(answer)), target].sum()),
        bool((steps.argmax(-1) == target).all()),
        bool(steps[0].argmax() == answer[0]),
    )


@pytest.fixture(scope="module")
def model(suite):
    return AutoModelForCausalLM.from_pretrained(suite[0], dtype=torch.float32).eval()


def greedy_continuation(model, prefix: list[int], length: int) -> list[int]:
    ids = list(prefix)
    with torch.no_grad():
        for _ in range(length):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prefix) :]


def test_the_batched_answer_pass_matches_each_sequence_alone(model, tokenizer):
    prefixes = [[5, 17, 230, 41, 9], [300], [12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23], [77, 78]]
    answers = [[100, 101, 102], [7], [250, 251], greedy_continuation(model, [77, 78], 3)]
    loglik, greedy, first_top1 = answer_logprobs(model, prefixes, answers, len(tokenizer))
    for i, (prefix, answer) in enumerate(zip(prefixes, answers)):
        expected = direct_scores(model, prefix, answer, len(tokenizer))
        assert loglik[i] == pytest.approx(expected[0], abs=1e-4)
        assert (greedy[i], first_top1[i]) == expected[1:]
    assert greedy[3] and first_top1[3]  # the model's own greedy continuation
    assert loglik.max() <= 0


def test_answer_scores_batch_by_tokens_and_cover_every_row(model, tokenizer):
    prefixes = [[5 + i] * (1 + i) for i in range(9)]
    answers = [[40 + i] * (1 + i % 3) for i in range(9)]
    whole = answer_logprobs(model, prefixes, answers, len(tokenizer))
    scores = answer_scores(model, prefixes, answers, len(tokenizer), max_tokens=8, progress=False)  # many small batches
    np.testing.assert_allclose(scores["loglik"], whole[0], atol=1e-4)
    assert (scores["greedy"] == whole[1]).all() and (scores["first_top1"] == whole[2]).all()
    assert scores["rows"].tolist() == list(range(9))
    half = answer_scores(model, prefixes, answers, len(tokenizer), max_tokens=8, rank=1, world_size=2, progress=False)
    assert 0 < len(half["rows"]) < 9 and np.isnan(np.delete(half["loglik"], half["rows"])).all()


def test_multi_token_choices_are_each_scored_as_a_whole_continuation(model, tokenizer):
    """A choice task whose choices take several tokens (the bundled suite writes " True" as " T",
    "rue"): each choice's log-likelihood is its whole continuation's, and the answer's own scores
    are its choice's."""
    prefixes = [[5, 17, 230, 41, 9], [300], [12, 13, 14]]
    choice_ids = [[100, 101], [7]]
    answers = [choice_ids[0], choice_ids[1], choice_ids[0]]
    scores = answer_scores(
        model, prefixes, answers, len(tokenizer), choice_ids=choice_ids, max_tokens=8, progress=False
    )
    for i, prefix in enumerate(prefixes):
        choices = [direct_scores(model, prefix, ids, len(tokenizer)) for ids in choice_ids]
        np.testing.assert_allclose(scores["choice_logprobs"][i], [c[0] for c in choices], atol=1e-4)
        own = choices[choice_ids.index(answers[i])]
        assert scores["loglik"][i] == pytest.approx(own[0], abs=1e-4)
        assert (scores["greedy"][i], scores["first_top1"][i]) == own[1:]
    assert scores["rows"].tolist() == [0, 1, 2]


def test_prefixes_are_cut_from_the_left_to_fit_the_context_with_their_answer():
    assert fit_answers([[1, 2, 3, 4, 5], [1, 2]], [[9, 9], [9]], context=4) == [[4, 5], [1, 2]]


def rte_file(path, count: int = 8):
    rows = ["index\tsentence1\tsentence2\tlabel"]
    rows += [f"{i}\tThe cat {i} sat on the mat.\tA cat sat.\t{'' if i % 3 else 'not_'}entailment" for i in range(count)]
    path.write_text("\n".join(rows) + "\n")
    return path


def rte_args(directory, suite) -> list:
    return [
        "--models",
        *suite,
        "--dataset",
        "glue-rte",
        "--dataset-path",
        rte_file(directory / "rte.tsv"),
        "--out",
        directory / "rte.pkl",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--no-progress",
        "--cache-dir",
        directory / "cache",
    ]


@pytest.fixture(scope="module")
def rte_dataset(tmp_path_factory, suite):
    """A zero-shot glue-rte set from the tiny suite, through preprocess_train.py's CLI (cache kept)."""
    directory = tmp_path_factory.mktemp("rte")
    run_script("preprocess_train.py", *rte_args(directory, suite))
    return directory / "rte.pkl"


def test_preprocess_records_each_models_answer_scores_and_a_resumed_run_reads_them_back(rte_dataset, suite, tokenizer):
    out = rte_dataset
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["prefixes"]["choices"] == [" True", " False"]
    dataset = load_dataset(out)
    scores = sidecar_answer_scores(dataset, meta)
    assert scores.loglik.shape == scores.greedy.shape == (3, len(dataset.sentences))
    assert scores.choice_logprobs.shape == (3, len(dataset.sentences), 2)
    choice_ids = [tokenizer(c)["input_ids"] for c in scores.choices]
    assert all(len(ids) == 1 for ids in choice_ids)  # one token each here; test_multi_token_choices: several
    for j, directory in enumerate(suite):  # each model's scores, computed here one sequence at a time
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
        for i in (0, 5):
            prefix = tokenizer(dataset.sentences[i])["input_ids"]
            answer = list(json.loads(out.with_suffix(".json").read_text())["answers"][i]["ids"])
            loglik, greedy, first_top1 = direct_scores(model, prefix, answer, len(tokenizer))
            assert scores.loglik[j, i] == pytest.approx(loglik, abs=1e-4)
            assert (scores.greedy[j, i], scores.first_top1[j, i]) == (greedy, first_top1)
            choices = [direct_scores(model, prefix, ids, len(tokenizer))[0] for ids in choice_ids]
            np.testing.assert_allclose(scores.choice_logprobs[j, i], choices, atol=1e-4)
            # The stored next-token row is the same position's distribution as the answer pass's.
            np.testing.assert_allclose(
                dataset.probs[i, j, [ids[0] for ids in choice_ids]].astype(np.float64),
                np.exp(choices),
                rtol=1e-3,
                atol=2.0**-24,
            )  # float16: subnormal below 2^-14
    assert (scores.correct == (scores.choice_logprobs.argmax(2) == scores.gold_choice)).all()
    drawn = [int(sentence.split()[2]) for sentence in dataset.sentences]  # "The cat {i} sat ...", in drawn order
    assert scores.gold_choice.tolist() == [1 if i % 3 == 0 else 0 for i in drawn]

    again = run_script("preprocess_train.py", *rte_args(out.parent, suite))
    assert again.stdout.count("from cache") == 3
    assert json.loads(out.with_suffix(".json").read_text())["answers"] == meta["answers"]


def test_task_correctness_is_the_likeliest_choice_or_the_greedy_answer():
    greedy = np.array([[True, False, False], [True, True, False]])
    plain = AnswerScores(np.zeros(3, dtype=int), np.zeros((2, 3)), greedy, greedy, None, None, None)
    assert plain.correct.tolist() == greedy.tolist()
    choice_logprobs = np.log(np.array([[[0.6, 0.4], [0.3, 0.7], [0.5, 0.1]], [[0.2, 0.3], [0.9, 0.05], [0.01, 0.02]]]))
    choice = AnswerScores(
        np.zeros(3, dtype=int),
        np.zeros((2, 3)),
        greedy,
        greedy,
        [" True", " False"],
        choice_logprobs,
        np.array([0, 1, 0]),
    )
    assert choice.correct.tolist() == [[True, True, True], [False, False, False]]


def test_steepest_rise_orders_the_models_by_size():
    assert steepest_rise([0.1, 0.5, 0.2, 0.9], order=[0, 2, 1, 3]) == {
        "rise": pytest.approx(0.8),
        "steepest_step": pytest.approx(0.4),
        "steepest_between": [1, 3],
    }
    assert steepest_rise([0.3], order=[0])["steepest_between"] is None


def test_unpaired_test_by_hand():
    # Pooled [0, 1, 1, 1] split 2 + 2: the 0 lands in either half, and |gap| is 0.5 either way: p = 1.
    test = unpaired_test(np.array([0, 1]), np.array([1, 1]), permutations=200)
    assert test["difference"] == 0.5 and test["p_value"] == 1.0
    # All misses against all hits: no relabelling is as extreme, so p is its floor 1 / (1 + B).
    test = unpaired_test(np.zeros(40), np.ones(60), permutations=999)
    assert test["difference"] == 1.0 and test["p_value"] == 1 / 1000 and test["ci95"] == [1.0, 1.0]
    assert unpaired_test(np.ones(5), np.ones(7))["p_value"] == 1.0


def test_task_curve_and_strategy_task_accuracy_by_hand():
    greedy = np.array([[True, False, False, False], [True, True, True, False]])
    loglik = np.array([[-1.0, -3.0, -5.0, -7.0], [-0.5, -0.5, -1.0, -2.0]])
    scores = AnswerScores(np.array([11, 12, 13, 14]), loglik, greedy, greedy, None, None, None)
    curve = task_curve(scores, ["small", "target"], n=4)
    assert curve.rule == "greedy" and curve.chance is None
    assert curve.accuracy == [0.25, 0.75] and curve.loglik == [-4.0, -1.0]
    assert curve.loglik_ci95[0][0] <= -4.0 <= curve.loglik_ci95[0][1]
    assert task_curve(scores, ["small", "target"], n=2).accuracy == [0.5, 1.0]  # the first n prefixes
    assert strategy_task_accuracy(np.array([11, 0, 13, 0]), scores)["accuracy"] == 0.5


def test_challenge_scores_task_accuracy_and_compares_datasets(rte_dataset, built_dataset, tmp_path):
    # The plain-text set is the baseline wherever it is listed.
    result = run_script(
        "challenge.py",
        "--dataset",
        rte_dataset,
        "--dataset",
        built_dataset,
        "--strategy",
        "average",
        "--json",
        tmp_path / "out.json",
        "--report",
        tmp_path / "report",
        "--no-progress",
    )
    out = json.loads((tmp_path / "out.json").read_text())
    rte, plain = out["datasets"]
    assert plain["task"] is None and rte["task"]["rule"] == "choice" and rte["task"]["chance"] == 0.5
    scores = sidecar_answer_scores(load_dataset(rte_dataset), json.loads(rte_dataset.with_suffix(".json").read_text()))
    assert [m["accuracy"] for m in rte["task"]["models"]] == pytest.approx(scores.correct.mean(axis=1).tolist())
    guesses = np.stack([load_dataset(rte_dataset).probs[:, j].astype(np.float32) for j in (0, 1)]).mean(0).argmax(1)
    assert rte["task"]["strategies"]["average"]["accuracy"] == pytest.approx((guesses == scores.first_ids).mean())
    second, first = out["harder_here"]
    assert first["baseline"] and "vs_baseline" not in first and set(second["vs_baseline"]) == {"top1", "kl"}
    assert second["vs_baseline"]["top1"]["difference"] == pytest.approx(
        second["reference_top1"] - first["reference_top1"]
    )
    assert "task accuracy (the likelier choice; chance 50%)" in result.stdout
    assert "is prediction harder here?" in result.stdout
    page = (tmp_path / "report" / "index.md").read_text()
    assert "![Task accuracy against scale](<tasks.png>)" in page and (tmp_path / "report" / "tasks.png").stat().st_size
    assert "![Is prediction harder here?](<harder.png>)" in page and (tmp_path / "report" / "harder.png").stat().st_size


def test_the_noise_ceiling_is_another_seed_scored_against_the_target_never_an_input(
    tmp_path, suite, tokenizer, prefix_file
):
    from conftest import WIDTHS, make_model

    from harness.scoring.metrics import distribution_metrics, target_rows
    from harness.scoring.top1 import top1

    other_seed = make_model(tmp_path / "neox-64-seed1", WIDTHS[-1], tokenizer, seed=1)
    out, both = tmp_path / "ceiling.pkl", tmp_path / "both.pkl"
    common = ["--dataset", prefix_file, "--device", "cpu", "--dtype", "float32", "--no-progress"]
    run_script("preprocess_train.py", "--models", *suite, "--ceiling-model", other_seed, "--out", out, *common)
    run_script("preprocess_train.py", "--models", other_seed, suite[-1], "--out", both, *common)
    meta = json.loads(out.with_suffix(".json").read_text())
    dataset, pair = load_dataset(out), load_dataset(both)
    assert dataset.model_names == [str(m) for m in suite]  # not an input: the pickle holds the suite alone
    ceiling = meta["noise_ceiling"]
    assert ceiling["model"]["name"] == str(other_seed)
    assert ceiling["top1"] == top1(pair.probs[:, 0]).tolist()
    target = target_rows(dataset.probs[:, -1], top1(dataset.probs[:, -1]))
    np.testing.assert_allclose(ceiling["kl"], distribution_metrics(pair.probs[:, 0], target)["kl"], atol=1e-6)
    assert not any(p.name.endswith(".npy") for p in tmp_path.rglob("*"))  # the scratch file is gone

    run_script(
        "challenge.py",
        "--dataset",
        out,
        "--strategy",
        "average",
        "--json",
        tmp_path / "r.json",
        "--no-progress",
        "--report",
        tmp_path / "report",
    )
    assert "the noise ceiling, another seed of the target" in (tmp_path / "report" / "index.md").read_text()
    scored = json.loads((tmp_path / "r.json").read_text())["datasets"][0]["noise_ceiling"]
    agree = np.array(ceiling["top1"]) == top1(dataset.probs[:, -1])
    assert scored["top1"] == pytest.approx(agree.mean()) and scored["kl"]["mean"] == pytest.approx(
        np.mean(ceiling["kl"])
    )
    # Another target: the ceiling is not of it.
    run_script(
        "challenge.py", "--dataset", out, "--target", str(suite[1]), "--json", tmp_path / "t.json", "--no-progress"
    )
    assert json.loads((tmp_path / "t.json").read_text())["datasets"][0]["noise_ceiling"] is None


def test_the_bundled_suites_other_seed_is_the_default_ceiling(tmp_path, monkeypatch):
    from harness.models import suites

    (tmp_path / "suite" / "seeds" / "suite-1.5m-seed1235").mkdir(parents=True)
    (tmp_path / "suite" / "seeds" / "suite-1.5m-seed1235" / "config.json").write_text("{}")
    monkeypatch.setattr(suites, "SUITE_MODELS", tmp_path / "suite" / "models")
    assert suites.bundled_ceiling(["a", "b"], ["suite-0.8m", "suite-1.5m"]) == (
        str(tmp_path / "suite" / "seeds" / "suite-1.5m-seed1235"),
        "suite-1.5m-seed1235",
    )
    assert suites.bundled_ceiling(["a", "b"], ["suite-1.5m", "suite-0.8m"]) == (None, None)
    assert suites.bundled_ceiling(["a", "my/model"], [None, None]) == (None, None)


def test_arithmetic_on_the_digit_tokenizer_asks_for_the_first_digit(tmp_path):
    """The arithmetic builder on the bundled suite (one token per digit): each prefix ends after
    "Answer: ", its answer is the bare sum, the sidecar records the move, and the answer pass
    scores the same ids as lm-evaluation-harness's text would have."""
    from tokenizers import Tokenizer

    out = tmp_path / "sums.pkl"
    result = run_script(
        "preprocess_train.py",
        "--models",
        "suite-0.0066m",
        "suite-0.025m",
        "--dataset",
        "arithmetic",
        "--num-prefixes",
        "6",
        "--out",
        out,
        "--device",
        "cpu",
        "--no-progress",
    )
    assert "6 of 6 answers begin with a space that this tokenizer writes as a token of its own" in result.stderr
    dataset, meta = load_dataset(out), json.loads(out.with_suffix(".json").read_text())
    assert all(s.endswith("\nAnswer: ") for s in dataset.sentences) and meta["prefixes"]["answer_space_in_prefix"] == 6
    tokenizer = Tokenizer.from_file(str(ROOT / "suite" / "models" / "suite-0.0066m" / "tokenizer.json"))
    for sentence, answer in zip(dataset.sentences, meta["answers"]):
        assert (
            answer["text"].isdigit() and answer["ids"] == tokenizer.encode(answer["text"], add_special_tokens=False).ids
        )
        original = tokenizer.encode(sentence[:-1] + " " + answer["text"], add_special_tokens=False).ids
        assert tokenizer.encode(sentence, add_special_tokens=False).ids + answer["ids"] == original


def test_two_process_accelerate_run_scores_answers_and_ceiling_as_one_process(tmp_path, suite, tokenizer):
    import os
    import subprocess
    import sys

    from conftest import ROOT, WIDTHS, make_model

    other_seed = make_model(tmp_path / "neox-64-seed2", WIDTHS[-1], tokenizer, seed=2)
    prefixes = tmp_path / "qa.jsonl"
    prefixes.write_text(
        "".join(
            json.dumps({"text": f"Question: What is {a} plus {a + 3}?\nAnswer:", "answer": f" {2 * a + 3}"}) + "\n"
            for a in range(9)
        )
    )
    args = [
        "--models",
        *map(str, suite),
        "--ceiling-model",
        str(other_seed),
        "--dataset",
        str(prefixes),
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--max-tokens",
        "64",
        "--no-progress",
    ]
    run_script("preprocess_train.py", *args, "--out", tmp_path / "single.pkl", env={"OMP_NUM_THREADS": "1"})
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--num_cpu_threads_per_process",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(29600 + os.getpid() % 1000),
        str(ROOT / "preprocess_train.py"),
        *args,
        "--out",
        str(tmp_path / "two.pkl"),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    single, two = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("single", "two"))
    assert two["num_processes"] == 2 and (tmp_path / "two.pkl").read_bytes() == (tmp_path / "single.pkl").read_bytes()
    assert two["answers"] == single["answers"] and not np.isnan([a["loglik"] for a in two["answers"]]).any()
    for key in ("top1", "kl", "alpha"):
        assert two["noise_ceiling"][key] == single["noise_ceiling"][key]


def test_the_baseline_is_plain_wikipedia_text_unless_named():
    from types import SimpleNamespace

    from harness import InputError
    from harness.scoring.tasks import pick_baseline

    def result(path, task=None, reference=True):
        return SimpleNamespace(path=path, task=task, reference=object() if reference else None)

    arithmetic, rte, wiki = result("d/arithmetic.pkl", task=1), result("d/glue-rte-test.pkl"), result("d/wikipedia.pkl")
    assert pick_baseline([arithmetic, rte, wiki]) is wiki
    assert pick_baseline([arithmetic, rte]) is rte
    assert pick_baseline([arithmetic, result("d/copy.pkl", task=1)]) is arithmetic
    assert pick_baseline([arithmetic, rte, wiki], "glue-rte-test") is rte
    assert pick_baseline([result("d/x.pkl", reference=False)]) is None
    with pytest.raises(InputError, match="--baseline nope: not one of the scored datasets"):
        pick_baseline([arithmetic, wiki], "nope")


def test_a_batch_out_of_memory_is_halved_and_every_row_still_scored(model, tokenizer, monkeypatch):
    import harness.models.inference as inference

    prefixes = [[5 + i] * (2 + i) for i in range(6)]
    answers = [[40 + i, 41] for i in range(6)]
    expected = answer_logprobs(model, prefixes, answers, len(tokenizer))
    real, sizes = inference.answer_logprobs, []

    def small_memory(model, token_ids, *args):
        sizes.append(len(token_ids))
        if len(token_ids) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, token_ids, *args)

    monkeypatch.setattr(inference, "answer_logprobs", small_memory)
    scores = answer_scores(model, prefixes, answers, len(tokenizer), max_tokens=1000, progress=False)
    scored = [size for size in sizes if size <= 2]
    assert sizes[:2] == [6, 3] and sum(scored) == 6  # 6 -> 3 + 3 -> (1 + 2) + (1 + 2)
    np.testing.assert_allclose(scores["loglik"], expected[0], atol=1e-4)
