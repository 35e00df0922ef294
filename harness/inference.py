"""Inference: each model's next-token distribution after each prefix.

One model in memory at a time, its weights loaded in the target dtype straight onto the device.
Prefixes are tokenized once (all models share one tokenizer), sorted by length and batched under
a token budget; batches are right-padded with an attention mask, and only the last real position
of each prefix goes through the output head. The softmax runs in float32 over the tokenizer's ids
(Pythia pads its embedding matrix past them) and the result is stored as float16.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from harness import InputError
from harness.dataset_io import atomic_write

# Padded tokens per batch before any out-of-memory halving; sorted batching keeps padding low.
DEFAULT_MAX_TOKENS = {"cuda": 32_768, "cpu": 4_096}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")  # what a model directory's weights are stored in


@dataclass(frozen=True)
class ModelSpec:
    name: str  # a hub id or a local directory: where the model loads from
    revision: str | None = None  # e.g. Pythia's "step143000"
    label: str | None = None  # the name datasets store, if not `name` (the bundled suite's short names)

    @property
    def stored_name(self) -> str:
        return self.label or self.name


def param_counts(model: torch.nn.Module) -> dict[str, int]:
    """Total and non-embedding parameters (the input and output embeddings both excluded, once each
    when tied), the counts scaling studies plot against, as Pythia's do."""
    total = model.num_parameters()
    embeddings = {id(p): p.numel() for module in (model.get_input_embeddings(), model.get_output_embeddings())
                  if module is not None for p in module.parameters()}
    return {"total_params": total, "non_embedding_params": total - sum(embeddings.values())}


def resolve_device(device: str | None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype: str, device: str, spec: ModelSpec | None = None) -> torch.dtype:
    """`auto`: half precision on a GPU (the checkpoint's own half type if it has one), float32 on CPU."""
    if dtype != "auto":
        return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
    if not device.startswith("cuda"):
        return torch.float32
    if spec is not None:
        config = AutoConfig.from_pretrained(spec.name, revision=spec.revision)
        stored = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
        if stored in (torch.float16, torch.bfloat16, "float16", "bfloat16"):
            return getattr(torch, str(stored).removeprefix("torch."))
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def load_tokenizer(spec: ModelSpec) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(spec.name, revision=spec.revision)
    except (OSError, ValueError) as e:
        raise InputError(f"{spec.name}: cannot load its tokenizer ({str(e).splitlines()[0]})") from None


def shared_tokenizer(specs: list[ModelSpec]) -> PreTrainedTokenizerBase:
    """The suite's one tokenizer; a mismatch stops the run before any model is loaded."""
    first = load_tokenizer(specs[0])
    first_vocab = first.get_vocab()
    for spec in specs[1:]:
        vocab = load_tokenizer(spec).get_vocab()
        if vocab != first_vocab:
            raise InputError(f"{specs[0].name} and {spec.name} do not share one tokenizer "
                             f"({len(first_vocab)} vs {len(vocab)} ids, or different token ids): "
                             "the challenge compares distributions over the same vocabulary")
    return first


def tokenize(tokenizer: PreTrainedTokenizerBase, prefixes: list[str]) -> list[list[int]]:
    """Token ids per prefix, exactly as the tokenizer encodes it by default (no truncation here)."""
    token_ids = tokenizer(prefixes)["input_ids"]
    empty = [i for i, ids in enumerate(token_ids) if not ids]
    if empty:
        raise InputError(f"prefix {empty[0]} ({prefixes[empty[0]]!r}) encodes to no tokens")
    return token_ids


