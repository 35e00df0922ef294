"""The suite's training recipe end to end on a small corpus: models that preprocess_train.py loads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_script

from harness.data.dataset import load_dataset
from harness.data.prefixes import read_glue_tsv
from suite.neox import neox_config

pytestmark = pytest.mark.torch  # CI's numpy-1 run has no torch

TINY = [
    "--sizes",
    "16x1x1,32x2x2",
    "--vocab-size",
    "300",
    "--model-vocab",
    "384",
    "--seq-len",
    "32",
    "--batch-size",
    "2",
    "--tokens",
    "2048",
    "--eval-seqs",
    "4",
]


def write_corpus(directory: Path) -> Path:
    directory.mkdir()
    words = "the a river city was is in of and born known album species town built league".split()
    docs = [" ".join(words[(i * k) % len(words)] for k in range(1, 60)) for i in range(120)]
    (directory / "wiki.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in docs) + "\n")
    rows = ["index\tsentence1\tsentence2\tlabel"] + [
        f"{i}\tThe town was built.\tA town exists.\tentailment" for i in range(20)
    ]
    (directory / "rte.tsv").write_text("\n".join(rows) + "\n")
    return directory


def train(*args, python_flags: tuple = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "suite.train", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_train_tiny_suite_then_build_a_dataset(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "build"
    committed = (ROOT / "suite" / "suite.json").read_bytes()
    result = train("--corpus", corpus, "--rte-prompts", corpus / "rte.tsv", "--out", out, *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (ROOT / "suite" / "suite.json").read_bytes() == committed  # results go with --out, not into suite/
    suite = json.loads((out / "suite.json").read_text())
    assert suite["corpus"]["rte_prompt_files"] == ["rte.tsv"] and suite["tokens_per_model"] == 2048
    assert (out / "loss_vs_size.md").exists() and (out / "loss_vs_size.png").stat().st_size > 0
    models = [m["dir"] for m in suite["models"]]
    assert len(models) == 2 and suite["models"][0]["non_embedding_params"] < suite["models"][1]["non_embedding_params"]

    # --report-only trains nothing and reports the models already in --out (as suite/rebuild.sh runs it)
    report = tmp_path / "report"
    result = train(
        "--corpus",
        corpus,
        "--rte-prompts",
        corpus / "rte.tsv",
        "--out",
        out,
        *TINY,
        "--report-only",
        "--results-dir",
        report,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (report / "loss_vs_size.md").read_text() == (out / "loss_vs_size.md").read_text()
    assert json.loads((report / "suite.json").read_text())["models"] == suite["models"]
    # ...and refuses to describe them with another run's token budget
    other = dict(zip(TINY[::2], TINY[1::2])) | {"--tokens": 4096}
    result = train(
        "--corpus",
        corpus,
        "--rte-prompts",
        corpus / "rte.tsv",
        "--out",
        out,
        *[str(x) for pair in other.items() for x in pair],
        "--report-only",
        "--results-dir",
        report,
    )
    assert result.returncode == 1 and "trained on 2,048 tokens" in result.stderr and "Traceback" not in result.stderr

    prefixes = tmp_path / "p.txt"
    prefixes.write_text("The town was built. Question: A town exists. True or False? Answer:\nthe river city\n")
    dataset = tmp_path / "d.pkl"
    run_script(
        "preprocess_train.py",
        "--models",
        *models,
        "--dataset",
        prefixes,
        "--out",
        dataset,
        "--device",
        "cpu",
        "--meta-json",
        out / "suite.json",
        "--no-progress",
    )
    loaded = load_dataset(dataset)
    assert loaded.probs.shape == (2, 2, 300)  # the tokenizer's 300 ids, not the padded 384
    assert json.loads(dataset.with_suffix(".json").read_text())["extra"]["seed"] == suite["seed"]

    # A trained --out reports wherever it has moved: each record's "dir" names where training ran,
    # so the weights are hashed beside the record instead.
    moved = tmp_path / "moved"
    shutil.move(out, moved)
    result = train(
        "--corpus",
        corpus,
        "--rte-prompts",
        corpus / "rte.tsv",
        "--out",
        moved,
        *TINY,
        "--report-only",
        "--results-dir",
        report,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reported = json.loads((report / "suite.json").read_text())["models"]
    assert [m["weights_sha256"] for m in reported] == [m["weights_sha256"] for m in suite["models"]]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--sizes", "16x2"], 2, "give comma-separated HIDDENxLAYERSxHEADS"),
        (["--sizes", "16x1x1,16x1x1"], 1, "--sizes gives models of the same name"),
        (
            ["--vocab-size", "4000", "--model-vocab", "4096"],
            1,
            "the corpus gives a tokenizer of only",
        ),  # too little text
        (["--model-vocab", "256"], 2, "--model-vocab 256 is smaller than --vocab-size 300"),
    ],
)
def test_bad_training_input_is_one_line_even_under_python_O(tmp_path, args, code, message):
    corpus = write_corpus(tmp_path / "corpus")
    tiny = dict(zip(TINY[::2], TINY[1::2])) | dict(zip(args[::2], args[1::2]))
    result = train(
        "--corpus", corpus, "--out", tmp_path / "build", *[x for kv in tiny.items() for x in kv], python_flags=("-O",)
    )  # -O strips asserts: the checks must be real errors
    assert result.returncode == code and message in result.stderr.strip().splitlines()[-1], result.stderr[-2000:]
    assert not (tmp_path / "build" / "models").exists()


def test_bench_times_the_real_training_step(monkeypatch):
    from suite import train as train_module

    clips = []
    real_step = train_module.train_step
    monkeypatch.setattr(train_module, "train_step", lambda *a: clips.append(a[4]) or real_step(*a))
    args = train_module.parse_args(
        [
            "--corpus",
            "unused",
            "--sizes",
            "16x1x1",
            "--vocab-size",
            "64",
            "--model-vocab",
            "64",
            "--seq-len",
            "8",
            "--batch-size",
            "2",
            "--bench-steps",
            "2",
            "--grad-clip",
            "0.5",
        ]
    )
    train_module.bench(args.sizes, np.arange(400, dtype=np.uint16) % 64, args)
    assert clips == [0.5] * 3  # a warm-up step and the two timed ones, each clipped like a training step


def test_committed_suite_is_the_one_neox_config_at_its_shapes():
    from transformers import AutoConfig

    models = sorted((ROOT / "suite" / "models").glob("suite-*"))
    assert len(models) == 7
    for model in models:
        config = AutoConfig.from_pretrained(model)
        built = neox_config(
            config.hidden_size,
            config.num_hidden_layers,
            config.num_attention_heads,
            config.vocab_size,
            config.max_position_embeddings,
        )
        shape_and_recipe = lambda c: {
            k: v for k, v in c.to_dict().items() if k not in ("architectures", "dtype", "_name_or_path")
        }  # set by saving
        assert shape_and_recipe(config) == shape_and_recipe(built), model.name


def test_an_answers_bare_space_moves_into_its_prefix_only_where_the_tokenizer_splits_it_off(tokenizer):
    """The committed suite writes one token per digit, so " 73" is a bare space, then 7, then 3: a
    question ending at "Answer:" would ask every model for the space. The space moves into the
    prefix, the ids of prefix and answer together stay the same, and the next token is the sum's
    first digit. A word answer (one token with its space), a tokenizer that keeps " 73" whole and a
    choice task are left alone."""
    from tokenizers import Tokenizer

    from harness.data.prefixes import PrefixSet, space_into_prefixes
    from suite.arithmetic import held_out_questions

    suite_tokenizer = Tokenizer.from_file(str(ROOT / "suite" / "models" / "suite-1.5m" / "tokenizer.json"))
    encode = lambda texts: [e.ids for e in suite_tokenizer.encode_batch(texts, add_special_tokens=False)]
    questions = held_out_questions(20, seed=3)
    texts, answers = [q["text"] for q in questions] + ["The cat sat on"], [q["answer"] for q in questions] + [" the"]
    moved = space_into_prefixes(PrefixSet(texts, answers, {"dataset": "mine"}), encode)
    assert moved.prefixes == [t + " " for t in texts[:20]] + ["The cat sat on"]
    assert moved.answers == [a[1:] for a in answers[:20]] + [" the"]
    assert moved.record == {"dataset": "mine", "answer_space_in_prefix": 20}
    for old_text, old_answer, text, answer in zip(texts, answers, moved.prefixes, moved.answers):
        assert encode([text])[0] + encode([answer])[0] == encode([old_text])[0] + encode([old_answer])[0]
    assert all(suite_tokenizer.id_to_token(encode([a])[0][0]).isdigit() for a in moved.answers[:20])

    whole = PrefixSet(texts, answers, {})  # the tests' tokenizer writes " 73" as one token, as Pythia's does
    assert space_into_prefixes(whole, lambda t: [tokenizer(x)["input_ids"] for x in t]) is whole
    choices = PrefixSet(texts, answers, {"choices": [" 1", " 2"]})
    assert space_into_prefixes(choices, encode) is choices


def test_export_stores_float16_weights_and_records_what_they_change(tmp_path, suite, prefix_file, tokenizer):
    """suite/export.py: the copy's weights are the originals rounded to float16, its suite.json
    entry gets the copy's hash, and the change it reports is what running both in float32 gives."""
    import hashlib

    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from suite import export

    source = tmp_path / "trained"
    source.mkdir()
    shutil.copytree(suite[0], source / "tiny")
    suite_json = tmp_path / "suite.json"
    suite_json.write_text(json.dumps({"models": [{"name": "tiny"}], "seed_variants": []}))
    export.main([str(source), str(tmp_path / "out"), "--suite-json", str(suite_json), "--prefixes", str(prefix_file)])

    copy = tmp_path / "out" / "tiny"
    original, stored = load_file(source / "tiny" / "model.safetensors"), load_file(copy / "model.safetensors")
    assert original.keys() == stored.keys()
    for name, tensor in original.items():
        assert stored[name].dtype == torch.float16 and torch.equal(stored[name], tensor.to(torch.float16))
    record = json.loads(suite_json.read_text())["models"][0]
    assert record["float16_weights_sha256"] == hashlib.sha256((copy / "model.safetensors").read_bytes()).hexdigest()

    prefixes = [line for line in prefix_file.read_text().splitlines() if line.strip()]
    probs = []
    for folder in (source / "tiny", copy):  # each prefix alone, no padding
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        with torch.no_grad():
            probs.append(
                torch.stack(
                    [
                        model(torch.tensor([tokenizer(p)["input_ids"]])).logits[0, -1, : len(tokenizer)].softmax(-1)
                        for p in prefixes
                    ]
                )
            )
    change = record["float16_change"]
    assert change["max_abs_difference"] == pytest.approx(float((probs[0] - probs[1]).abs().max()), abs=1e-6)
    assert change["same_top1"] == pytest.approx(float((probs[0].argmax(1) == probs[1].argmax(1)).float().mean()))
    assert 0 < change["max_abs_difference"] < 0.01 and change["prefixes"] == len(prefixes)


