"""preprocess_train.py end to end on a tiny local GPT-NeoX suite, and the inference it relies on."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import CONTEXT, ROOT, SHARED, make_model, run_script
from transformers import AutoModelForCausalLM

from benchmarks.original import original_loop
from harness import InputError
from harness.data.dataset import Answer, Dataset, load_dataset, read_sidecar, sidecar_answers
from harness.data.prefixes import build_prefixes
from harness.data.tokenizer import load_tokenizer
from harness.models import inference, resume_cache
from harness.models.suites import ModelSpec

pytestmark = pytest.mark.torch  # CI's numpy-1 run has no torch


def encode(model_dir, prefixes: list[str]) -> list[list[int]]:
    """The token ids preprocess_train.py runs: the model folder's tokenizer.json, as harness loads it."""
    return inference.tokenize(load_tokenizer(str(model_dir)), prefixes)


def reference_probs(model_dir, token_ids: list[list[int]], vocab_size: int) -> np.ndarray:
    """The original challenge's one-prefix-at-a-time loop through the full model, float32."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return original_loop(model, token_ids, vocab_size)


def batched_probs(model_dir, token_ids, vocab_size, batch_size) -> np.ndarray:
    model = inference.load_model(ModelSpec(str(model_dir)), "cpu", torch.float32)
    out = np.empty((len(token_ids), vocab_size), dtype=np.float32)
    inference.next_token_probs(model, token_ids, out, batch_size=batch_size, progress=False)
    return out


@pytest.mark.parametrize("batch_size", [1, 7, None])
def test_batched_rows_match_one_at_a_time_forward(suite, tokenizer, prefix_file, batch_size):
    prefixes = prefix_file.read_text().splitlines()
    token_ids = encode(suite[0], prefixes)
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
    reference = reference_probs(suite[0], encode(suite[0], prefixes), len(tokenizer))
    np.testing.assert_allclose(dataset.probs[:, 0].astype(np.float32), reference, atol=1e-3, rtol=1e-3)
    assert (dataset.probs[:, 0].argmax(1) == reference.argmax(1)).mean() > 0.9
    meta = json.loads(built_dataset.with_suffix(".json").read_text())
    assert meta["target_model"] == str(suite[-1]) and meta["vocab_size"] == len(tokenizer)
    assert [m["total_params"] for m in meta["models"]] == sorted(m["total_params"] for m in meta["models"])
    assert all(0 < m["non_embedding_params"] < m["total_params"] for m in meta["models"])
    assert meta["prefixes"]["dataset"] == str(prefix_file) and meta["versions"]["torch"] == torch.__version__
    assert not built_dataset.with_name(built_dataset.name + ".cache").exists()  # removed on success
    assert not built_dataset.with_name(built_dataset.name + ".lock").exists()


def test_rows_written_into_the_file_equal_the_in_memory_array_saved(
    tmp_path, built_dataset, suite, prefix_file, tokenizer
):
    """preprocess_train.py writes each model's rows into the dataset file as they are computed; the
    file holds what run_suite's in-memory array, saved by save_dataset, holds, and plain pickle.load
    reads it."""
    import pickle

    from harness.data.dataset import save_dataset

    prefixes = prefix_file.read_text().splitlines()
    specs = [ModelSpec(str(p)) for p in suite]
    probs, _ = inference.run_suite(
        specs, encode(suite[0], prefixes), len(tokenizer), device="cpu", dtype="float32", progress=False
    )
    save_dataset(tmp_path / "in_memory.pkl", [str(p) for p in suite], prefixes, probs)
    with open(built_dataset, "rb") as f, open(tmp_path / "in_memory.pkl", "rb") as g:
        streamed, in_memory = pickle.load(f), pickle.load(g)
    assert streamed[:2] == in_memory[:2] and streamed[2].tobytes() == in_memory[2].tobytes()


def test_batch_size_does_not_change_the_dataset(tmp_path, suite, prefix_file):
    arrays = []
    for batch_size in (1, 7):
        out = tmp_path / f"b{batch_size}.pkl"
        run_script(
            "preprocess_train.py",
            "--models",
            *suite,
            "--dataset",
            prefix_file,
            "--out",
            out,
            "--device",
            "cpu",
            "--batch-size",
            batch_size,
            "--no-progress",
        )
        arrays.append(load_dataset(out).probs.astype(np.float32))
    np.testing.assert_allclose(arrays[0], arrays[1], atol=1e-3, rtol=0)  # at most float16 rounding apart


def test_duplicates_kept_once_in_first_seen_order(tmp_path, suite):
    prefixes = tmp_path / "dupes.txt"
    prefixes.write_text("beta gamma\nalpha\nbeta gamma\ndelta\nalpha\n")
    out = tmp_path / "dupes.pkl"
    result = run_script(
        "preprocess_train.py",
        "--models",
        *suite[:2],
        "--dataset",
        prefixes,
        "--out",
        out,
        "--device",
        "cpu",
        "--no-progress",
    )
    assert "2 duplicate prefixes dropped" in result.stderr
    assert load_dataset(out).sentences == ["beta gamma", "alpha", "delta"]


def test_long_prefix_is_left_truncated_with_a_warning(tmp_path, suite, tokenizer):
    long_prefix = " ".join(f"word{i}" for i in range(200))
    prefixes = tmp_path / "long.txt"
    prefixes.write_text(f"short prefix here\n{long_prefix}\n")
    out = tmp_path / "long.pkl"
    result = run_script(
        "preprocess_train.py",
        "--models",
        *suite[:2],
        "--dataset",
        prefixes,
        "--out",
        out,
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--no-progress",
    )
    assert f"longer than {suite[0]}'s context of {CONTEXT} tokens" in result.stderr
    assert result.stderr.count("longer than") == 1  # both models have that context: one warning, not one per model
    ids = encode(suite[0], [long_prefix])[0]
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
    result = run_script(
        "preprocess_train.py",
        "--models",
        suite[0],
        stranger,
        "--dataset",
        prefix_file,
        "--out",
        tmp_path / "x.pkl",
        "--device",
        "cpu",
        check=False,
    )
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


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("prefixes.txt", "   \n\n", "prefixes.txt: no prefixes in the file"),
        ("prefixes.jsonl", '{"text": "ok"}\n{"text": ""}\n', "prefixes.jsonl:2: empty prefix"),
        (
            "prefixes.jsonl",
            '{"text": "\\ud800"}\n',
            "prefixes.jsonl:1: not valid Unicode text ('\\ud800' is a lone surrogate)",
        ),
        (
            "prefixes.jsonl",
            '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
            "prefixes.jsonl:1: JSON nested too deeply",
        ),
    ],
    # short ids: pytest puts the test's id in the children's environment (PYTEST_CURRENT_TEST), and a
    # 200 KB one is past Linux's limit on one variable, so the script would not even start
    ids=["blank", "empty-prefix", "lone-surrogate", "nested-too-deeply"],
)
def test_bad_prefix_file_is_one_line_before_any_model_loads(tmp_path, suite, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    result = run_script(
        "preprocess_train.py",
        "--models",
        *suite[:2],
        "--dataset",
        path,
        "--device",
        "cpu",
        "--out",
        tmp_path / "x.pkl",
        check=False,
    )
    assert result.returncode == 1 and result.stderr == f"error: {path.parent}/{message}\n"


def test_bad_dataset_arguments_are_one_line_errors(tmp_path, suite, prefix_file):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    for args, message in [
        (["--dataset", tmp_path / "missing.txt"], "missing.txt: no such file"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--dataset", prefix_file, "--meta-json", bad_json], "bad.json: not valid JSON"),
        (["--dataset", prefix_file, "--meta-json", tmp_path / "no.json"], "no.json: no such file"),
        (["--dataset", prefix_file, "--meta-json", tmp_path], "is a directory, not a JSON file"),
        (["--dataset", prefix_file, "--ceiling-model", tmp_path / "gone"], "gone: no such directory\n"),
        (
            ["--dataset", prefix_file, "--ceiling-model", "nobody/model"],
            "nobody/model: no such directory, and not in the local Hugging Face cache (offline mode is set): "
            "connect to the network, or pass --ceiling-model with local model directories",
        ),
    ]:
        result = run_script(
            "preprocess_train.py",
            "--models",
            *suite[:2],
            *args,
            "--device",
            "cpu",
            "--out",
            tmp_path / "x.pkl",
            check=False,
        )
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
        assert "Loading weights" not in result.stderr  # it fails before any model loads


@pytest.mark.skipif(not (SHARED / "corpus" / "rte-train.tsv").exists(), reason="needs ../shared/data")
def test_glue_rte_from_a_local_tsv_end_to_end(tmp_path, suite):
    out = tmp_path / "glue-rte.pkl"
    run_script(
        "preprocess_train.py",
        "--models",
        *suite[:2],
        "--dataset",
        "glue-rte",
        "--dataset-path",
        SHARED / "corpus" / "rte-train.tsv",
        "--num-prefixes",
        12,
        "--out",
        out,
        "--device",
        "cpu",
        "--no-progress",
    )
    sentences = load_dataset(out).sentences
    assert len(sentences) == 12
    assert all("\nQuestion: " in s and s.endswith(" True or False?\nAnswer:") for s in sentences)
    result = run_script("challenge.py", "--dataset", out)
    assert "12 prefixes, 1 input model," in result.stdout


def test_arithmetic_end_to_end_writes_the_answers_and_their_ids_in_the_sidecar(tmp_path, suite, tokenizer):
    out = tmp_path / "arithmetic.pkl"
    run_script(
        "preprocess_train.py",
        "--models",
        *suite[:2],
        "--dataset",
        "arithmetic",
        "--digits",
        1,
        "--operation",
        "multiply",
        "--shots",
        2,
        "--num-prefixes",
        6,
        "--seed",
        3,
        "--out",
        out,
        "--device",
        "cpu",
        "--no-progress",
    )  # offline: the arithmetic builder needs no source
    dataset = load_dataset(out)
    meta = read_sidecar(out)
    assert meta["prefixes"]["dataset"] == "arithmetic" and meta["prefixes"]["seed"] == 3
    assert {k: meta["prefixes"][k] for k in ("shots", "digits", "operation")} == {
        "shots": 2,
        "digits": 1,
        "operation": "multiply",
    }
    assert [a["text"] for a in meta["answers"]] == build_prefixes(
        "arithmetic", 6, 3, shots=2, digits=1, operation="multiply"
    ).answers
    answers = sidecar_answers(dataset, meta)
    assert len(answers) == len(dataset.sentences) == 6
    for sentence, answer in zip(dataset.sentences, answers):
        a, b = sentence.rsplit("What is ", 1)[1].removesuffix("?\nAnswer:").split(" times ")
        assert answer.text == f" {int(a) * int(b)}"  # aligned with its sentence
        assert list(answer.ids) == tokenizer(answer.text, add_special_tokens=False)["input_ids"]
    # The answer's ids are what it has after its prefix: the prefix's ids, then the answer's.
    together = encode(suite[0], [dataset.sentences[0] + answers[0].text])[0]
    assert together == encode(suite[0], [dataset.sentences[0]])[0] + list(answers[0].ids)
    assert sidecar_answers(load_dataset(out), None) is None


def test_a_set_without_answers_has_none_in_its_sidecar(built_dataset):
    meta = read_sidecar(built_dataset)
    assert "answers" not in meta and sidecar_answers(load_dataset(built_dataset), meta) is None


@pytest.mark.parametrize(
    "answers, message",
    [
        ([{"text": " 4", "ids": [5]}], r'"answers" must be a list with one answer per sentence \(2\)'),
        ("4, 5", r'"answers" must be a list with one answer per sentence \(2\)'),
        (
            [{"text": " 4", "ids": [5]}, {"text": " 5"}],
            r'answer 1 must be \{"text": a non-empty string, "ids": token ids',
        ),
        ([{"text": " 4", "ids": [5]}, {"text": " 5", "ids": [10]}], "answer 1 must be .* below the vocabulary size 10"),
        ([{"text": " 4", "ids": [5]}, {"text": " 5", "ids": [True]}], "answer 1 must be"),
        ([{"text": "", "ids": [5]}, {"text": " 5", "ids": [6]}], "answer 0 must be"),
    ],
)
def test_malformed_sidecar_answers_are_one_line_errors(tmp_path, answers, message):
    dataset = Dataset(tmp_path / "d.pkl", ["a", "b"], ["2 + 2 =", "2 + 3 ="], np.zeros((2, 2, 10), np.float16))
    assert sidecar_answers(dataset, {"answers": [{"text": " 4", "ids": [5]}, {"text": " 5", "ids": [6]}]}) == [
        Answer(" 4", (5,)),
        Answer(" 5", (6,)),
    ]
    with pytest.raises(InputError, match=f"^{tmp_path}/d.json: {message}"):
        sidecar_answers(dataset, {"answers": answers})


def test_two_process_accelerate_run_equals_single_process(tmp_path, suite, prefix_file):
    out = tmp_path / "two.pkl"
    # On a machine without GPUs, --multi_gpu starts torch.distributed CPU (gloo) processes.
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
        str(29500 + os.getpid() % 1000),
        str(ROOT / "preprocess_train.py"),
        "--models",
        *map(str, suite),
        "--dataset",
        str(prefix_file),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--max-tokens",
        "64",
        "--no-progress",
    ]
    single = tmp_path / "single.pkl"
    # The launcher runs each process with one thread (else it takes OMP_NUM_THREADS from the caller's
    # environment); CPU reductions depend on the thread count, so the single-process reference uses
    # one thread too (same batches + same kernels = same bytes).
    run_script(
        "preprocess_train.py",
        "--models",
        *suite,
        "--dataset",
        prefix_file,
        "--out",
        single,
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--max-tokens",
        64,
        "--no-progress",
        env={"OMP_NUM_THREADS": "1"},
    )
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(out.with_suffix(".json").read_text())["num_processes"] == 2
    assert out.read_bytes() == single.read_bytes()


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="lists the process's threads in /proc (Linux)")
def test_no_gloo_thread_outlives_the_process_group_after_a_model_loaded(suite):
    """A rank joins a (one-process) gloo group, loads a model, which makes transformers import
    torch.distributed.nn, and leaves the group: no gloo thread may run on into interpreter shutdown,
    where it can abort a finished run ("terminate called without an active exception")."""
    script = f"""
