"""Inference: each model's next-token distribution after each prefix.

`run_suite` is the whole job, model by model: one model in memory at a time, its weights loaded
in the target dtype straight onto the device. Prefixes are tokenized once (all models share one
tokenizer), sorted by length and batched under a token budget; batches are right-padded with an
attention mask, and only the last real position of each prefix goes through the output head. The
softmax runs in float32 over the tokenizer's ids (Pythia pads its embedding matrix past them) and
the result is stored as float16, into the array the caller gives (preprocess_train.py: a map of
the dataset file itself). Finished models are cached for resuming (`harness.models.resume_cache`), and
under `accelerate launch` the processes share the batches, each writing its own rows into one
shared file: nothing is gathered.
"""

from __future__ import annotations

import ctypes
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import transformers
from accelerate import PartialState
from accelerate.utils import release_memory
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForCausalLM

from harness import InputError, plural
from harness.cli import progress as progress_bar
from harness.data.dataset import copy_rows, short_name
from harness.data.tokenizer import load_tokenizer
from harness.models.resume_cache import cache_key, read_cached_slice, write_cached_slice
from harness.models.suites import ModelSpec

if TYPE_CHECKING:  # annotations only: bars come from harness.cli.progress
    from tqdm import tqdm

# Padded tokens per batch before any out-of-memory halving; sorted batching keeps padding low.
DEFAULT_MAX_TOKENS = {"cuda": 32_768, "cpu": 4_096}


def param_counts(model: torch.nn.Module) -> dict[str, int]:
    """Total and non-embedding parameters (the input and output embeddings both excluded, once each
    when tied), the counts scaling studies plot against, as Pythia's do."""
    total = model.num_parameters()
    embeddings = {
        id(p): p.numel()
        for module in (model.get_input_embeddings(), model.get_output_embeddings())
        if module is not None
        for p in module.parameters()
    }
    return {"total_params": total, "non_embedding_params": total - sum(embeddings.values())}


def resolve_dtype(dtype: str | torch.dtype, device: str, spec: ModelSpec | None = None) -> torch.dtype:
    """`auto`: half precision on a GPU (the checkpoint's own half type if it has one), float32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
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


def shared_tokenizer(specs: list[ModelSpec]) -> Tokenizer:
    """The suite's one tokenizer; a mismatch stops the run before any model is loaded."""
    first, first_vocab = None, None
    for spec in specs:
        try:
            tokenizer = load_tokenizer(spec.name, spec.revision)
        except OSError as e:
            raise InputError(str(e)) from None
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        if first is None:
            first, first_vocab = tokenizer, vocab
        elif vocab != first_vocab:
            raise InputError(
                f"{specs[0].name} and {spec.name} do not share one tokenizer "
                f"({len(first_vocab)} vs {len(vocab)} ids, or different token ids): "
                "the challenge compares distributions over the same vocabulary"
            )
    return first


def tokenize(tokenizer: Tokenizer, prefixes: list[str], special_tokens: bool = True) -> list[list[int]]:
    """Token ids per prefix, as transformers' AutoTokenizer encodes them by default: special tokens
    as the tokenizer's post-processor adds them (none with `special_tokens=False`, for answers,
    which continue a prefix), no truncation (left_truncate does that per model)."""
    if tokenizer.truncation is not None or tokenizer.padding is not None:
        # Some tokenizer.json files switch these on; transformers switches them off per call. A copy:
        # the loaded tokenizer is shared.
        tokenizer = Tokenizer.from_str(tokenizer.to_str())
        tokenizer.no_truncation()
        tokenizer.no_padding()
    token_ids = [encoding.ids for encoding in tokenizer.encode_batch(prefixes, add_special_tokens=special_tokens)]
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
            model = AutoModelForCausalLM.from_pretrained(
                spec.name, device_map=None if device == "cpu" else device, **kwargs
            )
        except torch.OutOfMemoryError:
            model = None  # retried below: in here, the traceback keeps the failed attempt's tensors alive
        if model is None:
            free_memory()
            warnings.warn(f"{spec.name} does not fit on {device}: loading it with device_map='auto'")
            model = AutoModelForCausalLM.from_pretrained(spec.name, device_map="auto", **kwargs)
    except (OSError, ValueError) as e:
        raise InputError(f"{spec.name}: cannot load the model ({str(e).splitlines()[0]})") from None
    return model.eval()


def context_length(model: torch.nn.Module) -> int:
    return getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", 2048)