def test_glue_tsv_keeps_bare_quotes(tmp_path):
    path = tmp_path / "rte.tsv"
    path.write_text(
        'index\tsentence1\tsentence2\tlabel\n0\t"Yes," he said.\t"No.\tnot_entailment\n'
        "1\tA town.\tA place.\tentailment\n"
    )
    rows = list(read_glue_tsv(path))
    assert [(r["sentence1"], r["sentence2"], r["label"]) for r in rows] == [
        ('"Yes," he said.', '"No.', "not_entailment"),
        ("A town.", "A place.", "entailment"),
    ]


def test_arithmetic_worksheets_never_state_a_held_out_pair_and_the_questions_ask_only_those():
    import re

    from suite.arithmetic import documents, held_out_pairs, held_out_questions

    held = held_out_pairs()
    assert len(held) > 1900 and all((b, a) in held for a, b in held)  # both orders
    stated = {
        tuple(int(x) for x in re.findall(r"\d+", line)[:2])
        for doc in documents(2000, seed=5)
        for line in doc.splitlines()
    }
    assert len(stated) > 3000 and not stated & held
    questions = held_out_questions(50, seed=1)
    assert len({q["text"] for q in questions}) == 50 and questions == held_out_questions(50, seed=1)
    for q in questions:
        a, b = map(int, re.fullmatch(r"Question: What is (\d+) plus (\d+)\?\nAnswer:", q["text"]).groups())
        assert (a, b) in held and q["answer"] == f" {a + b}"