import os, torch
from harness.models import inference
from harness.models.suites import ModelSpec
from harness.models.processes import join_process_group, leave_process_group
join_process_group("cpu")
assert torch.distributed.is_initialized()
inference.load_model(ModelSpec({str(suite[0])!r}), "cpu", torch.float32)
leave_process_group()
print([open(f"/proc/self/task/{{t}}/comm").read().strip() for t in os.listdir("/proc/self/task")])
"""
    env = {
        **os.environ,
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "0",
    }  # as `accelerate launch` sets them; port 0: any free one
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    threads = result.stdout.strip().splitlines()[-1]
    assert "gloo" not in threads, threads


def test_out_of_memory_halves_batches_and_still_fills_every_row(monkeypatch, suite, tokenizer, prefix_file):
    token_ids = encode(suite[0], prefix_file.read_text().splitlines())
    model = inference.load_model(ModelSpec(str(suite[0])), "cpu", torch.float32)
    real_forward = inference.last_token_probs
    seen_sizes = []

    def forward_with_small_memory(model, batch, vocab_size, library_head):
        seen_sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("simulated")
        return real_forward(model, batch, vocab_size, library_head)

    monkeypatch.setattr(inference, "last_token_probs", forward_with_small_memory)
    out = np.full((len(token_ids), len(tokenizer)), np.nan, dtype=np.float32)
    stats = inference.next_token_probs(model, token_ids, out, batch_size=8, progress=False)
    assert seen_sizes[0] == 8 and max(seen_sizes[1:]) <= 4 and seen_sizes[-1] <= 2
    assert sorted(stats["rows"]) == list(range(len(token_ids)))
    np.testing.assert_allclose(out, reference_probs(suite[0], token_ids, len(tokenizer)), atol=1e-5)


def test_freed_host_memory_is_trimmed_every_few_batches(monkeypatch):
    inference.release_freed_heap()  # glibc's malloc_trim here; elsewhere nothing, and no error
    trims = []
    monkeypatch.setattr(inference, "release_freed_heap", lambda: trims.append(1))
    lengths = np.ones(20, dtype=np.int64)
    batches = inference.length_sorted_batches(lengths, max_tokens=1)
    with inference.progress_bar(disable=True) as bar:
        done = [batch for batch, _ in inference.halving_on_oom(lambda batch: batch, batches, lengths, 1, None, bar, "")]
    assert len(done) == 20 and len(trims) == 20 // inference.TRIM_EVERY_BATCHES


def test_revision_for_all_models_or_one():
    from harness.models import suites

    specs = suites.model_specs(["a", "b", "c"], ["step1000", "b=step143000"])
    assert [(s.name, s.revision) for s in specs] == [("a", "step1000"), ("b", "step143000"), ("c", "step1000")]
    with pytest.raises(InputError, match="--revision z=step1: z is not one of --models"):
        suites.model_specs(["a"], ["z=step1"])


def test_strategies_can_load_the_suite_tokenizer_lazily(suite, tokenizer):
    import strategies

    loaded = strategies.load_tokenizer(str(suite[-1]))
    token = tokenizer(" the")["input_ids"][0]
    assert loaded.decode([token]) == " the"


def test_model_overwritten_in_place_is_recomputed_not_read_from_the_cache(tmp_path, suite, tokenizer, prefix_file):
    models = [shutil.copytree(p, tmp_path / "suite" / p.name) for p in suite[:2]]
    common = [
        "--models",
        *models,
        "--dataset",
        prefix_file,
        "--device",
        "cpu",
        "--no-progress",
        "--cache-dir",
        tmp_path / "cache",
    ]
    run_script("preprocess_train.py", *common, "--out", tmp_path / "before.pkl")
    make_model(models[-1], 48, tokenizer, seed=1)  # retrained in place, as suite/rebuild.sh does
    rerun = run_script("preprocess_train.py", *common, "--out", tmp_path / "after.pkl")
    assert rerun.stdout.count("from cache") == 1  # only the unchanged first model
    before, after = load_dataset(tmp_path / "before.pkl").probs, load_dataset(tmp_path / "after.pkl").probs
    assert (before[:, 0] == after[:, 0]).all() and not (before[:, 1] == after[:, 1]).all()
    token_ids = encode(suite[0], load_dataset(tmp_path / "after.pkl").sentences)
    np.testing.assert_allclose(
        after[:, 1].astype(np.float32), reference_probs(models[-1], token_ids, len(tokenizer)), atol=1e-3
    )


def test_hub_model_cache_key_follows_the_resolved_commit(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    refs = tmp_path / "models--EleutherAI--pythia-70m" / "refs"
    refs.mkdir(parents=True)
    spec = ModelSpec("EleutherAI/pythia-70m")
    keys = []
    for commit in ("a" * 40, "b" * 40):
        (refs / "main").write_text(commit)
        assert resume_cache.hub_commit(spec) == commit
        keys.append(resume_cache.cache_key(spec, [[1, 2]], torch.float32, 10))
    assert keys[0] != keys[1]  # the hub's main moved on: the cached slice is not reused


def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(tmp_path, suite, prefix_file):
    for delay in (0.2, 0.6, 1.5):  # during the imports, the tokenizer, the models
        out = tmp_path / f"{delay}.pkl"
        run = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "preprocess_train.py"),
                "--models",
                *map(str, suite),
                "--dataset",
                str(prefix_file),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 130 and stderr.strip().startswith("interrupted") and "\n" not in stderr.strip()
    assert not list(tmp_path.glob("*.lock")) and not list(tmp_path.glob("*.pkl"))


def test_ctrl_c_between_models_keeps_the_finished_ones_for_the_rerun(tmp_path, suite):
    """Interrupted once the first model's slice is cached (many prefixes, so the second model is
    still running): one line, exit 130, and the same command resumes from the cache."""
    prefixes = tmp_path / "many.txt"
    prefixes.write_text("".join(f"prefix number {i} of the river city was\n" for i in range(1000)))
    out = tmp_path / "x.pkl"
    command = [
        sys.executable,
        str(ROOT / "preprocess_train.py"),
        "--models",
        *map(str, suite),
        "--dataset",
        str(prefixes),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
    ]
    run = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("x.pkl.cache/*.npy")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 130, stderr
    assert stderr.strip() == "interrupted: finished models are cached; rerun the same command to resume"
    assert not out.exists() and not list(tmp_path.glob("*.lock"))
    assert len(list(tmp_path.glob("x.pkl.cache/*.npy"))) == 1
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)
    rows = json.loads(out.with_suffix(".json").read_text())["models"]
    assert [row["from_cache"] for row in rows] == [True, False, False]


def test_second_run_on_the_same_out_fails_at_once(tmp_path, suite, prefix_file):
    out = tmp_path / "shared.pkl"
    with open(tmp_path / "shared.pkl.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a first run is under way
        result = run_script(
            "preprocess_train.py",
            "--models",
            *suite[:2],
            "--dataset",
            prefix_file,
            "--out",
            out,
            "--device",
            "cpu",
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {out}: another preprocess_train.py run is writing it (it holds {out}.lock): "
        "wait for it to finish, or choose another --out\n"
    )
    assert (tmp_path / "shared.pkl.lock").exists()  # the first run's lock is left alone


def test_unwritable_out_is_one_line_before_torch_loads(tmp_path, suite, prefix_file):
    (tmp_path / "a_file").write_text("")
    result = run_script(
        "preprocess_train.py",
        "--models",
        *suite[:2],
        "--dataset",
        prefix_file,
        "--out",
        tmp_path / "a_file" / "x.pkl",
        "--device",
        "cpu",
        check=False,
    )
    assert result.returncode == 1
    assert (
        result.stderr
        == f"error: {tmp_path}/a_file: cannot write there (--out {tmp_path}/a_file/x.pkl): a file is in the way\n"
    )


def test_full_disk_is_one_line_before_any_model_runs(tmp_path, monkeypatch, suite, prefix_file):
    import preprocess_train

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 10**5, 10**5))
    monkeypatch.setattr(inference, "load_model", lambda *a: pytest.fail("a model loaded"))
    with pytest.raises(InputError, match=f"{tmp_path}: 0 MB free, but the dataset and its resume cache need about"):
        preprocess_train.main(
            [
                "--models",
                *map(str, suite),
                "--dataset",
                str(prefix_file),
                "--out",
                str(tmp_path / "x.pkl"),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
    assert list(tmp_path.iterdir()) == []  # no lock file left behind


@pytest.mark.parametrize("package", ["torch", "datasets"])
def test_missing_package_is_one_line(tmp_path, suite, package):
    wiki = tmp_path / "wiki.jsonl"
    wiki.write_text(json.dumps({"text": "a b c d e f g h i j k l"}) + "\n")
    argv = [
        "preprocess_train.py",
        "--dataset",
        "wikipedia",
        "--dataset-path",
        str(wiki),
        "--models",
        *map(str, suite[:2]),
        "--out",
        str(tmp_path / "x.pkl"),
    ]
    code = (
        f"import runpy, sys; sys.modules[{package!r}] = None; sys.argv = {argv!r}; "
        "runpy.run_path('preprocess_train.py', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: preprocess_train.py needs the package '{package}'")
    assert result.stderr.endswith("pip install -r requirements-dev.txt\n") and result.stderr.count("\n") == 1


def test_no_network_fails_fast_naming_the_model(tmp_path, prefix_file):
    # Not offline by setting, but the hub cannot be reached (a closed local port stands in for no network).
    env = {
        "HF_HUB_OFFLINE": "",
        "TRANSFORMERS_OFFLINE": "",
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HOME": str(tmp_path / "hf"),
    }
    result = run_script(
        "preprocess_train.py", "--dataset", prefix_file, "--out", tmp_path / "x.pkl", check=False, env=env
    )
    assert result.returncode == 1
    assert result.stderr == (
        "error: EleutherAI/pythia-70m: no such directory, and not in the local Hugging Face "
        "cache (cannot reach http://127.0.0.1:9): connect to the network, or pass --models "
        "with local model directories\n"
    )


@pytest.mark.parametrize("name", ["missing_dir/", "./missing_dir", "no/such/dir"])
def test_missing_model_directory(tmp_path, suite, prefix_file, name):
    result = run_script(
        "preprocess_train.py",
        "--models",
        suite[0],
        name,
        "--dataset",
        prefix_file,
        "--out",
        tmp_path / "x.pkl",
        check=False,
    )
    assert result.returncode == 1 and result.stderr == f"error: {name}: no such directory\n"


def test_the_committed_suite_runs_offline_by_its_short_names(tmp_path):
    """A fresh clone builds a dataset from the bundled suite with `--models suite`: its members in
    size order, stored under their short names, with their sizes and weight hashes in the sidecar."""
    suite_json = json.loads((ROOT / "suite" / "suite.json").read_text())
    names = [m["name"] for m in sorted(suite_json["models"], key=lambda m: m["non_embedding_params"])]
    prefixes = tmp_path / "mine.txt"
    prefixes.write_text("The capital of France is\nIn 1969, the first people to walk on the Moon were\n")
    out = tmp_path / "mine.pkl"
    run_script(
        "preprocess_train.py",
        "--models",
        "suite",
        "--dataset",
        prefixes,
        "--out",
        out,
        "--device",
        "cpu",
        "--no-progress",
        "--meta-json",
        ROOT / "suite" / "suite.json",
        env={"HF_HUB_OFFLINE": ""},
    )
    dataset = load_dataset(out)
    assert dataset.model_names == names and len(names) >= 7
    meta = json.loads(out.with_suffix(".json").read_text())
    sizes = [m["non_embedding_params"] for m in meta["models"]]
    assert sizes == sorted(sizes) and sizes[-1] >= 100 * sizes[0]
    assert [m["non_embedding_params"] for m in meta["extra"]["models"]] == sizes
    assert all(m["weights_sha256"] for m in meta["extra"]["models"])
    # A short name works alone too, and a dataset's input models reach strategies with their sizes.
    run_script(
        "preprocess_train.py",
        "--models",
        names[0],
        names[-1],
        "--dataset",
        prefixes,
        "--out",
        out,
        "--device",
        "cpu",
        "--no-progress",
    )
    assert load_dataset(out).model_names == [names[0], names[-1]]


def test_a_shared_cache_read_under_other_names_keeps_this_runs_names(tmp_path):
    """The cache stores measurements: a model cached under its short name and read back under its
    path is stored (pickle and sidecar alike) under the path, with its sizes."""
    prefixes = tmp_path / "p.txt"
    prefixes.write_text("The capital of France is\n")
    short = ["suite-0.0066m", "suite-0.025m"]
    paths = [str(ROOT / "suite" / "models" / name) for name in short]
    for models in (short, paths):
        run_script(
            "preprocess_train.py",
            "--models",
            *models,
            "--dataset",
            prefixes,
            "--out",
            tmp_path / "x.pkl",
            "--cache-dir",
            tmp_path / "cache",
            "--device",
            "cpu",
            "--no-progress",
        )
    meta = json.loads((tmp_path / "x.json").read_text())
    assert [row["from_cache"] for row in meta["models"]] == [True, True]
    assert [row["name"] for row in meta["models"]] == load_dataset(tmp_path / "x.pkl").model_names == paths
    assert all(row["non_embedding_params"] > 0 for row in meta["models"])


def test_a_full_disk_while_writing_is_one_line(tmp_path, suite, prefix_file):
    """A write() that fails names no file: the message still reads right and says what is cached."""
    argv = [
        "preprocess_train.py",
        "--models",
        *map(str, suite[:2]),
        "--dataset",
        str(prefix_file),
        "--out",
        str(tmp_path / "x.pkl"),
        "--device",
        "cpu",
        "--no-progress",
    ]
    code = (
        "import errno, os, runpy, sys; import harness.models.resume_cache as io\n"
        "def full(*args, **kwargs): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        f"io.atomic_write = full; sys.argv = {argv!r}\n"
        "runpy.run_path('preprocess_train.py', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.endswith(
        "error: No space left on device; models that finished before it are cached, so the same command resumes\n"
    ), result.stderr
    assert "None" not in result.stderr and "Traceback" not in result.stderr


# ---- one tokenizer loader, the library's output head, loading after an out-of-memory error

TRICKY_TEXTS = [
    " hello  world",
    "A",
    "\u00a0x\u2028y\r\n z",
    "<|endoftext|> foo <|padding|>",
    "  leading",
    "Ünïcödé 日本語 🙂",
    "tabs\tand\nnewlines\n",
]
# The hub's tokenizer_config.json of EleutherAI/pythia-*: transformers then builds its GPTNeoXTokenizer.
PYTHIA_TOKENIZER_CONFIG = {
    "add_bos_token": False,
    "add_eos_token": False,
    "add_prefix_space": False,
    "bos_token": "<|endoftext|>",
    "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "clean_up_tokenization_spaces": True,
    "tokenizer_class": "GPTNeoXTokenizer",
}


def project_prefixes() -> list[str]:
    texts = list(TRICKY_TEXTS)
    for path in sorted((ROOT / "data" / "prefixes").glob("*.txt")):
        texts += path.read_text().splitlines()
    for path in sorted((ROOT / "data" / "prefixes").glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text().splitlines()]
    return texts


@pytest.mark.parametrize("which", ["pythia", "suite"])
def test_tokenize_gives_the_ids_of_transformers_autotokenizer(tmp_path, which):
    from transformers import AutoTokenizer

    if which == "pythia":
        if not (SHARED / "pythia-tokenizer" / "tokenizer.json").exists():
            pytest.skip("needs ../shared/data/pythia-tokenizer")
        folder = tmp_path / "pythia"
        folder.mkdir()
        shutil.copy(SHARED / "pythia-tokenizer" / "tokenizer.json", folder)
        (folder / "tokenizer_config.json").write_text(json.dumps(PYTHIA_TOKENIZER_CONFIG))
    else:
        folder = ROOT / "suite" / "models" / "suite-1.5m"
    texts = project_prefixes()
    assert len(texts) > 3000
    reference = AutoTokenizer.from_pretrained(folder)
    tokenizer = load_tokenizer(str(folder))
    assert inference.tokenize(tokenizer, texts) == reference(texts)["input_ids"]
    assert tokenizer.get_vocab_size(with_added_tokens=True) == len(reference)
    assert tokenizer.get_vocab(with_added_tokens=True) == reference.get_vocab()


def test_a_folder_without_tokenizer_json_is_read_as_transformers_reads_it(tmp_path):
    """Older model folders hold vocab.json + merges.txt (a "slow" tokenizer), no tokenizer.json. The
    folder is read as itself even when its name is a bundled suite model's."""
    from transformers import AutoTokenizer

    suite = load_tokenizer(str(ROOT / "suite" / "models" / "suite-1.5m"))
    tmp_path = tmp_path / "suite-1.5m"
    tmp_path.mkdir()
    suite.model.save(str(tmp_path))  # vocab.json, merges.txt
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "GPT2Tokenizer",
                "pad_token": "<|padding|>",
                **{f"{kind}_token": "<|endoftext|>" for kind in ("bos", "eos", "unk")},
            }
        )
    )
    assert not (tmp_path / "tokenizer.json").exists()
    texts = project_prefixes()[:500] + TRICKY_TEXTS
    tokenizer = load_tokenizer(str(tmp_path))
    assert inference.tokenize(tokenizer, texts) == AutoTokenizer.from_pretrained(tmp_path)(texts)["input_ids"]
    assert inference.tokenize(tokenizer, texts) == inference.tokenize(suite, texts)
    (tmp_path / "vocab.json").unlink()
    load_tokenizer.cache_clear()
    with pytest.raises(OSError, match="^.*: no tokenizer.json, and transformers cannot build one from it"):
        load_tokenizer(str(tmp_path))


