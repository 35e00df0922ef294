"""preprocess_train.py end to end on a tiny local GPT-NeoX suite, and the inference it relies on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import CONTEXT, ROOT, SHARED, make_model, make_tokenizer, run_script
from transformers import AutoModelForCausalLM

from harness import inference
from harness.dataset_io import load_dataset


def reference_probs(model_dir, token_ids: list[list[int]], vocab_size: int) -> np.ndarray:
    """A plain one-prefix-at-a-time forward pass through the full model, float32."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = []
    with torch.no_grad():
        for ids in token_ids:
            logits = model(torch.tensor([ids])).logits[0, -1, :vocab_size]
            rows.append(torch.softmax(logits.float(), dim=-1).numpy())
    return np.stack(rows)


def batched_probs(model_dir, token_ids, vocab_size, batch_size) -> np.ndarray:
    model = inference.load_model(inference.ModelSpec(str(model_dir)), "cpu", torch.float32)
    out = np.empty((len(token_ids), vocab_size), dtype=np.float32)
    inference.next_token_probs(model, token_ids, out, pad_id=1, batch_size=batch_size, progress=False)
    return out


@pytest.mark.parametrize("batch_size", [1, 7, None])
def test_batched_rows_match_one_at_a_time_forward(suite, tokenizer, prefix_file, batch_size):
    prefixes = prefix_file.read_text().splitlines()
    token_ids = inference.tokenize(tokenizer, prefixes)
    assert len({len(ids) for ids in token_ids}) > 3  # lengths differ, so batches really are padded
    reference = reference_probs(suite[-1], token_ids, len(tokenizer))
    batched = batched_probs(suite[-1], token_ids, len(tokenizer), batch_size)
    np.testing.assert_allclose(batched, reference, atol=1e-5, rtol=0)


def test_end_to_end_dataset_and_sidecar(built_dataset, suite, prefix_file, tokenizer):
    dataset = load_dataset(built_dataset)
    prefixes = prefix_file.read_text().splitlines()
    assert dataset.model_names == [str(p) for p in suite]
    assert dataset.sentences == prefixes
    assert dataset.probs.dtype == np.float16 and dataset.probs.shape == (len(prefixes), 3, len(tokenizer))
    # The stored rows are the reference distributions, rounded to float16.
    reference = reference_probs(suite[0], inference.tokenize(tokenizer, prefixes), len(tokenizer))
    np.testing.assert_allclose(dataset.probs[:, 0].astype(np.float32), reference, atol=1e-3, rtol=1e-3)
    assert (dataset.probs[:, 0].argmax(1) == reference.argmax(1)).mean() > 0.9
    meta = json.loads(built_dataset.with_suffix(".json").read_text())
    assert meta["target_model"] == str(suite[-1]) and meta["vocab_size"] == len(tokenizer)
    assert [m["parameters"] for m in meta["models"]] == sorted(m["parameters"] for m in meta["models"])
    assert meta["prefixes"]["dataset"] == str(prefix_file) and meta["versions"]["torch"] == torch.__version__
    assert not built_dataset.with_name(built_dataset.name + ".cache").exists()  # removed on success


def test_batch_size_does_not_change_the_dataset(tmp_path, suite, prefix_file):
    arrays = []
    for batch_size in (1, 7):
        out = tmp_path / f"b{batch_size}.pkl"
        run_script("preprocess_train.py", "--models", *suite, "--dataset", prefix_file, "--out", out,
                   "--device", "cpu", "--batch-size", batch_size, "--no-progress")
        arrays.append(load_dataset(out).probs.astype(np.float32))
    np.testing.assert_allclose(arrays[0], arrays[1], atol=1e-3, rtol=0)  # at most float16 rounding apart


def test_duplicates_kept_once_in_first_seen_order(tmp_path, suite):
    prefixes = tmp_path / "dupes.txt"
    prefixes.write_text("beta gamma\nalpha\nbeta gamma\ndelta\nalpha\n")
    out = tmp_path / "dupes.pkl"
    result = run_script("preprocess_train.py", "--models", *suite[:2], "--dataset", prefixes, "--out", out,
                        "--device", "cpu", "--no-progress")
    assert "2 duplicate prefixes dropped" in result.stderr
    assert load_dataset(out).sentences == ["beta gamma", "alpha", "delta"]


