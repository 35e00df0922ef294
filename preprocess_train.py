"""Build a challenge dataset: run a model suite over a set of prefixes and pickle every model's
next-token distribution as a (prefixes x models x vocabulary) float16 tensor.

    python preprocess_train.py                                   # Pythia 70m..2.8b -> 12b, 100 Wikipedia openings
    python preprocess_train.py --dataset glue-rte --dataset-path rte-train.tsv --out data/glue-rte.pkl
    python preprocess_train.py --models small/ medium/ large/ --dataset my_prefixes.txt

The last model is the target. Each finished model's slice is cached, so an interrupted run
resumes where it stopped; `accelerate launch preprocess_train.py ...` shards the batches over
processes (GPUs) and gathers one dataset identical to a single-process run.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from harness import InputError
from harness.dataset_io import save_dataset
from harness.prefixes import NAMED, build_prefixes

PYTHIA = [f"EleutherAI/pythia-{size}" for size in ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "12b")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=PYTHIA,
                        help="hub ids or local directories, smallest first; the last is the target (default: Pythia)")
    parser.add_argument("--revision", action="append", default=[],
                        help="checkpoint for all models (e.g. step143000) or MODEL=REVISION for one (repeatable)")
    parser.add_argument("--dataset", default="wikipedia",
                        help=f"{' or '.join(NAMED)}, or a .txt (one prefix per line) or .jsonl ({{\"text\": ...}}) file")
    parser.add_argument("--dataset-path", help="local copy for a named dataset (wikipedia: jsonl/parquet; glue-rte: GLUE TSV)")
    parser.add_argument("--num-prefixes", type=int, help="how many prefixes (default: 100 for named datasets, all of a file)")
    parser.add_argument("--seed", type=int, default=0, help="seeds which prefixes are drawn")
    parser.add_argument("--out", type=Path, help="output pickle (default: data/<dataset>.pkl); the sidecar is <out>.json")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"],
                        help="model dtype (auto: half precision on GPU, float32 on CPU)")
    parser.add_argument("--device", help="cuda, cuda:1, cpu, ... (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, help="max prefixes per batch (default: automatic, by token budget)")
    parser.add_argument("--max-tokens", type=int, help="max padded tokens per batch (default: 32768 on GPU, 4096 on CPU)")
    parser.add_argument("--cache-dir", type=Path, help="per-model cache for resuming (default: <out>.cache, removed on success)")
    parser.add_argument("--meta-json", type=Path, help="JSON file whose content is recorded in the sidecar under 'extra'")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        parser.error("--models needs at least two models: inputs, then the target")
    if args.out is None:
        stem = args.dataset if args.dataset in NAMED else Path(args.dataset).stem
        args.out = Path("data") / f"{stem}.pkl"
    return args


def model_specs(models: list[str], revisions: list[str]) -> list:
    from harness.inference import ModelSpec

    default, per_model = None, {}
    for revision in revisions:
        name, sep, rev = revision.rpartition("=")
        if sep:
            if name not in models:
                raise InputError(f"--revision {revision}: {name} is not one of --models")
            per_model[name] = rev
        else:
            default = rev
    return [ModelSpec(name, per_model.get(name, default)) for name in models]


def read_meta_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (--meta-json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON (--meta-json): {e}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.formatwarning = lambda message, *_: f"warning: {message}\n"
    # Prefixes and tokenizer come first: bad input should fail in seconds, before any model loads.
    prefixes, prefix_rule = build_prefixes(args.dataset, args.num_prefixes, args.seed, args.dataset_path)
    extra = read_meta_json(args.meta_json) if args.meta_json else None

    import torch
    import transformers
    from accelerate import PartialState
    from tqdm.auto import tqdm

    from harness import inference

    # Under `accelerate launch`, each process runs its share of the batches; a plain run is one process.
    state = PartialState(cpu=args.device == "cpu")
    device = args.device or str(state.device)
    specs = model_specs(args.models, args.revision)
    tokenizer = inference.shared_tokenizer(specs)
    vocab_size = len(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    token_ids = inference.tokenize(tokenizer, prefixes)
    cache_dir = args.cache_dir or args.out.with_name(args.out.name + ".cache")
    quiet = args.no_progress or not state.is_local_main_process
    if quiet:
        transformers.utils.logging.disable_progress_bar()

    # float16 from the start: the original's float64 array was 4x this.
    probs = np.empty((len(prefixes), len(specs), vocab_size), dtype=np.float16)
    summary = []
    for j, spec in enumerate(tqdm(specs, desc="models", unit="model", disable=quiet)):
        dtype = inference.resolve_dtype(args.dtype, device, spec)
        row = {"name": spec.name, "revision": spec.revision, "dtype": str(dtype).removeprefix("torch.")}
        summary.append(row)
        key = inference.cache_key(spec, prefixes, dtype, vocab_size)
        cached = inference.read_cached_slice(cache_dir, key)
        if cached is not None and cached.shape == (len(prefixes), vocab_size):
            probs[:, j] = cached
            row["from_cache"] = True
            continue
        start = time.perf_counter()
        model = inference.load_model(spec, device, dtype)
        load_seconds = time.perf_counter() - start
        model_ids = inference.left_truncate(token_ids, inference.context_length(model), spec.name)
        stats = inference.next_token_probs(model, model_ids, probs[:, j], pad_id=pad_id, max_tokens=args.max_tokens,
                                           batch_size=args.batch_size, rank=state.process_index,
                                           world_size=state.num_processes, desc=Path(spec.name).name,
                                           progress=not quiet)
        row.update(parameters=model.num_parameters(), load_seconds=round(load_seconds, 3),
                   seconds=round(stats["seconds"], 3), tokens=stats["tokens"],
                   tokens_per_second=round(stats["tokens_per_second"], 1), from_cache=False)
        del model
        inference.free_memory()
        if state.num_processes > 1:
            from accelerate.utils import gather_object
            for rows, values in gather_object([(stats["rows"], probs[stats["rows"], j])]):
                probs[rows, j] = values
        if state.is_main_process:
            inference.write_cached_slice(cache_dir, key, probs[:, j])

    if not state.is_main_process:
        return 0
    metadata = {
        "format": "pickle of (model_names, sentences, probs); probs[i, j, k] = P(token k | sentence i) under "
                  "model j, float16; the last model is the target",
        "models": summary,
        "target_model": specs[-1].name,
        "num_prefixes": len(prefixes),
        "vocab_size": vocab_size,
        "prefixes": prefix_rule,
        "device": device,
        "num_processes": state.num_processes,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])],
    }
    if extra is not None:
        metadata["extra"] = extra
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(args.out, [spec.name for spec in specs], prefixes, probs, metadata)
    if args.cache_dir is None:
        shutil.rmtree(cache_dir, ignore_errors=True)

    print(f"\nwrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB): {len(prefixes)} prefixes x "
          f"{len(specs)} models x {vocab_size} tokens, float16; metadata in {args.out.with_suffix('.json')}")
    for row in summary:
        speed = "from cache" if row["from_cache"] else (f"{row['seconds']:.2f} s, {row['tokens_per_second']:,.0f} tok/s,"
                                                        f" load {row['load_seconds']:.2f} s")
        print(f"  {row['name']:<40} {speed}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\ninterrupted: finished models are cached; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
