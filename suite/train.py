"""Train a small Pythia-style scaling suite on CPU.

The challenge asks: given the next-token distributions of the smaller models of
a family (same data, same recipe, only the size changes), predict the top-1
token of the largest one. To run it offline with a real signal we need such a
family of our own. This file builds it from scratch, nanoGPT style:

1. read a text corpus (jsonl / txt / GLUE tsv files, or a hub dataset) and hold
   out every 50th document for validation;
2. train a 4,000-id byte-level BPE tokenizer on the training split, with
   Pythia's special tokens (`<|endoftext|>` = 0, `<|padding|>` = 1);
3. train a grid of `GPTNeoXForCausalLM` models (Pythia-like config) that differ
   only in width/depth, on identical batches in identical order, with the same
   token budget, the same seed and the same learning-rate rule;
4. save every model + tokenizer with `save_pretrained` under
   `<out>/models/<name>` and write a loss-vs-size table, plot and a JSON record
   into `--results-dir` (default: `--out`; `suite/rebuild.sh` passes `suite/`).

Run from the repository root:

    python3 -m suite.train --corpus ../shared/data/corpus --out build/suite

`--bench-steps N` only measures tokens/s of every size (to pick `--tokens`); `--report-only`
trains nothing and rewrites the reports from the models already in `--out`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness import InputError
from harness.cli import add_batch_size, add_seed, non_negative_int, positive_float, positive_int
from harness.data.prefixes import read_glue_tsv, rte_prompt
from harness.models.inference import param_counts
from suite.neox import neox_config

EOS = "<|endoftext|>"
PAD = "<|padding|>"
VAL_EVERY = 50  # document i is held out iff i % VAL_EVERY == 0 (2%)
TEXT_SUFFIXES = (".jsonl", ".txt", ".tsv")

# hidden x layers x heads: non-embedding params from ~6.6K to ~1.5M (~235x),
# about 2.3x per step. Why so small: the CPU budget buys only a few million
# tokens per model, and in that regime models above a few 100K non-embedding
# params all learn at the same per-token speed (a first run with widths up to
# 256 and 1.3M tokens had 0.34M..2.7M within 0.03 nats, 2.7M worse than 1.5M,
# all worse than a bigram count model on the same tokens). Capacity must bind
# within the budget for the loss to fall with every step up in size.
DEFAULT_SIZES = "16x2x1,32x2x2,48x2x2,64x3x2,96x3x3,128x4x4,160x5x5"


# --------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------


def corpus_files(paths: Sequence[str]) -> list[Path]:
    """Expand directories into their text files; sorted by name so the corpus
    (and therefore the hash, split and token stream) does not depend on the
    order in which the file system lists them."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += [f for f in p.iterdir() if f.is_file() and f.name.endswith(TEXT_SUFFIXES)]
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder (--corpus)")
    return sorted(files, key=lambda f: (f.name, str(f)))


def read_documents(path: Path, rte_prompts: bool = False) -> Iterator[str]:
    """Yield the documents of one file.

    With `rte_prompts`, a labelled GLUE RTE TSV's rows become the challenge's glue-rte prompt
    followed by the answer (" True" for entailment, else " False"): at this size the models learn
    the task only from examples in its format, which the bundled glue-rte prefixes then ask.
    """
    if path.name.endswith(".jsonl"):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    text = json.loads(line).get("text") or ""
                    if text.strip():
                        yield text
    elif path.name.endswith(".tsv"):
        for row in read_glue_tsv(path):
            if rte_prompts:
                answer = " True" if row["label"] == "entailment" else " False"
                yield rte_prompt(row["sentence1"].strip(), row["sentence2"].strip()) + answer
                continue
            parts = [row.get(k) or "" for k in ("sentence1", "sentence2")]
            text = " ".join(p.strip() for p in parts if p.strip())
            if text:
                yield text
    elif path.name.endswith(".txt"):
        # Blank lines separate documents, so that a single big .txt file still
        # gets a validation split.
        for text in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
            if text.strip():
                yield text.strip()
    else:
        raise InputError(f"{path}: not a .jsonl, .txt or .tsv corpus file")


def read_hub_documents(name: str, config: str | None, split: str, field: str, max_docs: int) -> list[str]:
    """Stream documents from a Hugging Face dataset (needs network)."""
    import datasets  # lazy: heavy, and only needed for this path

    stream = datasets.load_dataset(name, config, split=split, streaming=True)
    docs: list[str] = []
    for row in stream:
        text = row.get(field) or ""
        if text.strip():
            docs.append(text)
            if len(docs) >= max_docs:
                break
    return docs


def sha256_files(files: Sequence[Path]) -> tuple[str, dict[str, str]]:
    """Per-file sha256 and a combined hash over `sha256sum`-style lines."""
    per_file = {}
    for f in files:
        h = hashlib.sha256()
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        per_file[f.name] = h.hexdigest()
    listing = "".join(f"{d}  {n}\n" for n, d in per_file.items())
    return hashlib.sha256(listing.encode()).hexdigest(), per_file