def test_long_prefix_is_left_truncated_with_a_warning(tmp_path, suite, tokenizer):
    long_prefix = " ".join(f"word{i}" for i in range(200))
    prefixes = tmp_path / "long.txt"
    prefixes.write_text(f"short prefix here\n{long_prefix}\n")
    out = tmp_path / "long.pkl"
    result = run_script("preprocess_train.py", "--models", *suite[:2], "--dataset", prefixes, "--out", out,
                        "--device", "cpu", "--dtype", "float32", "--no-progress")
    assert f"longer than {suite[0]}'s context of {CONTEXT} tokens" in result.stderr
    ids = inference.tokenize(tokenizer, [long_prefix])[0]
    assert len(ids) > CONTEXT
    reference = reference_probs(suite[0], [ids[-CONTEXT:]], len(tokenizer))[0]
    np.testing.assert_allclose(load_dataset(out).probs[1, 0].astype(np.float32), reference, atol=1e-3)


def test_tokenizer_mismatch_stops_before_any_model_loads(tmp_path, suite, prefix_file):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    other = Tokenizer(models.BPE())
    other.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    other.train_from_iterator(["a different little corpus"] * 10, trainers.BpeTrainer(vocab_size=300))
    stranger = make_model(tmp_path / "stranger", 32, PreTrainedTokenizerFast(tokenizer_object=other))
    (stranger / "model.safetensors").unlink()  # loading this model would fail: the run must stop before
    result = run_script("preprocess_train.py", "--models", suite[0], stranger, "--dataset", prefix_file,
                        "--out", tmp_path / "x.pkl", "--device", "cpu", check=False)
    assert result.returncode == 1
    assert f"{suite[0]} and {stranger} do not share one tokenizer" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.pkl").exists()


def test_resume_after_crash_gives_byte_identical_pickle(tmp_path, suite, prefix_file):
    models = [shutil.copytree(p, tmp_path / "suite" / p.name) for p in suite]
    common = ["--models", *models, "--dataset", prefix_file, "--device", "cpu", "--no-progress"]
    run_script("preprocess_train.py", *common, "--out", tmp_path / "clean.pkl")

    # Crash at the last model: its weights are missing the first time round.
    weights = models[-1] / "model.safetensors"
    weights.rename(tmp_path / "aside.safetensors")
    out, cache = tmp_path / "resumed.pkl", tmp_path / "cache"
    crashed = run_script("preprocess_train.py", *common, "--out", out, "--cache-dir", cache, check=False)
    assert crashed.returncode != 0 and not out.exists()
    assert len(list(cache.glob("*.npy"))) == 2  # the two finished models are cached

    (tmp_path / "aside.safetensors").rename(weights)
    resumed = run_script("preprocess_train.py", *common, "--out", out, "--cache-dir", cache)
    assert resumed.stdout.count("from cache") == 2
    assert out.read_bytes() == (tmp_path / "clean.pkl").read_bytes()


