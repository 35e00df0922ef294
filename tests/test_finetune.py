"""The study's runs on tiny GPT-NeoX models (offline, CPU): pretraining loss, finetuning on the
answer only, LoRA, and predict_emergence.py end to end: resuming, refitting without torch, bad input,
and two processes under accelerate."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, run_script

from harness.forecast.finetune import (
    Encoded,
    _training_batch,
    answer_loss,
    finetune,
    pretraining_loss,
    task_outcomes,
    with_lora,
)
from harness.forecast.study import Protocol, arithmetic_task
from harness.models.inference import load_model, shared_tokenizer
from harness.models.suites import ModelSpec

pytestmark = pytest.mark.torch  # CI's numpy-1 run has no torch

SMALL_STUDY = [
    "--task",
    "arithmetic",
    "--digits",
    "1",
    "--data-sizes",
    "0",
    "8",
    "--learning-rates",
    "1e-3",
    "--seeds",
    "0",
    "--resamples",
    "5",
    "--device",
    "cpu",
    "--no-progress",
]


def test_pretraining_loss_is_the_mean_next_token_loss(suite):
    model = load_model(ModelSpec(str(suite[0])), "cpu", torch.float32)
    texts = [[5, 17, 300, 42], [7, 8]]
    by_hand = []
    for ids in texts:  # one text at a time, no padding: every token after the first
        logits = model(torch.tensor([ids])).logits[0, :-1]
        by_hand.extend(torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none").tolist())
    assert pretraining_loss(model, texts) == pytest.approx(np.mean(by_hand), rel=1e-5)


def test_the_finetuning_loss_is_on_the_answer_only(suite):
    input_ids, mask, positions, targets = _training_batch([([5, 6, 7], [8, 9]), ([3], [4])], torch.device("cpu"), 64)
    assert input_ids.tolist() == [[5, 6, 7, 8, 9], [0, 0, 0, 3, 4]]  # left-padded: the answers end together
    assert mask.tolist() == [[1, 1, 1, 1, 1], [0, 0, 0, 1, 1]]
    assert positions.tolist() == [[0, 1, 2, 3, 4], [0, 0, 0, 0, 1]]  # the pads take no positions
    assert targets.tolist() == [[8, 9], [-100, 4]]  # the answers, right-aligned
    # The same loss as each example alone, unpadded: the mean over the 3 answer tokens.
    model = load_model(ModelSpec(str(suite[0])), "cpu", torch.float32)
    by_hand = []
    for prompt, answer in ([5, 6, 7], [8, 9]), ([3], [4]):
        logits = model(torch.tensor([prompt + answer])).logits[0, len(prompt) - 1 : -1]
        by_hand.extend(torch.nn.functional.cross_entropy(logits, torch.tensor(answer), reduction="none").tolist())
    assert float(answer_loss(model, [([5, 6, 7], [8, 9]), ([3], [4])], 64)) == pytest.approx(np.mean(by_hand), rel=1e-5)


def test_finetuning_learns_its_examples_and_lora_trains_only_its_adapters(suite):
    spec = ModelSpec(str(suite[1]))
    tokenizer = shared_tokenizer([spec])
    task = arithmetic_task(1, test_size=40, validation_size=12, seed=0)
    pool = Encoded.of(tokenizer, task.pool[:16], None)
    examples = list(zip(pool.prompts, pool.answers))
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    model = load_model(spec, "cpu", torch.float32)
    before = task_outcomes(model, pool, vocab_size, None).mean()
    finetune(model, examples, 3e-3, Protocol(epochs=30, batch_size=16), seed=0)
    assert task_outcomes(model, pool, vocab_size, None).mean() > max(before, 0.5)  # it memorised its examples

    base = load_model(spec, "cpu", torch.float32)
    original = {k: v.clone() for k, v in base.state_dict().items()}
    adapted = with_lora(base, rank=2)
    finetune(adapted, examples, 3e-3, Protocol(epochs=2, batch_size=16), seed=0)
    trained = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert trained and all("lora" in n for n in trained)
    merged = adapted.merge_and_unload()
    assert any(not torch.equal(merged.state_dict()[k], v) for k, v in original.items())


def without_torch(*args: str) -> subprocess.CompletedProcess:
    """predict_emergence.py with torch unimportable: what --from-results must need."""
    code = (
        "import sys, runpy; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
        f"sys.argv = ['predict_emergence.py', *{list(args)!r}]; runpy.run_path('predict_emergence.py', run_name='__main__')"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_study_end_to_end_resumes_and_refits_without_torch(tmp_path, suite, prefix_file):
    results, forecast_json = tmp_path / "r.jsonl", tmp_path / "f.json"
    # Two tasks: their fits run in processes forked after the runs (torch loaded).
    first = run_script(
        "predict_emergence.py",
        "--models",
        *suite,
        *SMALL_STUDY,
        "--digits",
        "1",
        "2",
        "--test-size",
        "40",
        "--results",
        results,
        "--json",
        forecast_json,
        "--loss-text",
        prefix_file,
    )
    lines = [line for line in results.read_text().splitlines() if '"addition-1digit"' in line]
    assert len(lines) == 3 * 2  # three models, D = 0 and D = 8
    assert len(results.read_text().splitlines()) == 2 * 3 * 2
    record = json.loads(lines[1])
    assert record["task"] == "addition-1digit" and record["n"] == 40 and len(record["outcomes"]) == 40
    assert record["validation_n"] == 12 and record["steps"] == 20  # 8 examples, 2 epochs, at least 20 steps
    assert record["loss_text"] == str(prefix_file)
    assert "task addition-1digit" in first.stdout and "task addition-2digit" in first.stdout
    document = json.loads(forecast_json.read_text())
    assert [t["task"] for t in document["tasks"]] == ["addition-1digit", "addition-2digit"]
    assert set(document["tasks"][0]["emergence_point"]) == {"0", "8"}

    everything = results.read_text().splitlines()
    run_script(
        "predict_emergence.py",
        "--models",
        *suite,
        *SMALL_STUDY,
        "--digits",
        "1",
        "2",
        "--test-size",
        "40",
        "--results",
        results,
        "--loss-text",
        prefix_file,
    )
    assert results.read_text().splitlines() == everything  # every run was finished: nothing reran

    refit = without_torch("--from-results", str(results), "--resamples", "5", "--json", str(tmp_path / "g.json"))
    assert refit.returncode == 0, refit.stderr
    assert json.loads((tmp_path / "g.json").read_text())["tasks"][0]["params"] == document["tasks"][0]["params"]

    results.write_text("\n".join(everything) + '\n{"model": "x", "pretrain')  # killed while writing a line
    torn = run_script("predict_emergence.py", "--models", *suite, *SMALL_STUDY, "--results", results, check=False)
    assert torn.returncode == 1 and torn.stderr.strip().count("\n") == 0
    assert f"{results}:13: the last line is torn" in torn.stderr
    assert results.read_text().splitlines()[:12] == everything  # nothing lost


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "sudoku"], "unknown task 'sudoku'"),
        (
            ["--digits", "1", "--data-sizes", "0", "49"],
            "--data-sizes 49: larger than task addition-1digit's finetuning pool of 48",
        ),
        (["--models", "no/such-dir", "a", "b"], "no/such-dir: no such directory"),
    ],
)
def test_bad_study_input_is_one_line(tmp_path, suite, args, message):
    models = [] if "--models" in args else ["--models", *map(str, suite)]
    result = run_script("predict_emergence.py", *models, *args, "--results", tmp_path / "r.jsonl", check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert not (tmp_path / "r.jsonl").exists() or not (tmp_path / "r.jsonl").read_text()


def test_bad_fit_up_to_is_one_line(tmp_path):
    results = tmp_path / "r.jsonl"
    results.write_text(
        "".join(
            json.dumps({"model": m, "pretraining_loss": 5 - i / 10, "data_size": d, "correct": i, "n": 10}) + "\n"
            for i, m in enumerate("abcd")
            for d in (0, 4)
        )
    )
    for name, message in (
        ("z", "--fit-up-to z: not a model of the study (a, b, c, d)"),
        ("b", "--fit-up-to b: leaves 2 models to fit the law on; it needs at least 3"),
    ):
        result = without_torch("--from-results", str(results), "--fit-up-to", name)
        assert result.returncode == 1 and result.stderr.strip() == f"error: {message}"


def test_two_processes_share_the_runs(tmp_path, suite, prefix_file):
    results = tmp_path / "two.jsonl"
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
        str(29700 + os.getpid() % 1000),
        str(ROOT / "predict_emergence.py"),
        "--models",
        *map(str, suite),
        *SMALL_STUDY,
        "--results",
        str(results),
        "--loss-text",
        str(prefix_file),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    keys = [(r["model"], r["data_size"]) for r in map(json.loads, results.read_text().splitlines())]
    assert sorted(keys) == sorted((str(m), d) for m in suite for d in (0, 8))  # each run once, by one process
    assert result.stdout.count("task addition-1digit") == 1  # the main process reports