def read_corpus(args: argparse.Namespace) -> tuple[list[str], dict]:
    """All documents, in a fixed order, and a record of where they came from (with their hash)."""
    if args.hub_dataset:
        docs = read_hub_documents(
            args.hub_dataset, args.hub_config, args.hub_split, args.hub_text_field, args.hub_max_docs
        )
        h = hashlib.sha256()
        for d in docs:
            h.update(d.encode("utf-8") + b"\0")
        meta = {
            "source": "hub",
            "dataset": args.hub_dataset,
            "config": args.hub_config,
            "split": args.hub_split,
            "max_docs": args.hub_max_docs,
            "sha256": h.hexdigest(),
            "sha256_rule": "sha256 over each document's utf-8 text followed by a NUL byte",
        }
    else:
        files = corpus_files(args.corpus)
        digest, per_file = sha256_files(files)
        prompt_files = {p.resolve() for p in map(Path, args.rte_prompts)}
        if not prompt_files <= {f.resolve() for f in files}:
            raise InputError(f"--rte-prompts must name files of --corpus: {' '.join(args.rte_prompts)}")
        docs = [d for f in files for d in read_documents(f, f.resolve() in prompt_files)]
        meta = {
            "source": "files",
            "files": [f.name for f in files],
            "file_sha256": per_file,
            "rte_prompt_files": sorted(Path(p).name for p in args.rte_prompts),
            "sha256": digest,
            "sha256_rule": "sha256 of the `sha256sum`-style lines '<hex>  <file name>\\n', files sorted by name",
        }
    meta["validation_rule"] = (
        f"document index i (over all documents, files sorted by name) is validation iff i % {VAL_EVERY} == 0"
    )
    meta["documents"] = len(docs)
    return docs, meta


def split_documents(docs: Sequence[str]) -> tuple[list[str], list[str]]:
    train = [d for i, d in enumerate(docs) if i % VAL_EVERY != 0]
    val = [d for i, d in enumerate(docs) if i % VAL_EVERY == 0]
    return train, val


# --------------------------------------------------------------------------
# Tokenizer and token arrays
# --------------------------------------------------------------------------