@pytest.mark.parametrize("content, message", [
    ("first\n\nthird\n", "prefixes.txt:2: empty prefix"),
    ("   \n", "prefixes.txt:1: empty prefix"),
])
def test_empty_prefix_is_an_error(tmp_path, suite, content, message):
    path = tmp_path / "prefixes.txt"
    path.write_text(content)
    result = run_script("preprocess_train.py", "--models", *suite[:2], "--dataset", path, "--device", "cpu",
                        "--out", tmp_path / "x.pkl", check=False)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_bad_dataset_arguments_are_one_line_errors(tmp_path, suite, prefix_file):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    for args, message in [(["--dataset", tmp_path / "missing.txt"], "missing.txt: no such file"),
                          (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
                          (["--dataset", prefix_file, "--meta-json", bad_json], "bad.json: not valid JSON"),
                          (["--dataset", prefix_file, "--meta-json", tmp_path / "no.json"], "no.json: no such file")]:
        result = run_script("preprocess_train.py", "--models", *suite[:2], *args,
                            "--device", "cpu", "--out", tmp_path / "x.pkl", check=False)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
        assert "Loading weights" not in result.stderr  # it fails before any model loads


@pytest.mark.skipif(not (SHARED / "corpus" / "rte-train.tsv").exists(), reason="needs ../shared/data")
def test_glue_rte_from_a_local_tsv_end_to_end(tmp_path, suite):
    out = tmp_path / "glue-rte.pkl"
    run_script("preprocess_train.py", "--models", *suite[:2], "--dataset", "glue-rte", "--dataset-path",
               SHARED / "corpus" / "rte-train.tsv", "--num-prefixes", 12, "--out", out, "--device", "cpu",
               "--no-progress")
    sentences = load_dataset(out).sentences
    assert len(sentences) == 12
    assert all("\nQuestion: " in s and s.endswith(" True or False?\nAnswer:") for s in sentences)
    result = run_script("challenge.py", "--dataset", out)
    assert "12 prefixes, 1 input model, target" in result.stdout


def test_tiny_suite_helper_builds_loadable_models(tmp_path):
    tokenizer = make_tokenizer()
    model_dir = make_model(tmp_path / "m", 32, tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert model.config.vocab_size > len(tokenizer)  # padded past the tokenizer, as Pythia's are


def test_two_process_accelerate_run_equals_single_process(tmp_path, suite, prefix_file):
    out = tmp_path / "two.pkl"
    # On a machine without GPUs, --multi_gpu starts torch.distributed CPU (gloo) processes.
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(29500 + os.getpid() % 1000), str(ROOT / "preprocess_train.py"), "--models", *map(str, suite),
               "--dataset", str(prefix_file), "--out", str(out), "--device", "cpu", "--dtype", "float32",
               "--max-tokens", "64", "--no-progress"]
    single = tmp_path / "single.pkl"
    # The launcher runs each process with one thread; CPU reductions depend on the thread count, so
    # the single-process reference uses one thread too (same batches + same kernels = same bytes).
    run_script("preprocess_train.py", "--models", *suite, "--dataset", prefix_file, "--out", single,
               "--device", "cpu", "--dtype", "float32", "--max-tokens", 64, "--no-progress",
               env={"OMP_NUM_THREADS": "1"})
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(out.with_suffix(".json").read_text())["num_processes"] == 2
    assert out.read_bytes() == single.read_bytes()


def test_out_of_memory_halves_batches_and_still_fills_every_row(monkeypatch, suite, tokenizer, prefix_file):
    token_ids = inference.tokenize(tokenizer, prefix_file.read_text().splitlines())
    model = inference.load_model(inference.ModelSpec(str(suite[0])), "cpu", torch.float32)
    real_forward = inference.last_token_probs
    seen_sizes = []

    def forward_with_small_memory(model, batch, vocab_size, pad_id):
        seen_sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("simulated")
        return real_forward(model, batch, vocab_size, pad_id)

    monkeypatch.setattr(inference, "last_token_probs", forward_with_small_memory)
    out = np.full((len(token_ids), len(tokenizer)), np.nan, dtype=np.float32)
    stats = inference.next_token_probs(model, token_ids, out, pad_id=1, batch_size=8, progress=False)
    assert seen_sizes[0] == 8 and max(seen_sizes[1:]) <= 4 and seen_sizes[-1] <= 2
    assert sorted(stats["rows"]) == list(range(len(token_ids)))
    np.testing.assert_allclose(out, reference_probs(suite[0], token_ids, len(tokenizer)), atol=1e-5)


def test_revision_for_all_models_or_one():
    import preprocess_train

    specs = preprocess_train.model_specs(["a", "b", "c"], ["step1000", "b=step143000"])
    assert [(s.name, s.revision) for s in specs] == [("a", "step1000"), ("b", "step143000"), ("c", "step1000")]
    with pytest.raises(Exception, match="not one of --models"):
        preprocess_train.model_specs(["a"], ["z=step1"])


def test_strategies_can_load_the_suite_tokenizer_lazily(suite, tokenizer):
    import strategies

    loaded = strategies.load_tokenizer(str(suite[-1]))
    token = tokenizer(" the")["input_ids"][0]
    assert loaded.decode([token]) == " the" and strategies.load_tokenizer(str(suite[-1])) is loaded