def left_truncate(token_ids: list[list[int]], max_length: int, model_name: str, warn: bool = True) -> list[list[int]]:
    """Keep the last `max_length` tokens of each prefix: the next token depends on the end."""
    too_long = sum(len(ids) > max_length for ids in token_ids)
    if too_long and warn:
        warnings.warn(
            f"{too_long} {plural(too_long, 'prefix is', 'prefixes are')} longer than {model_name}'s "
            f"context of {max_length} tokens: their beginnings were cut off (for every model with that "
            "context)"
        )
    return [ids[-max_length:] for ids in token_ids]


def length_sorted_batches(lengths: np.ndarray, max_tokens: int, batch_size: int | None = None) -> list[np.ndarray]:
    """Index batches, longest prefixes first, each with at most `max_tokens` padded tokens."""
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        size = max(1, max_tokens // int(lengths[order[start]]))
        if batch_size:
            size = min(size, batch_size)
        batches.append(order[start : start + size])
        start += size
    return batches


# Config fields of architectures whose forward post-processes the logits after the output head
# (Gemma-2's soft-capping, Cohere's and Granite's scales): the hand-gathered head would skip it.
POSTPROCESSED_LOGITS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def keeps_per_row_logits(model: torch.nn.Module) -> bool:
    """Whether the model's own forward takes per-row positions in `logits_to_keep` (a 2-D integer
    tensor) and returns one row of logits for each, tried on a 2 x 2 batch. Transformers 5.23 does
    for nearly every architecture; 5.17 indexes such a tensor as a plain slice (the wrong shape),
    and a few architectures slice by hand."""
    device = model.get_input_embeddings().weight.device
    try:
        with torch.inference_mode():
            logits = model(
                input_ids=torch.zeros((2, 2), dtype=torch.long, device=device),
                logits_to_keep=torch.tensor([[1], [0]], device=device),
                use_cache=False,
            ).logits
    except Exception:  # e.g. a forward without logits_to_keep: the hand path below serves
        return False
    return tuple(logits.shape[:2]) == (2, 1)


def check_plain_head(model: torch.nn.Module) -> None:
    """The hand path applies the output head alone: refuse a model whose forward does more after it."""
    for field in POSTPROCESSED_LOGITS:
        if getattr(model.config, field, None) not in (None, 1):  # a scale of 1 changes nothing
            raise InputError(
                f"{model.config.name_or_path}: its forward post-processes the logits ({field}), which "
                f"needs per-row logits_to_keep, not supported by transformers {transformers.__version__} "
                "for this model: upgrade transformers (5.23 supports it)"
            )


@torch.inference_mode()
def last_token_probs(
    model: torch.nn.Module, token_ids: list[list[int]], vocab_size: int, library_head: bool
) -> torch.Tensor:
    """(batch, vocab_size) float32 probabilities after the last real token of each prefix.

    Only that position goes through the output head: by the model's own forward (`logits_to_keep`),
    or, with `library_head=False`, gathered here for transformers versions that cannot do it.
    """
    device = model.get_input_embeddings().weight.device
    lengths = torch.tensor([len(ids) for ids in token_ids], device=device)
    # Right padding: real tokens keep their positions, and causal attention never sees the pads, so
    # the pad id (0) does not matter.
    input_ids = torch.nn.utils.rnn.pad_sequence([torch.tensor(ids) for ids in token_ids], batch_first=True).to(device)
    attention_mask = (torch.arange(input_ids.shape[1], device=device)[None, :] < lengths[:, None]).long()
    if library_head:
        logits = model(
            input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=(lengths - 1)[:, None], use_cache=False
        ).logits[:, 0]
    else:
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        last_hidden = hidden[torch.arange(len(token_ids), device=hidden.device), lengths.to(hidden.device) - 1]
        head = model.get_output_embeddings()
        logits = head(last_hidden.to(head.weight.device))
    return torch.softmax(logits[:, :vocab_size].float(), dim=-1)


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (another C library or platform)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _glibc_malloc_trim()


# The host heap is trimmed once per this many batches. Each trim makes the next batch fault its
# pages in again: trimming after every batch cost 20% more CPU time, every 8th batch 0-3%, and
# memory stays flat in N either way (benchmarks/RESULTS.md, preprocessing memory at 32,000 prefixes).
TRIM_EVERY_BATCHES = 8


def release_freed_heap() -> None:
    """Give the pages of freed host memory back to the OS (glibc's malloc_trim; elsewhere nothing).

    A batch's host tensors (hidden states, logits, the softmax) are MBs each, of a new size in
    nearly every batch. glibc serves them from its heap and keeps what they free there, resident,
    and its free blocks fragment: memory grew with the number of batches, not with what is alive
    (32,000 prefixes through the suite on CPU: 1.1-1.2 GB, of which the heap held 0.75 GB free and
    0.17 GB in use; benchmarks.preprocess_memory). malloc_trim(0) returns every free page,
    wherever it lies in the heap."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def halving_on_oom(
    run: Callable[[np.ndarray], object],
    batches: list[np.ndarray],
    lengths: np.ndarray,
    max_tokens: int,
    batch_size: int | None,
    bar: tqdm,
    desc: str,
) -> Iterator[tuple[np.ndarray, object]]:
    """Yield (batch, run(batch)) for each batch of prefix indices, advancing `bar` by its tokens.

    A batch that runs out of memory is not lost: the token budget and the batch size halve, and it
    and the batches after it are formed again (accelerate's find_executable_batch_size would restart
    from scratch with 0.9x one batch size; here the finished rows stay). A single prefix that does
    not fit raises. Every TRIM_EVERY_BATCHES batches, the host memory they freed goes back to the OS
    (`release_freed_heap`)."""
    batches, done = list(batches), 0
    while batches:
        batch = batches.pop(0)
        try:
            result = run(batch)
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                raise
            result = None  # handled below, once the traceback has let go of the failed batch's tensors
        if result is None:
            free_memory()
            max_tokens = max(int(lengths[batch].max()), max_tokens // 2)
            batch_size = max(1, (batch_size or len(batch)) // 2)
            bar.write(f"{desc}: out of memory, batches halved to {max_tokens} tokens")
            remaining = np.concatenate([batch, *batches])
            batches = [remaining[b] for b in length_sorted_batches(lengths[remaining], max_tokens, batch_size)]
            continue
        yield batch, result
        done += 1
        if done % TRIM_EVERY_BATCHES == 0:
            release_freed_heap()
        bar.update(int(lengths[batch].sum()))


def next_token_probs(
    model: torch.nn.Module,
    token_ids: list[list[int]],
    out: np.ndarray,
    *,
    max_tokens: int | None = None,
    batch_size: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    desc: str = "",
    progress: bool = True,
) -> dict:
    """Fill `out[i]` (one row per prefix, any float dtype) with the model's next-token distribution.

    Sharded (`world_size` > 1), a process fills only the rows of its batches: the batches are
    formed over all prefixes and dealt out round-robin, so every row is computed in the same batch
    as in a single-process run and the file they all write is identical. Batches halve on
    out-of-memory instead of dying. Returns the rows filled and timing stats.
    """
    device = model.get_input_embeddings().weight.device
    library_head = keeps_per_row_logits(model)
    if not library_head:
        check_plain_head(model)
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS["cuda" if device.type == "cuda" else "cpu"]
    lengths = np.array([len(ids) for ids in token_ids])
    max_tokens = max(max_tokens, int(lengths.max()))
    batches = length_sorted_batches(lengths, max_tokens, batch_size)[rank::world_size]
    rows = np.sort(np.concatenate(batches)) if batches else np.zeros(0, dtype=np.int64)
    start_time = time.perf_counter()
    with progress_bar(
        total=int(lengths[rows].sum()), desc=desc, unit="tok", unit_scale=True, leave=False, disable=not progress
    ) as bar:
        run = lambda batch: last_token_probs(model, [token_ids[i] for i in batch], out.shape[1], library_head)
        for batch, probs in halving_on_oom(run, batches, lengths, max_tokens, batch_size, bar, desc):
            out[batch] = probs.cpu().numpy()
    seconds = time.perf_counter() - start_time
    tokens = int(lengths[rows].sum())
    return {"rows": rows, "seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / max(seconds, 1e-9)}


@torch.inference_mode()
def answer_logprobs(
    model: torch.nn.Module, token_ids: list[list[int]], answer_ids: list[list[int]], vocab_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Teacher-forced scores of each prefix's answer: (log-likelihood of the whole answer, whether
    every answer token is the model's top-1 given the tokens before it, i.e. greedy decoding writes
    the answer, and whether the first answer token is its top-1). Over the tokenizer's `vocab_size`
    ids, as the dataset's distributions are (Pythia pads its output head past them).

    Left-padded, with position ids that skip the pads, so the answers end every row together and
    the model's own forward (`logits_to_keep`, the last positions only) gives their logits."""
    device = model.get_input_embeddings().weight.device

    def left_padded(rows: list[list[int]]) -> torch.Tensor:  # right padding, flipped twice
        return torch.nn.utils.rnn.pad_sequence([torch.tensor(r).flip(0) for r in rows], batch_first=True).flip(1)

    input_ids = left_padded([prefix + answer for prefix, answer in zip(token_ids, answer_ids)])
    attention_mask = left_padded([[1] * (len(prefix) + len(answer)) for prefix, answer in zip(token_ids, answer_ids)])
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
    width = max(map(len, answer_ids))  # the last prefix position predicts the first answer token
    logits = model(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        position_ids=position_ids.to(device),
        logits_to_keep=width + 1,
        use_cache=False,
    ).logits
    logprobs = torch.log_softmax(logits[:, -width - 1 : -1, :vocab_size].float(), dim=-1)
    # Answers right-aligned in `width` columns: column k's logprobs predict column k's token.
    targets = left_padded(answer_ids).to(logprobs.device)
    in_answer = left_padded([[1] * len(answer) for answer in answer_ids]).bool().to(logprobs.device)
    target_logprobs = logprobs.gather(2, targets[:, :, None])[:, :, 0]
    hit = (logprobs.argmax(-1) == targets) | ~in_answer
    rows = torch.arange(len(answer_ids), device=logprobs.device)
    first = width - torch.tensor([len(answer) for answer in answer_ids], device=logprobs.device)
    return (
        torch.where(in_answer, target_logprobs, 0.0).sum(1).double().cpu().numpy(),
        hit.all(1).cpu().numpy(),
        hit[rows, first].cpu().numpy(),
    )


def answer_scores(
    model: torch.nn.Module,
    token_ids: list[list[int]],
    answer_ids: list[list[int]],
    vocab_size: int,
    *,
    choice_ids: list[list[int]] | None = None,
    max_tokens: int | None = None,
    batch_size: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    desc: str = "",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """`answer_logprobs` over every prefix, batched like `next_token_probs` (sorted by length under a
    token budget, the batches dealt out round-robin under `accelerate launch`, halved when one runs
    out of memory: `halving_on_oom`). Returns arrays over all prefixes: `rows` (this process's), `loglik`,
    `greedy`, `first_top1`; rows of other processes are NaN/False.

    A choice task (`choice_ids`: each choice's token ids, every answer one of them) scores every
    choice as the continuation of every prefix, as lm-evaluation-harness does for multiple choice:
    `choice_logprobs` (prefixes, choices) holds each choice's whole log-likelihood, and the other
    arrays are the answer's own, its choice's."""
    if choice_ids:
        per_choice = [
            answer_scores(
                model,
                token_ids,
                [choice] * len(token_ids),
                vocab_size,
                max_tokens=max_tokens,
                batch_size=batch_size,
                rank=rank,
                world_size=world_size,
                desc=f"{desc} {k + 1}/{len(choice_ids)}",
                progress=progress,
            )
            for k, choice in enumerate(choice_ids)
        ]
        gold = np.array([choice_ids.index(answer) for answer in answer_ids])
        scores = {
            name: np.stack([s[name] for s in per_choice], axis=1)[np.arange(len(gold)), gold]
            for name in ("loglik", "greedy", "first_top1")
        }
        return {
            **scores,
            "choice_logprobs": np.stack([s["loglik"] for s in per_choice], axis=1),
            "rows": per_choice[0]["rows"],
        }
    device = model.get_input_embeddings().weight.device
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS["cuda" if device.type == "cuda" else "cpu"]
    lengths = np.array([len(p) + len(a) for p, a in zip(token_ids, answer_ids)])
    max_tokens = max(max_tokens, int(lengths.max()))
    batches = length_sorted_batches(lengths, max_tokens, batch_size)[rank::world_size]
    n = len(token_ids)
    scores = {"loglik": np.full(n, np.nan), "greedy": np.zeros(n, dtype=bool), "first_top1": np.zeros(n, dtype=bool)}
    with progress_bar(
        total=int(sum(lengths[b].sum() for b in batches)),
        desc=desc,
        unit="tok",
        unit_scale=True,
        leave=False,
        disable=not progress,
    ) as bar:
        run = lambda batch: answer_logprobs(
            model, [token_ids[i] for i in batch], [answer_ids[i] for i in batch], vocab_size
        )
        for batch, result in halving_on_oom(run, batches, lengths, max_tokens, batch_size, bar, desc):
            scores["loglik"][batch], scores["greedy"][batch], scores["first_top1"][batch] = result
    scores["rows"] = np.sort(np.concatenate(batches)) if batches else np.zeros(0, dtype=np.int64)
    return scores


def ceiling_scores(
    spec: ModelSpec,
    token_ids: list[list[int]],
    target_probs: np.ndarray,
    scratch: Path,
    *,
    device: str | None = None,
    dtype: str | torch.dtype = "auto",
    cache_dir: Path | None = None,
    max_tokens: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> dict | None:
    """The noise ceiling: `spec`, another seed of the target (same size, data and recipe), run like
    the suite's models into `scratch` (a float16 file, removed after), then scored against the
    target's rows (`target_probs`, the dataset's column) prefix by prefix: its top-1 id, KL(target
    || it) and alpha. How often another seed agrees with the target is how predictable the target
    is at all. Under `accelerate launch` every process runs its share; the main process returns the
    scores (with the model's summary row), the others None."""
    from harness.scoring.metrics import distribution_metrics, target_rows
    from harness.scoring.top1 import top1

    state = PartialState()
    shape = (len(token_ids), 1, target_probs.shape[1])
    if state.is_main_process:
        scratch.parent.mkdir(parents=True, exist_ok=True)
        np.lib.format.open_memmap(scratch, mode="w+", dtype=np.float16, shape=shape).flush()
    state.wait_for_everyone()
    try:
        probs = np.lib.format.open_memmap(scratch, mode="r+")
        _, summary = run_suite(
            [spec],
            token_ids,
            target_probs.shape[1],
            device=device,
            dtype=dtype,
            cache_dir=cache_dir,
            max_tokens=max_tokens,
            batch_size=batch_size,
            progress=progress,
            out=probs,
        )
        probs.flush()
        state.wait_for_everyone()
        if not state.is_main_process:
            return None
        scores: dict[str, list] = {"top1": [], "kl": [], "alpha": []}
        for start in range(0, len(token_ids), 256):  # 256 rows at a time: memory stays flat
            target_block = np.asarray(target_probs[start : start + 256])
            target = target_rows(target_block, top1(target_block))
            block = np.asarray(probs[start : start + 256, 0])
            metrics = distribution_metrics(block, target)
            scores["top1"] += top1(block).tolist()
            scores["kl"] += metrics["kl"].tolist()
            scores["alpha"] += metrics["alpha"].tolist()
        del probs
        return {"model": summary[0], **scores}
    finally:
        state.wait_for_everyone()
        if state.is_main_process:
            scratch.unlink(missing_ok=True)


def fit_answers(token_ids: list[list[int]], answer_ids: list[list[int]], context: int) -> list[list[int]]:
    """Each prefix cut from the left so that it and its answer fit the model's context."""
    return [prefix[-max(1, context - len(answer)) :] for prefix, answer in zip(token_ids, answer_ids)]


def gathered_answer_scores(state: PartialState, scores: dict[str, np.ndarray]) -> dict[str, list]:
    """Every process's rows of `answer_scores` in one dict of per-prefix lists (JSON-ready)."""
    parts = [scores]
    if state.num_processes > 1:
        from accelerate.utils import gather_object

        parts = gather_object([scores])
    merged = {name: values.copy() for name, values in scores.items() if name != "rows"}
    for part in parts:
        for name in merged:
            merged[name][part["rows"]] = part[name][part["rows"]]
    return {name: values.tolist() for name, values in merged.items()}


def free_memory() -> None:
    """Return freed memory to the device (after `del model`, or a failed attempt), on any backend,
    and the host's to the OS."""
    release_memory()  # with no objects: gc.collect(), then the device's empty_cache()
    release_freed_heap()


def run_suite(
    specs: list[ModelSpec],
    token_ids: list[list[int]],
    vocab_size: int,
    *,
    device: str | None = None,
    dtype: str | torch.dtype = "auto",
    cache_dir: Path | None = None,
    max_tokens: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    load: Callable[[ModelSpec, str, torch.dtype], torch.nn.Module] | None = None,
    out: np.ndarray | None = None,
    answer_ids: list[list[int]] | None = None,
    choice_ids: list[list[int]] | None = None,
) -> tuple[np.ndarray, list[dict]]:
    """Every model's next-token distribution after every prefix, models in the order given.

    Fills `out`, the (prefixes, models, vocab_size) float16 array (default: a new one in memory;
    preprocess_train.py passes a map of the dataset file, so memory does not grow with the number
    of prefixes), and returns it with one summary row per model (name, revision, dtype, parameter
    counts, timings, `from_cache`). Each model is loaded with `load` (default: `load_model`; the
    benchmark passes its in-memory models), run, and freed before the next. With `cache_dir`, a
    finished model's slice is stored there and a later run with the same model weights, token ids,
    dtype and vocabulary reads it back. Under `accelerate launch`, each process fills its own
    rows of its own map (`out`) of one shared file, and nothing is gathered: the main process
    alone copies cached slices in and, once all have written a model's rows, writes its slice to
    the cache. The caller waits for all processes before it reads the file.

    With `answer_ids` (one list per prefix), each model also scores every prefix's answer in a
    second pass (`answer_scores`), and its summary row gets `answers`: per prefix, the answer's
    log-likelihood, whether greedy decoding writes it, whether its first token is the top-1, and
    with `choice_ids` (each choice's ids, e.g. " True" and " False") each choice's log-likelihood.
    """
    state = PartialState()
    device = device or str(state.device)
    load = load or load_model
    progress = progress and state.is_local_main_process
    if answer_ids is not None:  # what each prefix must leave room for in the context
        longest_continuations = [max([answer, *(choice_ids or [])], key=len) for answer in answer_ids]
    if state.num_processes > 1 and not isinstance(out, np.memmap):
        raise ValueError("under accelerate launch, `out` must be each process's map of one shared file")
    # float16 from the start: the original's float64 array was 4x this.
    probs = np.empty((len(token_ids), len(specs), vocab_size), dtype=np.float16) if out is None else out
    summary, contexts_seen = [], set()
    for j, spec in enumerate(progress_bar(specs, desc="models", unit="model", disable=not progress)):
        model_dtype = resolve_dtype(dtype, device, spec)
        row = {"name": spec.stored_name, "revision": spec.revision, "dtype": str(model_dtype).removeprefix("torch.")}
        if spec.label is not None:
            row["path"] = spec.name
        summary.append(row)
        answers = None if answer_ids is None else [answer_ids, choice_ids]
        key = cache_key(spec, token_ids, model_dtype, vocab_size, answers) if cache_dir is not None else None
        cached = read_cached_slice(cache_dir, key, (len(token_ids), vocab_size)) if key else None
        if cached is not None and (
            answer_ids is None or "answers" in cached[1]
        ):  # every process sees the same cache: none is written while they look
            if state.is_main_process:
                copy_rows(probs[:, j], cached[0])
            # The cache holds measurements (sizes, timings); names and paths are this run's.
            row.update({k: v for k, v in cached[1].items() if k not in row}, from_cache=True)
            continue
        start = time.perf_counter()
        model = load(spec, device, model_dtype)
        load_seconds = time.perf_counter() - start
        context = context_length(model)
        truncated = left_truncate(token_ids, context, spec.name, warn=context not in contexts_seen)
        contexts_seen.add(context)  # one warning per context length, not one per model (8 for 2-shot RTE)
        stats = next_token_probs(
            model,
            truncated,
            probs[:, j],
            max_tokens=max_tokens,
            batch_size=batch_size,
            rank=state.process_index,
            world_size=state.num_processes,
            desc=short_name(spec.name),
            progress=progress,
        )
        if answer_ids is not None:
            answer_start = time.perf_counter()
            row["answers"] = gathered_answer_scores(
                state,
                answer_scores(
                    model,
                    fit_answers(token_ids, longest_continuations, context_length(model)),
                    answer_ids,
                    vocab_size,
                    choice_ids=choice_ids,
                    max_tokens=max_tokens,
                    batch_size=batch_size,
                    rank=state.process_index,
                    world_size=state.num_processes,
                    desc=short_name(spec.name) + " answers",
                    progress=progress,
                ),
            )
        row.update(
            **param_counts(model),
            load_seconds=round(load_seconds, 3),
            seconds=round(stats["seconds"], 3),
            tokens=stats["tokens"],
            tokens_per_second=round(stats["tokens_per_second"], 1),
            from_cache=False,
        )
        if answer_ids is not None:
            row["answer_seconds"] = round(time.perf_counter() - answer_start, 3)
        del model
        free_memory()
        if key:
            state.wait_for_everyone()  # every process's rows of this model are in the file
            if state.is_main_process:
                write_cached_slice(cache_dir, key, probs[:, j], {k: v for k, v in row.items() if k != "from_cache"})
    return probs, summary
