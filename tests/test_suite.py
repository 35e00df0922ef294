"""The suite's training recipe end to end on a small corpus: models that preprocess_train.py loads."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, run_script

from harness.dataset_io import load_dataset


def test_train_tiny_suite_then_build_a_dataset(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    words = "the a river city was is in of and born known album species town built league".split()
    docs = [" ".join(words[(i * k) % len(words)] for k in range(1, 60)) for i in range(120)]
    (corpus / "wiki.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in docs) + "\n")
    rows = ["index\tsentence1\tsentence2\tlabel"] + [f"{i}\tThe town was built.\tA town exists.\tentailment"
                                                    for i in range(20)]
    (corpus / "rte.tsv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "build"
    committed = (ROOT / "suite" / "suite.json").read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "suite.train", "--corpus", str(corpus), "--rte-prompts", str(corpus / "rte.tsv"),
         "--out", str(out), "--sizes", "16x1x1,32x2x2", "--vocab-size", "300",
         "--model-vocab", "384", "--seq-len", "32", "--batch-size", "2", "--tokens", "2048", "--eval-seqs", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (ROOT / "suite" / "suite.json").read_bytes() == committed  # results go with --out, not into suite/
    suite = json.loads((out / "suite.json").read_text())
    assert suite["corpus"]["rte_prompt_files"] == ["rte.tsv"] and suite["tokens_per_model"] == 2048
    assert (out / "loss_vs_size.md").exists() and (out / "loss_vs_size.png").stat().st_size > 0
    models = [m["dir"] for m in suite["models"]]
    assert len(models) == 2 and suite["models"][0]["non_embedding_params"] < suite["models"][1]["non_embedding_params"]

    prefixes = tmp_path / "p.txt"
    prefixes.write_text("The town was built. Question: A town exists. True or False? Answer:\nthe river city\n")
    dataset = tmp_path / "d.pkl"
    run_script("preprocess_train.py", "--models", *models, "--dataset", prefixes, "--out", dataset,
               "--device", "cpu", "--meta-json", out / "suite.json", "--no-progress")
    loaded = load_dataset(dataset)
    assert loaded.probs.shape == (2, 2, 300)  # the tokenizer's 300 ids, not the padded 384
    assert json.loads(dataset.with_suffix(".json").read_text())["extra"]["seed"] == suite["seed"]