def test_train_with_digits_arithmetic_and_another_seed(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "build"
    options = [
        "--corpus",
        corpus,
        "--out",
        out,
        "--sizes",
        "16x1x1",
        *TINY[2:],
        "--split-digits",
        "--arithmetic-docs",
        "40",
    ]
    assert train(*options).returncode == 0
    result = train(*options, "--init-seed", "7")
    assert result.returncode == 0, result.stderr[-3000:]
    suite = json.loads((out / "suite.json").read_text())
    assert [m["name"] for m in suite["models"]] == ["suite-0.0033m"]  # the other seed is not one of the sizes
    (variant,) = suite["seed_variants"]
    assert variant["name"] == "suite-0.0033m-seed7" and variant["init_seed"] == 7
    assert (out / "seeds" / "suite-0.0033m-seed7" / "model.safetensors").exists()
    arithmetic = suite["synthetic_arithmetic"]
    assert arithmetic["documents"] == 40 and 0 < arithmetic["share_of_train_tokens"] < 1
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(out / "seeds" / "suite-0.0033m-seed7")
    assert tokenizer.convert_ids_to_tokens(tokenizer(" 1234")["input_ids"])[-4:] == ["1", "2", "3", "4"]


def test_checkpoint_steps_follow_pythias_rule_scaled_to_the_run():
    from suite.train import checkpoint_steps

    # 3,840 steps (the suite's): 0, powers of two below 240, then every 240 (16 evenly spaced)
    assert checkpoint_steps(3840) == [0, 1, 2, 4, 8, 16, 32, 64, 128] + list(range(240, 3841, 240))
    assert checkpoint_steps(40) == [0, 1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40]
    assert checkpoint_steps(1) == [0, 1]


def test_a_killed_training_run_resumes_to_the_weights_of_one_never_killed(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from suite import train as train_module

    corpus = write_corpus(tmp_path / "corpus")
    options = ["--corpus", str(corpus), "--sizes", "16x1x1", *TINY[2:], "--tokens", "2560", "--threads", "1"]
    train_module.main([*options, "--out", str(tmp_path / "whole")])  # 40 steps, a checkpoint every 2

    real_step, calls = train_module.train_step, []

    def killed_at_step_7(*a):  # dies inside step 7, one step after the checkpoint at step 6
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return real_step(*a)

    monkeypatch.setattr(train_module, "train_step", killed_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train_module.main([*options, "--out", str(tmp_path / "killed")])
    monkeypatch.setattr(train_module, "train_step", real_step)
    train_module.main([*options, "--out", str(tmp_path / "killed")])

    whole = tmp_path / "whole" / "models" / "suite-0.0033m"
    resumed = tmp_path / "killed" / "models" / "suite-0.0033m"
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)  # bit for bit
    records = [json.loads((d / "record.json").read_text()) for d in (whole, resumed)]
    assert [c["val_loss"] for c in records[0]["checkpoints"]] == [c["val_loss"] for c in records[1]["checkpoints"]]
    steps = [c["step"] for c in records[1]["checkpoints"]]
    assert steps == train_module.checkpoint_steps(40)
    # each checkpoint is a folder from_pretrained loads, the last one the final weights
    last = tmp_path / "killed" / "checkpoints" / "suite-0.0033m" / "step40"
    c = load_file(last / "model.safetensors")
    assert all(a[k].equal(c[k]) for k in a)
    assert json.loads((last / "record.json").read_text())["tokens"] == 40 * 2 * 32
    # a resume with other settings would end elsewhere: refused, naming the state file
    from harness import InputError

    with pytest.raises(InputError, match=r"suite-0\.0033m\.pt: saved by a run with other settings"):
        train_module.main([*options, "--out", str(tmp_path / "killed"), "--grad-clip", "0.5"])
    with pytest.raises(InputError, match=r"suite-0\.0033m\.pt: saved by a run with other settings"):
        train_module.main([*options, "--out", str(tmp_path / "killed"), "--arithmetic-docs", "5"])  # other tokens


def fake_suite(root: Path) -> Path:
    """suite/ with two sizes (by weight bytes), a seed of each, two checkpoints of the larger, and suite.json."""
    folders = {
        "models/suite-s": 10,
        "models/suite-l": 20,
        "seeds/suite-s-seed2": 10,
        "seeds/suite-l-seed2": 20,
        "checkpoints/suite-l/step8": 20,
        "checkpoints/suite-l/step16": 20,
    }
    for folder, size in folders.items():
        (root / folder).mkdir(parents=True)
        (root / folder / "model.safetensors").write_bytes(b"x" * size)
    checkpoints = [{"step": 8, "val_loss": 4.8}, {"step": 16, "val_loss": 4.4}, {"step": 24, "val_loss": 4.3}]
    suite = {
        "models": [
            {"name": "suite-s", "val_loss": 4.6},
            {"name": "suite-l", "val_loss": 4.2, "checkpoints": checkpoints},
        ],
        "seed_variants": [{"name": "suite-s-seed2", "val_loss": 4.5}, {"name": "suite-l-seed2", "val_loss": 4.25}],
    }
    (root / "suite.json").write_text(json.dumps(suite))
    return root / "models"


def test_the_ladder_is_every_point_on_the_loss_axis_and_a_checkpoint_is_name_at_step(tmp_path, monkeypatch):
    from harness import InputError
    from harness.models import suites

    monkeypatch.setattr(suites, "SUITE_MODELS", fake_suite(tmp_path / "suite"))
    monkeypatch.chdir(tmp_path)
    paths, labels = suites.bundled_suite(["ladder"])
    # highest loss first, the target (lowest) last; step24 is recorded but not committed; the target's
    # other seed stays out (it is the noise ceiling), the smaller size's is a point
    assert labels == ["suite-l@step8", "suite-s", "suite-s-seed2", "suite-l@step16", "suite-l"]
    assert paths[0] == str(tmp_path / "suite" / "checkpoints" / "suite-l" / "step8")
    # for a forecast every seed is a point on the loss axis
    assert suites.bundled_suite(["ladder"], ceiling_apart=False)[1] == [
        "suite-l@step8",
        "suite-s",
        "suite-s-seed2",
        "suite-l@step16",
        "suite-l-seed2",
        "suite-l",
    ]
    assert suites.bundled_suite(["suite"])[1] == ["suite-s", "suite-l"]
    paths, labels = suites.bundled_suite(["suite-s", "suite-l@step16", "suite-s-seed2"])
    assert labels == ["suite-s", "suite-l@step16", "suite-s-seed2"]
    assert paths[1] == str(tmp_path / "suite" / "checkpoints" / "suite-l" / "step16")
    with pytest.raises(
        InputError, match=r"suite-l@step24: no such checkpoint of suite-l .*\(committed: step8, step16\)"
    ):
        suites.bundled_suite(["suite-l@step24"])
    assert suites.bundled_suite(["EleutherAI/pythia-70m"]) == (["EleutherAI/pythia-70m"], [None])  # passes through


def test_another_seed_trained_alone_into_a_fresh_out_ends_without_a_report(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    result = train("--corpus", corpus, "--out", tmp_path / "build", "--sizes", "16x1x1", *TINY[2:], "--init-seed", "7")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no sizes in" in result.stdout and (tmp_path / "build" / "seeds" / "suite-0.0033m-seed7").is_dir()
    assert not (tmp_path / "build" / "suite.json").exists()