def train_tokenizer(train_docs: Sequence[str], vocab_size: int, split_digits: bool = False):
    """Byte-level BPE like Pythia's (NFC, GPT-2 regex, no prefix space)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if split_digits:  # one token per digit, as in LLaMA: sums can then be learned digit by digit
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
    tok.decoder = decoders.ByteLevel()
    # Same post-processor as Pythia: fixes offsets, adds no special tokens.
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],  # listed first -> ids 0 and 1, as in Pythia
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(train_docs, trainer=trainer, length=len(train_docs))
    if tok.get_vocab_size() != vocab_size:  # BPE stops early when no pair is frequent enough to merge
        raise InputError(
            f"the corpus gives a tokenizer of only {tok.get_vocab_size()} ids, not --vocab-size "
            f"{vocab_size}: give more text or a smaller --vocab-size"
        )
    if (tok.token_to_id(EOS), tok.token_to_id(PAD)) != (0, 1):  # the ids neox_config gives them
        raise RuntimeError(f"the tokenizer put {EOS} at {tok.token_to_id(EOS)} and {PAD} at {tok.token_to_id(PAD)}")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=PAD,
        model_max_length=512,
    )


def encode(tokenizer, docs: Sequence[str], eos_id: int) -> np.ndarray:
    """Flat uint16 stream: doc, <|endoftext|>, doc, <|endoftext|>, ..."""
    backend = tokenizer.backend_tokenizer
    out: list[np.ndarray] = []
    eos = np.array([eos_id], dtype=np.uint16)
    for start in range(0, len(docs), 256):
        for enc in backend.encode_batch(list(docs[start : start + 256]), add_special_tokens=False):
            out += [np.asarray(enc.ids, dtype=np.uint16), eos]
    return np.concatenate(out)


def prepare_data(
    docs: list[str],
    corpus_meta: dict,
    vocab_size: int,
    data_dir: Path,
    split_digits: bool = False,
    arithmetic_docs: int = 0,
    arithmetic_seed: int = 0,
):
    """Train tokenizer + encode once; reuse the cache when the corpus matches.

    `arithmetic_docs` synthetic worksheets (suite.arithmetic) join the training documents only: the
    validation loss stays a loss on natural text."""
    from transformers import PreTrainedTokenizerFast

    meta_path = data_dir / "meta.json"
    key = {
        "corpus_sha256": corpus_meta["sha256"],
        "vocab_size": vocab_size,
        "rte_prompt_files": corpus_meta.get("rte_prompt_files", []),
        "val_rule": corpus_meta["validation_rule"],
        "split_digits": split_digits,
        "arithmetic_docs": arithmetic_docs,
        "arithmetic_seed": arithmetic_seed,
    }
    if meta_path.exists() and json.loads(meta_path.read_text()).get("key") == key:
        print(f"[data] reusing cached tokenizer and tokens in {data_dir}")
        tokenizer = PreTrainedTokenizerFast.from_pretrained(data_dir / "tokenizer")
        return (
            tokenizer,
            np.fromfile(data_dir / "train.bin", dtype=np.uint16),
            np.fromfile(data_dir / "val.bin", dtype=np.uint16),
        )

    train_docs, val_docs = split_documents(docs)
    natural_docs = len(train_docs)
    if arithmetic_docs:
        from suite.arithmetic import documents as arithmetic_documents

        train_docs += arithmetic_documents(arithmetic_docs, arithmetic_seed)
    t0 = time.time()
    tokenizer = train_tokenizer(train_docs, vocab_size, split_digits)
    print(f"[data] tokenizer trained in {time.time() - t0:.0f}s")
    t0 = time.time()
    train = encode(tokenizer, train_docs, tokenizer.eos_token_id)
    natural_tokens = len(encode(tokenizer, train_docs[:natural_docs], tokenizer.eos_token_id))
    val = encode(tokenizer, val_docs, tokenizer.eos_token_id)
    print(f"[data] encoded {len(train):,} train + {len(val):,} val tokens in {time.time() - t0:.0f}s")
    data_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(data_dir / "tokenizer")
    train.tofile(data_dir / "train.bin")
    val.tofile(data_dir / "val.bin")
    meta_path.write_text(
        json.dumps(
            {
                "key": key,
                "train_docs": len(train_docs),
                "val_docs": len(val_docs),
                "arithmetic_train_tokens": len(train) - natural_tokens,
            },
            indent=1,
        )
    )
    return tokenizer, train, val


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    hidden: int
    layers: int
    heads: int


def parse_sizes(spec: str) -> list[Size]:
    """`--sizes`: comma-separated HIDDENxLAYERSxHEADS, e.g. 16x2x1,32x2x2."""
    try:
        sizes = [Size(*map(int, s.lower().split("x"))) for s in spec.split(",") if s.strip()]
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{spec!r}: give comma-separated HIDDENxLAYERSxHEADS, e.g. 16x2x1") from None
    for size in sizes:
        if size.hidden % size.heads:
            raise argparse.ArgumentTypeError(f"{size.hidden}x{size.layers}x{size.heads}: hidden must divide by heads")
    return sizes


def lr_for(size: Size, args: argparse.Namespace) -> float:
    """One rule for every size: Pythia-70M's peak lr (1e-3 at width 512)
    scaled by 512 / width, i.e. lr ~ 1 / width as in Pythia (1e-3 at 512,
    6e-4 at 768, 3e-4 at 1024) and muP. A short probe here (200 steps) found
    the best lr near 1.6e-2 for width 32 and 2e-3..4e-3 for width 192; with
    (512 / width) ** 0.5 the wider models were starved and the loss did not
    fall monotonically with size."""
    return args.lr_ref * (args.lr_ref_width / size.hidden) ** args.lr_exponent


def build_model(size: Size, vocab_size: int, seq_len: int, seed: int):
    from transformers import GPTNeoXForCausalLM

    # Same seed before every init: reproducible, and the only difference
    # between runs is the size. (Nothing else draws from torch's generator:
    # the batch order has its own, and dropout is off.)
    torch.manual_seed(seed)
    config = neox_config(size.hidden, size.layers, size.heads, vocab_size, context=max(512, seq_len))
    return GPTNeoXForCausalLM(config).float()


def model_name(non_embedding: int) -> str:
    return f"suite-{non_embedding / 1e6:.2g}m"


def check_distinct_names(sizes: list[Size], vocab_size: int, seq_len: int) -> None:
    """Two sizes whose names round alike would write one folder: refuse before training either."""
    with torch.device("meta"):  # parameter counts without allocating or initializing any weights
        names = [
            model_name(param_counts(build_model(size, vocab_size, seq_len, 0))["non_embedding_params"])
            for size in sizes
        ]
    if len(set(names)) < len(names):
        raise InputError(f"--sizes gives models of the same name: {', '.join(names)}")


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def batch_schedule(n_tokens: int, seq_len: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """Start offsets [steps, batch_size] of non-overlapping windows, shuffled
    once; identical for every size so all models see the same batches."""
    n_windows = n_tokens // seq_len
    rng = np.random.default_rng(seed)
    need = steps * batch_size
    order = np.concatenate([rng.permutation(n_windows) for _ in range(math.ceil(need / n_windows))])
    return (order[:need] * seq_len).reshape(steps, batch_size)


def get_batch(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> torch.Tensor:
    idx = starts[:, None] + np.arange(seq_len)[None, :]
    return torch.from_numpy(tokens[idx].astype(np.int64))


def lm_loss(model, x: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the batch (the model shifts the labels by one)."""
    return model(input_ids=x, labels=x).loss