def test_tokenize_ignores_truncation_and_padding_switched_on_in_tokenizer_json(tmp_path):
    source = load_tokenizer(str(ROOT / "suite" / "models" / "suite-1.5m"))
    expected = inference.tokenize(source, TRICKY_TEXTS)
    altered = type(source).from_str(source.to_str())
    altered.enable_truncation(max_length=2)
    altered.enable_padding(length=40)
    altered.save(str(tmp_path / "tokenizer.json"))
    tokenizer = load_tokenizer(str(tmp_path))
    assert tokenizer.truncation is not None
    assert inference.tokenize(tokenizer, TRICKY_TEXTS) == expected
    assert tokenizer.truncation is not None  # the shared, cached tokenizer is left as loaded


def test_the_model_s_own_head_and_the_hand_path_agree(suite, tokenizer, prefix_file):
    model = inference.load_model(ModelSpec(str(suite[-1])), "cpu", torch.float32)
    if not inference.keeps_per_row_logits(model):
        pytest.skip("this transformers indexes a 2-D logits_to_keep as a plain slice")
    token_ids = encode(suite[0], prefix_file.read_text().splitlines())
    library = inference.last_token_probs(model, token_ids, len(tokenizer), library_head=True)
    by_hand = inference.last_token_probs(model, token_ids, len(tokenizer), library_head=False)
    np.testing.assert_allclose(library.numpy(), by_hand.numpy(), atol=1e-6, rtol=0)