def load_model(spec: ModelSpec, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """Weights in `dtype` straight onto `device`; a model too big for one GPU spreads with device_map="auto"."""
    kwargs = dict(revision=spec.revision, dtype=dtype)
    try:
        try:
            # On the CPU a plain load is the direct path (device_map="cpu" measured 20% slower).
            model = AutoModelForCausalLM.from_pretrained(spec.name, device_map=None if device == "cpu" else device,
                                                         **kwargs)
        except torch.OutOfMemoryError:
            gc.collect()
            torch.cuda.empty_cache()
            warnings.warn(f"{spec.name} does not fit on {device}: loading it with device_map='auto'")
            model = AutoModelForCausalLM.from_pretrained(spec.name, device_map="auto", **kwargs)
    except (OSError, ValueError) as e:
        raise InputError(f"{spec.name}: cannot load the model ({str(e).splitlines()[0]})") from None
    return model.eval()


def context_length(model: torch.nn.Module) -> int:
    return getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", 2048)


def left_truncate(token_ids: list[list[int]], max_length: int, model_name: str) -> list[list[int]]:
    """Keep the last `max_length` tokens of each prefix: the next token depends on the end."""
    too_long = sum(len(ids) > max_length for ids in token_ids)
    if too_long:
        warnings.warn(f"{too_long} prefixes are longer than {model_name}'s context of {max_length} "
                      "tokens: their beginnings were cut off")
    return [ids[-max_length:] for ids in token_ids]


def length_sorted_batches(lengths: np.ndarray, max_tokens: int, batch_size: int | None = None) -> list[np.ndarray]:
    """Index batches, longest prefixes first, each with at most `max_tokens` padded tokens."""
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        size = max(1, max_tokens // int(lengths[order[start]]))
        if batch_size:
            size = min(size, batch_size)
        batches.append(order[start:start + size])
        start += size
    return batches


@torch.inference_mode()
def last_token_probs(model: torch.nn.Module, token_ids: list[list[int]], vocab_size: int,
                     pad_id: int = 0) -> torch.Tensor:
    """(batch, vocab_size) float32 probabilities after the last real token of each prefix."""
    device = model.get_input_embeddings().weight.device
    lengths = torch.tensor([len(ids) for ids in token_ids], device=device)
    input_ids = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(ids) for ids in token_ids], batch_first=True, padding_value=pad_id).to(device)
    # Right padding: real tokens keep their positions, and causal attention never sees the pads.
    attention_mask = torch.arange(input_ids.shape[1], device=device)[None, :] < lengths[:, None]
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask.long()).last_hidden_state
    last_hidden = hidden[torch.arange(len(token_ids), device=hidden.device), lengths.to(hidden.device) - 1]
    head = model.get_output_embeddings()
    logits = head(last_hidden.to(head.weight.device))[:, :vocab_size]
    return torch.softmax(logits.float(), dim=-1)


