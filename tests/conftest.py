"""Shared fixtures: a tiny GPT-NeoX suite built locally (offline), and datasets made from it.

The suite uses the real Pythia tokenizer from ../shared/data when it is there (embeddings padded
past its 50,277 ids as Pythia's are); elsewhere a small byte-level BPE trained here stands in.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    """Without torch (CI's numpy-1 run), a test file marked `torch` as a whole is not even imported:
    its imports need torch. The mark is the one place that says so (pyproject.toml declares it)."""
    if not HAS_TORCH and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return "pytestmark = pytest.mark.torch" in collection_path.read_text() or None
    return None


SHARED = ROOT.parent / "shared" / "data"
PYTHIA_TOKENIZER = SHARED / "pythia-tokenizer" / "tokenizer.json"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """Output is read here at any width (lines are not folded); tests/test_cli.py checks 80 and 100 columns."""
    monkeypatch.setenv("COLUMNS", "1000")


WIDTHS = (32, 48, 64)  # three sizes: two inputs and the target
CONTEXT = 64  # short, so that truncation is easy to reach


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = dict(
        bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>", pad_token="<|padding|>"
    )
    if PYTHIA_TOKENIZER.exists():
        return PreTrainedTokenizerFast(tokenizer_file=str(PYTHIA_TOKENIZER), **special)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    text = (ROOT / "README.md").read_text() + (ROOT / "challenge.py").read_text()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<|padding|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(text.splitlines(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)


def make_model(directory: Path, width: int, tokenizer, seed: int = 0) -> Path:
    import torch
    from transformers import GPTNeoXForCausalLM

    from suite.neox import neox_config

    torch.manual_seed(seed + width)
    padded_vocab = (len(tokenizer) + 127) // 128 * 128  # padded past the tokenizer, as Pythia's are
    model = GPTNeoXForCausalLM(neox_config(width, layers=2, heads=4, vocab_size=padded_vocab, context=CONTEXT))
    # Random init gives near-uniform outputs; larger weights give peaked, distinguishable distributions.
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(20)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="session")
def suite(tmp_path_factory, tokenizer) -> list[Path]:
    """Three tiny GPT-NeoX models sharing one tokenizer, saved with save_pretrained; last = target."""
    root = tmp_path_factory.mktemp("suite")
    return [make_model(root / f"neox-{w}", w, tokenizer) for w in WIDTHS]


@pytest.fixture(scope="session")
def prefix_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prefixes") / "prefixes.txt"
    path.write_text(
        "\n".join(
            [
                "The capital of France is",
                "Water boils at a temperature of",
                "In 1969, the first humans landed on",
                "A",
                "The quick brown fox jumps over the lazy dog, and then the dog",
                "Photosynthesis converts light energy into chemical energy stored in glucose, a sugar that plants use to",
                "She opened the door and saw",
                "Prime numbers are integers greater than one whose only divisors are",
                "The river flows north through the valley before it reaches the sea near the old harbour town of",
                "Question: Is the sky blue? True or False?\nAnswer:".replace("\n", " "),
                "1, 2, 3, 4,",
            ]
        )
        + "\n"
    )
    return path


def script_command(script: str) -> list[str]:
    """How a user runs `script` from the repository root: an entry script by its path
    (`python3 challenge.py`), a benchmark or suite script as a module (`benchmarks.bench`, or its
    path `benchmarks/bench.py`: `python3 -m benchmarks.bench`)."""
    path = Path(script)
    if not script.endswith(".py"):
        return [sys.executable, "-m", script]
    if path.parent.name in ("benchmarks", "suite"):
        return [sys.executable, "-m", ".".join(path.with_suffix("").parts)]
    return [sys.executable, str(ROOT / script)]


def run_script(script: str, *args, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run one of the project's scripts through its CLI, as a user would (`script_command`), from the
    repository root."""
    result = subprocess.run(
        [*script_command(script), *map(str, args)],
        cwd=ROOT,
        text=True,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{script} {args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def built_dataset(tmp_path_factory, suite, prefix_file) -> Path:
    """A dataset made by preprocess_train.py from the tiny suite, on CPU, through its CLI."""
    out = tmp_path_factory.mktemp("data") / "tiny.pkl"
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
        "--dtype",
        "float32",
        "--no-progress",
    )
    return out