def test_transformers_without_per_row_logits_to_keep_falls_back_to_the_hand_path(
    monkeypatch, suite, tokenizer, prefix_file
):
    from transformers.models.gpt_neox import modeling_gpt_neox

    def as_transformers_5_17(hidden_states, logits_to_keep):  # any tensor indexes positions for all rows
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        return hidden_states[:, keep, :]

    # (transformers 5.17 itself slices inline, without this function: there the patch changes nothing.)
    monkeypatch.setattr(modeling_gpt_neox, "slice_logits_to_keep", as_transformers_5_17, raising=False)
    model = inference.load_model(ModelSpec(str(suite[0])), "cpu", torch.float32)
    assert not inference.keeps_per_row_logits(model)
    token_ids = encode(suite[0], prefix_file.read_text().splitlines())
    out = np.empty((len(token_ids), len(tokenizer)), dtype=np.float32)
    inference.next_token_probs(model, token_ids, out, progress=False)
    np.testing.assert_allclose(out, reference_probs(suite[0], token_ids, len(tokenizer)), atol=1e-5, rtol=0)
    # A head whose logits the forward post-processes would be wrong by hand: refused instead.
    model.config.final_logit_softcapping = 30.0
    with pytest.raises(InputError, match="post-processes the logits .final_logit_softcapping.*upgrade transformers"):
        inference.next_token_probs(model, token_ids, out, progress=False)