def next_token_probs(model: torch.nn.Module, token_ids: list[list[int]], out: np.ndarray, *,
                     pad_id: int = 0, max_tokens: int | None = None, batch_size: int | None = None,
                     rank: int = 0, world_size: int = 1, desc: str = "", progress: bool = True) -> dict:
    """Fill `out[i]` (one row per prefix, any float dtype) with the model's next-token distribution.

    Sharded (`world_size` > 1), a process fills only the rows of its batches: the batches are
    formed over all prefixes and dealt out round-robin, so every row is computed in the same batch
    as in a single-process run and the gathered result is identical. Batches halve on
    out-of-memory instead of dying. Returns the rows filled and timing stats.
    """
    device = model.get_input_embeddings().weight.device
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS["cuda" if device.type == "cuda" else "cpu"]
    lengths = np.array([len(ids) for ids in token_ids])
    max_tokens = max(max_tokens, int(lengths.max()))
    batches = length_sorted_batches(lengths, max_tokens, batch_size)[rank::world_size]
    rows = np.sort(np.concatenate(batches)) if batches else np.zeros(0, dtype=np.int64)
    start_time = time.perf_counter()
    with tqdm(total=int(lengths[rows].sum()), desc=desc, unit="tok", unit_scale=True, leave=False,
              disable=not progress) as bar:
        while batches:
            batch = batches.pop(0)
            try:
                probs = last_token_probs(model, [token_ids[i] for i in batch], out.shape[1], pad_id)
            except torch.OutOfMemoryError:
                if len(batch) == 1:
                    raise
                gc.collect()
                torch.cuda.empty_cache()
                max_tokens = max(int(lengths[batch].max()), max_tokens // 2)
                batch_size = max(1, (batch_size or len(batch)) // 2)
                bar.write(f"{desc}: out of GPU memory, batches halved to {max_tokens} tokens")
                remaining = np.concatenate([batch, *batches])
                batches = [remaining[b] for b in length_sorted_batches(lengths[remaining], max_tokens, batch_size)]
                continue
            out[batch] = probs.cpu().numpy()
            bar.update(int(lengths[batch].sum()))
    seconds = time.perf_counter() - start_time
    tokens = int(lengths[rows].sum())
    return {"rows": rows, "seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / max(seconds, 1e-9)}


def free_memory() -> None:
    """After `del model`: return its memory before the next model loads (one model at a time)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def model_fingerprint(spec: ModelSpec) -> list:
    """What identifies the model's weights: for a local directory, each weight and config file's
    size, mtime and a hash of sampled content (overwriting a model in place changes it); for a hub
    model, the commit its revision resolved to (the tokenizer download has just updated the local
    cache's ref, or, offline, the ref is the one the cached files came from)."""
    directory = Path(spec.name)
    if directory.is_dir():
        files = sorted(p for p in directory.iterdir() if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name == "config.json"))
        return [[p.name, p.stat().st_size, p.stat().st_mtime_ns, _sampled_sha256(p)] for p in files]
    return [hub_commit(spec)]


def _sampled_sha256(path: Path, samples: int = 16, chunk: int = 1 << 16) -> str:
    """sha256 of `samples` evenly spaced 64 KiB chunks (the whole file when smaller): milliseconds on a
    12b model's shards, and a retrained or replaced model differs in every chunk."""
    size, h = path.stat().st_size, hashlib.sha256()
    with open(path, "rb") as f:
        if size <= samples * chunk:
            h.update(f.read())
        else:
            for offset in np.linspace(0, size - chunk, samples).astype(np.int64):
                f.seek(int(offset))
                h.update(f.read(chunk))
    return h.hexdigest()


def hub_commit(spec: ModelSpec) -> str | None:
    """The commit a hub model's revision points to in the local Hugging Face cache (None if uncached)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    revision = spec.revision or "main"
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    ref = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=spec.name, repo_type="model") / "refs" / revision
    try:
        return ref.read_text().strip()
    except OSError:
        return None


def cache_key(spec: ModelSpec, prefixes: list[str], dtype: torch.dtype, vocab_size: int) -> str:
    """What a cached slice depends on: the model (name, revision and weights), the prefixes, the dtype."""
    blob = json.dumps([spec.name, spec.revision, model_fingerprint(spec), str(dtype), vocab_size, prefixes])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def read_cached_slice(cache_dir: Path, key: str) -> np.ndarray | None:
    path = cache_dir / f"{key}.npy"
    if not path.exists():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None  # a damaged cache entry is recomputed, not trusted


def write_cached_slice(cache_dir: Path, key: str, probs: np.ndarray, summary: dict | None = None) -> None:
    """The slice, and beside it the model's summary row (sizes, timings) for a resumed run's sidecar."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    if summary is not None:
        atomic_write(cache_dir / f"{key}.json", lambda f: json.dump(summary, f), mode="w")
    atomic_write(cache_dir / f"{key}.npy", lambda f: np.save(f, probs, allow_pickle=False))


def read_cached_summary(cache_dir: Path, key: str) -> dict:
    try:
        summary = json.loads((cache_dir / f"{key}.json").read_text())
        return summary if isinstance(summary, dict) else {}
    except (OSError, ValueError):
        return {}