def make_optimizer(model, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    # GPT-NeoX convention: no decay on biases and LayerNorm gains.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.95),
        eps=1e-8,
    )


def lr_at(step: int, steps: int, peak: float, warmup: int, min_ratio: float) -> float:
    """Linear warmup, then cosine decay to min_ratio * peak (Pythia: 0.1)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def evaluate(model, val_batches: list[torch.Tensor]) -> float:
    model.eval()
    total, count = 0.0, 0
    for x in val_batches:
        n = x[:, 1:].numel()
        total += lm_loss(model, x).item() * n
        count += n
    model.train()
    return total / count


def train_step(model, opt: torch.optim.Optimizer, x: torch.Tensor, lr: float, grad_clip: float) -> float:
    """One optimizer step on batch `x`, as every size takes it (and as `bench` times it); the loss."""
    for group in opt.param_groups:
        group["lr"] = lr
    loss = lm_loss(model, x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.item()


def checkpoint_steps(steps: int) -> list[int]:
    """Steps after which a checkpoint is saved: Pythia's rule scaled to this run's length.

    Pythia saves steps 0, 1, 2, 4, ..., 512 (log-spaced early, where the loss moves fastest), then
    every 1,000 of its 143,000 steps. Here: 0 and the powers of two below steps / 16, then every
    steps / 16 (240 of 3,840), so the late part of training, where the suite's abilities appear,
    holds 16 evenly spaced points on the loss axis; the last step is always one."""
    every = max(1, steps // 16)
    early = [0] + [2**k for k in range(int(math.log2(every)) + 1) if 2**k < every] if steps else [0]
    return sorted(set(early) | set(range(every, steps + 1, every)) | {steps})


def save_atomic(obj, path: Path) -> None:
    """torch.save through a temporary file: a run killed while writing leaves the previous state whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def resume_key(name: str, size: Size, peak_lr: float, steps: int, args: argparse.Namespace, train: np.ndarray) -> dict:
    """What a resumed run must share with the run that saved the state, or its weights would differ:
    the settings, and the training tokens themselves (another corpus, tokenizer or worksheet count)."""
    return {
        "name": name,
        "train_tokens_sha256": hashlib.sha256(train.tobytes()).hexdigest(),
        "size": [size.hidden, size.layers, size.heads],
        "peak_lr": peak_lr,
        "steps": steps,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "seed": args.seed,
        "init_seed": args.seed if args.init_seed is None else args.init_seed,
        "model_vocab": args.model_vocab,
        "warmup_frac": args.warmup_frac,
        "min_lr_ratio": args.min_lr_ratio,
        "weight_decay": args.weight_decay,
        "grad_clip": args.grad_clip,
    }


def save_checkpoint(model, tokenizer, folder: Path, record: dict) -> None:
    """One checkpoint, a folder that from_pretrained loads like a final model, with its record.json."""
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "record.json").write_text(json.dumps(record))
    if folder.exists():  # written by a run killed after the rename of its checkpoint but before its resume state
        shutil.rmtree(folder)
    tmp.replace(folder)