def test_device_map_auto_fallback_loads_after_the_failed_attempt_is_let_go(monkeypatch, suite):
    real_load = inference.AutoModelForCausalLM.from_pretrained
    calls = []

    def load_with_one_oom(name, **kwargs):
        calls.append((kwargs["device_map"], sys.exc_info()[0]))
        if len(calls) == 1:
            raise torch.OutOfMemoryError("simulated")
        return real_load(name, dtype=kwargs["dtype"])

    monkeypatch.setattr(inference.AutoModelForCausalLM, "from_pretrained", load_with_one_oom)
    with pytest.warns(UserWarning, match="does not fit on cuda: loading it with device_map='auto'"):
        model = inference.load_model(ModelSpec(str(suite[0])), "cuda", torch.float32)
    assert calls == [("cuda", None), ("auto", None)]  # no exception in flight: its traceback is gone
    assert not model.training


def test_cache_key_follows_the_token_ids(suite):
    spec = ModelSpec(str(suite[0]))
    key = resume_cache.cache_key(spec, [[5, 6, 7]], torch.float32, 100)
    assert key == resume_cache.cache_key(spec, [[5, 6, 7]], torch.float32, 100)
    assert key != resume_cache.cache_key(spec, [[5, 6, 8]], torch.float32, 100)  # e.g. another tokenizer
    assert key != resume_cache.cache_key(spec, [[5, 6, 7]], torch.float16, 100)
