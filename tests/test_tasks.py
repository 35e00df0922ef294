"""Tasks with answers: the answer pass of preprocessing (teacher-forced log-likelihood, greedy and
first-token accuracy, choices), its record in the sidecar, and task accuracy against scale."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import run_script
from harness.dataset import AnswerScores, load_dataset, sidecar_answer_scores
from harness.inference import answer_logprobs, answer_scores, fit_answers


def direct_scores(model, prefix: list[int], answer: list[int], choice_ids: list[int], vocab_size: int) -> tuple:
    """One sequence, no padding: the log-probabilities the batched pass must reproduce."""
    with torch.no_grad():
        logprobs = model(torch.tensor([prefix + answer])).logits[0, :, :vocab_size].float().log_softmax(-1)
    steps = logprobs[len(prefix) - 1:len(prefix) + len(answer) - 1]
    target = torch.tensor(answer)
    return (float(steps[torch.arange(len(answer)), target].sum()), bool((steps.argmax(-1) == target).all()),
            bool(steps[0].argmax() == answer[0]), steps[0, choice_ids].numpy())


@pytest.fixture(scope="module")
def model(suite):
    return AutoModelForCausalLM.from_pretrained(suite[0], dtype=torch.float32).eval()


def greedy_continuation(model, prefix: list[int], length: int) -> list[int]:
    ids = list(prefix)
    with torch.no_grad():
        for _ in range(length):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prefix):]


def test_the_batched_answer_pass_matches_each_sequence_alone(model, tokenizer):
    prefixes = [[5, 17, 230, 41, 9], [300], [12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23], [77, 78]]
    answers = [[100, 101, 102], [7], [250, 251], greedy_continuation(model, [77, 78], 3)]
    choices = [100, 7]
    loglik, greedy, first_top1, choice_logprobs = answer_logprobs(model, prefixes, answers, len(tokenizer), choices)
    for i, (prefix, answer) in enumerate(zip(prefixes, answers)):
        expected = direct_scores(model, prefix, answer, choices, len(tokenizer))
        assert loglik[i] == pytest.approx(expected[0], abs=1e-4)
        assert (greedy[i], first_top1[i]) == expected[1:3]
        np.testing.assert_allclose(choice_logprobs[i], expected[3], atol=1e-4)
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


def test_prefixes_are_cut_from_the_left_to_fit_the_context_with_their_answer():
    assert fit_answers([[1, 2, 3, 4, 5], [1, 2]], [[9, 9], [9]], context=4) == [[4, 5], [1, 2]]


def rte_file(path, count: int = 8):
    rows = ["index\tsentence1\tsentence2\tlabel"]
    rows += [f"{i}\tThe cat {i} sat on the mat.\tA cat sat.\t{'' if i % 3 else 'not_'}entailment" for i in range(count)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_preprocess_records_each_models_answer_scores_and_a_resumed_run_reads_them_back(tmp_path, suite, tokenizer):
    out, cache = tmp_path / "rte.pkl", tmp_path / "cache"
    args = ["--models", *suite, "--dataset", "glue-rte", "--dataset-path", rte_file(tmp_path / "rte.tsv"),
            "--out", out, "--device", "cpu", "--dtype", "float32", "--no-progress", "--cache-dir", cache]
    run_script("preprocess_train.py", *args)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["prefixes"]["choices"] == [" True", " False"]
    dataset = load_dataset(out)
    scores = sidecar_answer_scores(dataset, meta)
    assert scores.loglik.shape == scores.greedy.shape == (3, len(dataset.sentences))
    assert scores.choice_logprobs.shape == (3, len(dataset.sentences), 2)
    choice_ids = [tokenizer(c)["input_ids"][0] for c in scores.choices]
    for j, directory in enumerate(suite):  # each model's scores, computed here one sequence at a time
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
        for i in (0, 5):
            prefix = tokenizer(dataset.sentences[i])["input_ids"]
            answer = list(json.loads(out.with_suffix(".json").read_text())["answers"][i]["ids"])
            loglik, greedy, first_top1, choices = direct_scores(model, prefix, answer, choice_ids, len(tokenizer))
            assert scores.loglik[j, i] == pytest.approx(loglik, abs=1e-4)
            assert (scores.greedy[j, i], scores.first_top1[j, i]) == (greedy, first_top1)
            np.testing.assert_allclose(scores.choice_logprobs[j, i], choices, atol=1e-4)
            # The stored next-token row is the same position's distribution as the answer pass's.
            np.testing.assert_allclose(dataset.probs[i, j, choice_ids].astype(np.float64), np.exp(choices),
                                       rtol=1e-3, atol=2.0 ** -24)  # float16: subnormal below 2^-14
    assert (scores.correct == (scores.choice_logprobs.argmax(2) == scores.gold_choice)).all()
    drawn = [int(sentence.split()[2]) for sentence in dataset.sentences]  # "The cat {i} sat ...", in drawn order
    assert scores.gold_choice.tolist() == [1 if i % 3 == 0 else 0 for i in drawn]

    again = run_script("preprocess_train.py", *args)
    assert again.stdout.count("from cache") == 3
    assert json.loads(out.with_suffix(".json").read_text())["answers"] == meta["answers"]


def test_task_correctness_is_the_likeliest_choice_or_the_greedy_answer():
    greedy = np.array([[True, False, False], [True, True, False]])
    plain = AnswerScores(np.zeros(3, dtype=int), np.zeros((2, 3)), greedy, greedy, None, None, None)
    assert plain.correct.tolist() == greedy.tolist()
    choice_logprobs = np.log(np.array([[[0.6, 0.4], [0.3, 0.7], [0.5, 0.1]],
                                       [[0.2, 0.3], [0.9, 0.05], [0.01, 0.02]]]))
    choice = AnswerScores(np.zeros(3, dtype=int), np.zeros((2, 3)), greedy, greedy, [" True", " False"],
                          choice_logprobs, np.array([0, 1, 0]))
    assert choice.correct.tolist() == [[True, True, True], [False, False, False]]