def resume(path: Path, key: dict | None, model, opt: torch.optim.Optimizer) -> dict | None:
    """The training state a killed run saved at `path`, loaded into `model` and `opt` (None where
    there is none); refused where it was saved with other settings, which would end elsewhere."""
    if not path.exists():
        return None
    state = torch.load(path, weights_only=True)
    if state["key"] != key:
        raise InputError(
            f"{path}: saved by a run with other settings ({state['key']}); delete it to train from the start"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    print(f"[train] {key['name'] if key else path.stem}: resuming at step {state['step']} from {path}", flush=True)
    return state


def train_one(
    model,
    name: str,
    train: np.ndarray,
    schedule: np.ndarray,
    args: argparse.Namespace,
    peak_lr: float,
    tokenizer=None,
    val_batches: list[torch.Tensor] | None = None,
    key: dict | None = None,
) -> dict:
    """Train `model` on `schedule`; with `tokenizer`, save checkpoints (suite/checkpoints' rule) under
    --out/checkpoints/<name>/step<N>, each with its validation loss, and after each the whole training
    state (weights, optimizer, step, RNG, loss curve) to --out/resume/<name>.pt, from which a killed run
    goes on to the same weights as one never killed."""
    from tqdm import tqdm

    steps = len(schedule)
    warmup = max(1, int(args.warmup_frac * steps))
    opt = make_optimizer(model, peak_lr, args.weight_decay)
    model.train()
    tokens_per_step = args.batch_size * args.seq_len
    saving = tokenizer is not None
    saves = set(checkpoint_steps(steps)) if saving else set()
    resume_path = Path(args.out) / "resume" / f"{name}.pt"
    state = resume(resume_path, key, model, opt) if saving else None
    start, ema, wall_before = (state["step"], state["ema"], state["wall_s"]) if state else (0, None, 0.0)
    curve: list[tuple[int, float]] = [tuple(c) for c in state["curve"]] if state else []
    checkpoints: list[dict] = state["checkpoints"] if state else []
    bar = tqdm(total=steps, initial=start, desc=name, unit="step", mininterval=2.0, dynamic_ncols=False, ncols=110)
    t0 = time.perf_counter()

    def checkpoint(done: int) -> None:
        wall = wall_before + time.perf_counter() - t0
        record = {
            "name": name,
            "step": done,
            "tokens": done * tokens_per_step,
            "val_loss": evaluate(model, val_batches),
            "train_wall_s": wall,
        }
        save_checkpoint(model, tokenizer, Path(args.out) / "checkpoints" / name / f"step{done}", record)
        checkpoints.append(record)
        save_atomic(
            {
                "key": key,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "step": done,
                "ema": ema,
                "wall_s": wall,
                "curve": curve,
                "checkpoints": checkpoints,
            },
            resume_path,
        )

    if saving and start == 0 and 0 in saves:
        checkpoint(0)
    for step in range(start, steps):
        lr = lr_at(step, steps, peak_lr, warmup, args.min_lr_ratio)
        value = train_step(model, opt, get_batch(train, schedule[step], args.seq_len), lr, args.grad_clip)
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        if step % 10 == 0 or step == steps - 1:
            curve.append((step, round(value, 4)))
        if step + 1 in saves:
            checkpoint(step + 1)
        elapsed = time.perf_counter() - t0
        bar.set_postfix(
            loss=f"{ema:.3f}", tok_s=f"{(step + 1 - start) * tokens_per_step / elapsed:,.0f}", refresh=False
        )
        bar.update(1)
    wall = wall_before + time.perf_counter() - t0
    bar.close()
    return {
        "train_wall_s": wall,
        "tokens": steps * tokens_per_step,
        "tokens_per_s": steps * tokens_per_step / wall,
        "final_train_loss_ema": ema,
        "steps": steps,
        "warmup_steps": warmup,
        "curve": curve,
        "checkpoints": checkpoints,
    }


def train_size(
    size: Size,
    tokenizer,
    train: np.ndarray,
    schedule: np.ndarray,
    val_batches: list[torch.Tensor],
    args: argparse.Namespace,
) -> None:
    """Build, train and evaluate one size; save it with its tokenizer, loss curve and record.json."""
    init_seed = args.seed if args.init_seed is None else args.init_seed
    model = build_model(size, args.model_vocab, args.seq_len, init_seed)
    counts = param_counts(model)
    total, non_emb = counts["total_params"], counts["non_embedding_params"]
    name = model_name(non_emb)
    if init_seed != args.seed:  # another seed of a size: the noise ceiling, kept apart from the suite's inputs
        name = f"{name}-seed{init_seed}"
    peak_lr = lr_for(size, args)
    print(
        f"[train] {name}: {size.hidden}x{size.layers}x{size.heads}, non-emb {non_emb:,}, "
        f"total {total:,}, peak lr {peak_lr:.2e}",
        flush=True,
    )
    key = resume_key(name, size, peak_lr, len(schedule), args, train)
    stats = train_one(model, name, train, schedule, args, peak_lr, tokenizer, val_batches, key)
    t0 = time.perf_counter()
    val_loss = evaluate(model, val_batches)
    eval_s = time.perf_counter() - t0
    print(
        f"[train] {name}: val loss {val_loss:.4f} (train {stats['train_wall_s']:.0f}s, "
        f"{stats['tokens_per_s']:,.0f} tok/s, eval {eval_s:.0f}s)",
        flush=True,
    )
    model_dir = Path(args.out) / ("models" if init_seed == args.seed else "seeds") / name
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (model_dir / "train_curve.json").write_text(json.dumps(stats["curve"]))
    record = {
        "name": name,
        "hidden": size.hidden,
        "layers": size.layers,
        "heads": size.heads,
        "non_embedding_params": non_emb,
        "total_params": total,
        "tokens": stats["tokens"],
        "train_wall_s": stats["train_wall_s"],
        "tokens_per_s": stats["tokens_per_s"],
        "val_loss": val_loss,
        "dir": str(model_dir),
        "peak_lr": peak_lr,
        "steps": stats["steps"],
        "warmup_steps": stats["warmup_steps"],
        "eval_wall_s": eval_s,
        "init_seed": init_seed,
        "final_train_loss_ema": stats["final_train_loss_ema"],
        "config": model.config.to_dict(),
        "checkpoints": stats["checkpoints"],
    }
    (model_dir / "record.json").write_text(json.dumps(record, default=str))


def bench(sizes: list[Size], train: np.ndarray, args: argparse.Namespace) -> None:
    """Tokens/s of every size over a few steps, and the projected time."""
    schedule = batch_schedule(len(train), args.seq_len, args.batch_size, args.bench_steps + 1, args.seed)
    total_s = 0.0
    for size in sizes:
        model = build_model(size, args.model_vocab, args.seq_len, args.seed)
        non_emb = param_counts(model)["non_embedding_params"]
        peak_lr = lr_for(size, args)
        opt = make_optimizer(model, peak_lr, args.weight_decay)
        for step in range(args.bench_steps + 1):
            if step == 1:  # first step pays one-off allocation costs
                t0 = time.perf_counter()
            train_step(model, opt, get_batch(train, schedule[step], args.seq_len), peak_lr, args.grad_clip)
        tps = args.bench_steps * args.batch_size * args.seq_len / (time.perf_counter() - t0)
        total_s += args.tokens / tps
        print(
            f"{model_name(non_emb):>14} {size.hidden}x{size.layers}x{size.heads} non-emb {non_emb:>10,} "
            f"{tps:>9,.0f} tok/s -> {args.tokens / tps / 60:6.1f} min for {args.tokens:,} tokens",
            flush=True,
        )
    print(f"projected total: {total_s / 60:.1f} min")


# --------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------

TABLE_COLUMNS = (
    "name",
    "hidden",
    "layers",
    "heads",
    "non_embedding_params",
    "total_params",
    "tokens",
    "train_wall_s",
    "tokens_per_s",
    "val_loss",
)


def read_records(models_dir: Path) -> list[dict]:
    """The record.json of every model in `models_dir`, smallest first, each with its weights' hash.

    Sizes may be trained by several processes into one --out (one thread each runs steadier on a
    busy machine than one process with two): the report covers every model trained there.
    """
    records = []
    for f in models_dir.glob("*/record.json"):
        record = json.loads(f.read_text())
        # the weights' hash goes into every dataset's sidecar, via suite.json; read from where the
        # record is now, since record["dir"] is relative to wherever training ran
        record["weights_sha256"] = sha256_files([f.parent / "model.safetensors"])[1]["model.safetensors"]
        records.append(record)
    if not records:
        raise InputError(f"{models_dir}: no trained models to report on")
    return sorted(records, key=lambda r: r["non_embedding_params"])


def write_reports(
    args: argparse.Namespace,
    corpus_meta: dict,
    tokenizer,
    train_tokens: int,
    val_tokens: int,
    steps: int,
    n_eval: int,
    wall_s: float,
) -> None:
    """loss_vs_size.{md,png} and suite.json in --results-dir (suite.json also in --out), over every
    model in --out/models."""
    out = Path(args.out)
    records = read_records(out / "models")
    check_budget(records, steps, args, out / "models")
    rows = [{k: r[k] for k in TABLE_COLUMNS} for r in records]
    losses = [r["val_loss"] for r in rows]
    monotone = all(b < a for a, b in zip(losses, losses[1:]))
    tokens = steps * args.batch_size * args.seq_len
    total_train = sum(r["train_wall_s"] for r in rows)
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)

    header = (
        f"# Validation loss vs size\n\nGPT-NeoX (Pythia-like) suite trained by `python3 -m suite.train` on CPU: "
        f"{tokens:,} tokens per model (batch {args.batch_size} x seq "
        f"{args.seq_len}, identical batches in identical order), seed {args.seed}, "
        f"peak lr = {args.lr_ref:g} * ({args.lr_ref_width} / hidden)^{args.lr_exponent:g}. "
        f"Validation loss (nats/token) on {n_eval} fixed held-out sequences of {args.seq_len} tokens. "
        f"Strictly decreasing with size: {'yes' if monotone else 'NO'}. "
        f"Total training wall time {total_train / 60:.1f} min."
    )
    write_table(rows, results / "loss_vs_size.md", header)
    write_plot(rows, results / "loss_vs_size.png", f"Suite: validation loss vs size ({tokens / 1e6:.1f}M tokens each)")

    suite = suite_record(args, corpus_meta, tokenizer, records, train_tokens, val_tokens, steps, n_eval)
    suite.update(
        val_loss_strictly_decreasing=monotone,
        total_train_wall_s=total_train,
        total_wall_s=wall_s,
        date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    text = json.dumps(suite, indent=1, default=str)
    (results / "suite.json").write_text(text)
    (out / "suite.json").write_text(text)
    print(
        f"[done] total train {total_train / 60:.1f} min, wall {wall_s / 60:.1f} min, "
        f"val loss strictly decreasing: {monotone}"
    )
    for r in records:
        print((out / "models" / r["name"]).resolve())


def check_budget(records: list[dict], steps: int, args: argparse.Namespace, models_dir: Path) -> None:
    """The report states this run's token budget: it must be the models'."""
    tokens = steps * args.batch_size * args.seq_len
    trained = {(r["tokens"], r["steps"]) for r in records}
    if trained != {(tokens, steps)}:
        raise InputError(
            f"{models_dir}: its models were trained on "
            f"{', '.join(f'{t:,} tokens ({s} steps)' for t, s in sorted(trained))}, but these arguments "
            f"give {tokens:,} ({steps} steps): pass the training run's --tokens, --batch-size and --seq-len"
        )


def suite_record(
    args: argparse.Namespace,
    corpus_meta: dict,
    tokenizer,
    records: list[dict],
    train_tokens: int,
    val_tokens: int,
    steps: int,
    n_eval: int,
) -> dict:
    """suite.json: the recipe, the data, every model's record (with its checkpoints) and the other seeds'."""
    import transformers

    out = Path(args.out)
    tok_sha = hashlib.sha256((out / "data" / "tokenizer" / "tokenizer.json").read_bytes()).hexdigest()
    data_meta = json.loads((out / "data" / "meta.json").read_text())
    seed_variants = read_records(out / "seeds") if (out / "seeds").is_dir() else []
    arithmetic = None
    if args.arithmetic_docs:
        from suite.arithmetic import FORMATS, HELD_OUT_SEED, HELD_OUT_SHARE

        arithmetic = {
            "generator": "suite.arithmetic.documents",
            "documents": args.arithmetic_docs,
            "seed": args.arithmetic_seed,
            "formats": [f for f, _ in FORMATS],
            "train_tokens": data_meta["arithmetic_train_tokens"],
            "share_of_train_tokens": data_meta["arithmetic_train_tokens"] / train_tokens,
            "held_out": f"2-digit addition pairs: {HELD_OUT_SHARE:g} of the pairs a <= b (0-99), both "
            f"orders, drawn with seed {HELD_OUT_SEED}, never in the text",
            "validation": "training text only; validation loss is on the natural text",
        }
    return {
        "purpose": "small Pythia-style scaling suite for the top-1 prediction challenge",
        "corpus": corpus_meta,
        "tokenizer": {
            "type": "byte-level BPE (tokenizers), NFC, GPT-2 regex, add_prefix_space=False"
            + (", one token per digit" if args.split_digits else ""),
            "vocab_size": len(tokenizer),
            "model_vocab_size": args.model_vocab,
            "special_tokens": {EOS: tokenizer.convert_tokens_to_ids(EOS), PAD: tokenizer.convert_tokens_to_ids(PAD)},
            "bos_token": EOS,
            "eos_token": EOS,
            "unk_token": EOS,
            "pad_token": PAD,
            "document_separator": EOS + " appended after every document",
            "tokenizer_json_sha256": tok_sha,
        },
        "seed": args.seed,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "tokens_per_model": steps * args.batch_size * args.seq_len,
        "steps": steps,
        "train_tokens_available": train_tokens,
        "val_tokens_available": val_tokens,
        "eval": {
            "sequences": n_eval,
            "seq_len": args.seq_len,
            "rule": "first N non-overlapping windows of the validation token stream",
        },
        "data_order": "non-overlapping seq_len windows of the train stream, shuffled once with numpy "
        "default_rng(seed); identical for every size",
        "lr_rule": {
            "peak_lr": f"{args.lr_ref:g} * ({args.lr_ref_width} / hidden) ** {args.lr_exponent:g}",
            "schedule": f"linear warmup {args.warmup_frac:g} of steps, cosine decay to {args.min_lr_ratio:g} x peak",
        },
        "optimizer": {
            "name": "AdamW",
            "betas": [0.9, 0.95],
            "eps": 1e-8,
            "weight_decay": args.weight_decay,
            "weight_decay_on": "matrices only (no biases / LayerNorm)",
            "grad_clip": args.grad_clip,
        },
        "checkpoints": {
            "rule": "steps 0 and the powers of two below steps / 16, then every steps / 16 "
            "(suite.train.checkpoint_steps: Pythia's rule scaled to the run)",
            "committed": "suite/checkpoints/<model>/step<N>: those on the ladder (docs/bundled-suite.md)",
        },
        "dtype": "float32",
        "device": "cpu",
        "threads": args.threads,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "models": records,
        "synthetic_arithmetic": arithmetic,
        "seed_variants": seed_variants,
    }


def write_table(rows: list[dict], path: Path, header: str) -> None:
    lines = [
        header,
        "",
        "| name | hidden | layers | heads | non-embedding params | total params | tokens trained "
        "| train wall s | tokens/s | final val loss |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['hidden']} | {r['layers']} | {r['heads']} | {r['non_embedding_params']:,} "
            f"| {r['total_params']:,} | {r['tokens']:,} | {r['train_wall_s']:.0f} "
            f"| {r['tokens_per_s']:,.0f} | {r['val_loss']:.4f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def write_plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["non_embedding_params"] for r in rows]
    y = [r["val_loss"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.plot(x, y, "o-", color="tab:blue")
    for r in rows:
        ax.annotate(
            r["name"], (r["non_embedding_params"], r["val_loss"]), textcoords="offset points", xytext=(5, 6), fontsize=8
        )
    ax.set_xscale("log")
    ax.set_xlim(min(x) / 1.6, max(x) * 2.5)  # room for the point labels
    ax.set_xlabel("non-embedding parameters (log scale)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", nargs="*", default=[], help="directories and/or .jsonl/.txt/.tsv files")
    p.add_argument(
        "--rte-prompts",
        nargs="*",
        default=[],
        help="labelled GLUE RTE TSVs (among --corpus) trained as glue-rte prompts + ' True'/' False'",
    )
    p.add_argument("--hub-dataset", help="Hugging Face dataset name (streamed; needs network)")
    p.add_argument("--hub-config", default=None)
    p.add_argument("--hub-split", default="train")
    p.add_argument("--hub-text-field", default="text")
    p.add_argument("--hub-max-docs", type=positive_int, default=20_000)
    p.add_argument("--out", default="build/suite", help="weights, token cache and log (git-ignored)")
    p.add_argument(
        "--results-dir",
        help="where the table, plot and suite.json go (default: --out; "
        "suite/rebuild.sh passes suite/ to refresh the committed ones)",
    )
    p.add_argument("--sizes", type=parse_sizes, default=DEFAULT_SIZES, help="comma-separated HIDDENxLAYERSxHEADS")
    p.add_argument("--vocab-size", type=positive_int, default=4000, help="tokenizer ids incl. special tokens")
    p.add_argument("--model-vocab", type=positive_int, default=4096, help="embedding rows (tokenizer vocab padded)")
    p.add_argument("--seq-len", type=positive_int, default=256)
    add_batch_size(p, "sequences per training batch (default: 8)", default=8)
    p.add_argument("--tokens", type=positive_int, default=2_621_440, help="training tokens per model")
    p.add_argument("--lr-ref", type=positive_float, default=1e-3, help="peak lr at --lr-ref-width")
    p.add_argument("--lr-ref-width", type=positive_int, default=512)
    p.add_argument("--lr-exponent", type=float, default=1.0)
    p.add_argument("--warmup-frac", type=float, default=0.05)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-seqs", type=positive_int, default=128, help="held-out sequences for the final loss")
    add_seed(p, "seeds the batches' order and the weights (the committed suite's: 1234)", default=1234)
    p.add_argument(
        "--init-seed",
        type=non_negative_int,
        default=None,
        help="another weight-init seed (same data, same order): the model goes to --out/seeds/",
    )
    p.add_argument("--split-digits", action="store_true", help="one token per digit")
    p.add_argument(
        "--arithmetic-docs",
        type=non_negative_int,
        default=0,
        help="synthetic arithmetic worksheets (suite.arithmetic) added to the training text only",
    )
    add_seed(p, "seeds the arithmetic worksheets", option="--arithmetic-seed")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads (default: 2)")
    p.add_argument("--report-only", action="store_true", help="train nothing; report the models already in --out")
    p.add_argument("--bench-steps", type=non_negative_int, default=0, help="only measure tokens/s with this many steps")
    args = p.parse_args(argv)
    if not (args.corpus or args.hub_dataset):
        p.error("give --corpus PATH... or --hub-dataset NAME")
    if args.model_vocab < args.vocab_size:
        p.error(f"--model-vocab {args.model_vocab} is smaller than --vocab-size {args.vocab_size}")
    args.results_dir = args.results_dir or args.out  # never the committed suite/ files unless asked
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check_distinct_names(args.sizes, args.model_vocab, args.seq_len)

    # ---- corpus -> tokenizer -> token streams (cached in --out/data)
    docs, corpus_meta = read_corpus(args)
    print(f"[data] {len(docs):,} documents, corpus sha256 {corpus_meta['sha256'][:16]}...")
    tokenizer, train, val = prepare_data(
        docs, corpus_meta, args.vocab_size, out / "data", args.split_digits, args.arithmetic_docs, args.arithmetic_seed
    )
    del docs
    if args.bench_steps:
        bench(args.sizes, train, args)
        return

    # ---- training: every size on the same batches in the same order, scored on the same held-out windows
    steps = args.tokens // (args.batch_size * args.seq_len)
    n_eval = min(args.eval_seqs, len(val) // args.seq_len)
    if not args.report_only:
        schedule = batch_schedule(len(train), args.seq_len, args.batch_size, steps, args.seed)
        val_batches = list(get_batch(val, np.arange(n_eval) * args.seq_len, args.seq_len).split(args.batch_size))
        print(
            f"[train] {len(args.sizes)} sizes, {steps} steps x {args.batch_size} x {args.seq_len} = "
            f"{steps * args.batch_size * args.seq_len:,} tokens each ({len(train):,} train tokens available)"
        )
        for size in args.sizes:
            train_size(size, tokenizer, train, schedule, val_batches, args)

    # ---- reports over every model in --out (another seed trained alone has no sizes to sit beside)
    if not args.report_only and not any((out / "models").glob("*/record.json")):
        print(f"[done] no sizes in {out / 'models'} to report on; the model is in {out / 'seeds'}")
        return
    write_reports(args, corpus_meta, tokenizer, len(train), len(val), steps, n_eval, time.perf_counter() - t_start)


if __name__ == "__main__":
    import harness.cli

    harness.cli.run(main, interrupted="interrupted: the same command resumes from the last checkpoint")
