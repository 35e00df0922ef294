"""Preprocessing's resume cache: one .npy slice per finished model, keyed on what it depends on.

A slice is keyed on the model (name, revision and weights: a local directory's weight files by
size, mtime and a sampled hash; a hub model's resolved commit), the token ids, the dtype and the
vocabulary, so a model retrained in place, or another tokenizer, is recomputed. Its summary row
(sizes, timings) is stored beside it for a resumed run's sidecar.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from harness.data.files import atomic_write

if TYPE_CHECKING:  # annotations only: the cache itself needs no torch
    import torch

    from harness.models.suites import ModelSpec

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")  # what a model directory's weights are stored in
_CHUNK_BYTES = 1 << 24  # a slice is written 16 MB of rows at a time


def read_cached_slice(cache_dir: Path, key: str, shape: tuple[int, ...]) -> tuple[np.ndarray, dict] | None:
    """A finished model's cached float16 slice of `shape`, memory-mapped read-only (copy it in
    chunks: `dataset.copy_rows`), and its summary row; or None: absent, damaged or of another
    shape or dtype, the slice is recomputed, not trusted."""
    try:
        probs = np.load(cache_dir / f"{key}.npy", mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    if probs.shape != shape or probs.dtype != np.float16:
        return None
    try:
        summary = json.loads((cache_dir / f"{key}.json").read_text())
    except (OSError, ValueError):
        summary = None
    return probs, summary if isinstance(summary, dict) else {}


def write_cached_slice(cache_dir: Path, key: str, probs: np.ndarray, summary: dict) -> None:
    """The slice (any (prefixes, vocab) array, e.g. a model's column of the dataset's map), written
    a chunk of rows at a time, and beside it the model's summary row (sizes, timings) for a resumed
    run's sidecar: the row first, so that a slice on disk always has its row."""
    rows = max(1, _CHUNK_BYTES // max(1, probs[:1].nbytes))

    def write(f: BinaryIO) -> None:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(probs))
        for start in range(0, len(probs), rows):
            f.write(np.ascontiguousarray(probs[start : start + rows]).data)

    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(cache_dir / f"{key}.json", lambda f: json.dump(summary, f), mode="w")
    atomic_write(cache_dir / f"{key}.npy", write)


def model_fingerprint(spec: ModelSpec) -> list:
    """What identifies the model's weights: for a local directory, each weight and config file's
    size, mtime and a hash of sampled content (overwriting a model in place changes it); for a hub
    model, the commit its revision resolved to (the tokenizer download has just updated the local
    cache's ref, or, offline, the ref is the one the cached files came from)."""
    directory = Path(spec.name)
    if directory.is_dir():
        files = sorted(
            p for p in directory.iterdir() if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name == "config.json")
        )
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


def cache_key(
    spec: ModelSpec, token_ids: list[list[int]], dtype: torch.dtype, vocab_size: int, answers: list | None = None
) -> str:
    """What a cached slice depends on: the model (name, revision and weights), the token ids (the
    prefixes and the tokenizer), the dtype and the vocabulary; and, for a dataset with answers, the
    answers' and choices' ids, whose scores are cached in the slice's summary row."""
    key = [spec.name, spec.revision, model_fingerprint(spec), str(dtype), vocab_size, token_ids]
    blob = json.dumps(key if answers is None else [*key, answers])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]
