"""Benchmark (not a test): the original challenge's preprocessing loop against the project's, side
by side in one process on the same random-weight models and prefixes; model loading; and the
overhead of challenge.py on a large dataset.

    python3 -m benchmarks.bench --mode cpu    # small models on the CPU: anyone can run it
    python3 -m benchmarks.bench --mode gpu    # random-weight models of the real Pythia shapes on a GPU
    python3 -m benchmarks.bench --mode scale  # challenge.py on synthetic N x 7 x 50,277 datasets (benchmarks.scale)

On a GPU with a 10-minute limit per command, run it in parts (e.g. `--skip loading challenge`,
then `--skip inference memory challenge --load-sizes 1.4b 12b`): saving and loading 12b's 24 GB
twice takes minutes.

Prints markdown tables (and writes them with --out). The original-style loop
(benchmarks.original) is the original challenge's: one prefix at a time, float32 weights,
logits at every position, a float64 host array; its checkpoints were loaded in float32 on the
CPU, then moved to the GPU.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import platform
import tempfile
import time
import tracemalloc
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import harness.cli
from benchmarks import scale
from harness import InputError
from harness.data.dataset import load_dataset, save_dataset
from harness.data.files import check_writable
from harness.data.prefixes import build_prefixes
from harness.data.tokenizer import load_tokenizer
from harness.scoring.top1 import input_model_reach, target_view, top1

if TYPE_CHECKING:  # torch and transformers load once the command line is read: --help and --mode scale need neither
    import torch
    from transformers import GPTNeoXForCausalLM

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "data"
# hidden, layers, heads, padded vocabulary: the published Pythia configurations.
PYTHIA_SHAPES = {
    "70m": (512, 6, 8, 50304),
    "160m": (768, 12, 12, 50304),
    "410m": (1024, 24, 16, 50304),
    "1b": (2048, 16, 8, 50304),
    "1.4b": (2048, 24, 16, 50304),
    "2.8b": (2560, 32, 32, 50304),
    "6.9b": (4096, 32, 32, 50432),
    "12b": (5120, 36, 40, 50688),
}
CPU_SIZES = ["70m", "160m"]
GPU_SIZES = ["70m", "410m", "1.4b", "2.8b", "12b"]


def neox(shape: tuple, device: str) -> GPTNeoXForCausalLM:
    """A random-weight model of a Pythia shape (hidden, layers, heads, padded vocabulary), float32."""
    import torch
    from transformers import GPTNeoXForCausalLM

    from suite.neox import neox_config

    hidden, layers, heads, vocab = shape
    torch.manual_seed(0)
    with torch.device(device):
        return GPTNeoXForCausalLM(neox_config(hidden, layers, heads, vocab, context=2048)).eval()


def tokenizer_and_prefixes(num_prefixes: int) -> tuple:
    """The real Pythia tokenizer and real prefixes where ../shared/data has them, else the bundled suite's."""
    from harness.models import inference

    path = SHARED / "pythia-tokenizer"
    if path.exists():
        tokenizer = load_tokenizer(str(path))
        wiki = SHARED / "corpus" / "wikipedia-en-0.jsonl"
        rte = SHARED / "corpus" / "rte-train.tsv"
        sets = {
            "short": build_prefixes("wikipedia", num_prefixes, 0, str(wiki)).prefixes,
            "long": build_prefixes("glue-rte", num_prefixes, 0, str(rte)).prefixes,
        }
        source = "Pythia tokenizer; Wikipedia openings and RTE prompts from ../shared/data"
    else:
        tokenizer = load_tokenizer("suite-1.5m")  # the bundled suite's, committed
        sets = {
            "short": build_prefixes(str(ROOT / "data/prefixes/wikipedia.txt"), num_prefixes).prefixes,
            "long": build_prefixes(str(ROOT / "data/prefixes/glue-rte.jsonl"), num_prefixes).prefixes,
        }
        source = "the bundled suite's tokenizer; the bundled prefix files"
    return tokenizer, {name: inference.tokenize(tokenizer, p) for name, p in sets.items()}, source


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int = 2):
    """Best of `repeats` wall-clock runs (after the first, which also warms up)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best, result


def matmul_tflops(device: str, dtype: torch.dtype) -> float:
    import torch

    n = 8192 if device.startswith("cuda") else 2048
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    seconds, _ = timed(lambda: a @ b, device, repeats=5)
    return 2 * n**3 / seconds / 1e12


def project_path(
    sizes: list, token_ids: list, vocab_size: int, device: str, dtype: torch.dtype, load
) -> tuple[np.ndarray, list]:
    """preprocess_train.py's inference (harness.models.inference.run_suite), on the benchmark's random-weight models."""
    from harness.models import inference

    return inference.run_suite(
        [inference.ModelSpec(size) for size in sizes],
        token_ids,
        vocab_size,
        device=device,
        dtype=dtype,
        progress=False,
        load=load,
    )


def bench_inference(sizes: list, sets: dict, vocab_size: int, device: str, dtype: torch.dtype, peak: float) -> list:
    import torch

    from benchmarks.original import original_loop
    from harness.models import inference

    rows = []
    for size in sizes:
        model = neox(PYTHIA_SHAPES[size], device)  # float32, as the original ran
        head_params = model.get_output_embeddings().weight.numel()
        body_params = model.num_parameters() - head_params - model.get_input_embeddings().weight.numel()
        results = {}
        for name, token_ids in sets.items():
            results[name] = {"original": timed(lambda: original_loop(model, token_ids, vocab_size, device), device)}
        model.to(dtype)
        for name, token_ids in sets.items():
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            # The project's path is preprocess_train.py's, on this model; its own inference timing, best of 2.
            runs = [project_path([size], token_ids, vocab_size, device, dtype, lambda *_: model) for _ in range(2)]
            seconds = min(summary[0]["seconds"] for _, summary in runs)
            out = runs[-1][0][:, 0]
            gpu_peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
            original_seconds, original = results[name]["original"]
            tokens = sum(map(len, token_ids))
            # FLOPs the answer needs: every layer on every real token, the output head once per prefix
            # (the input embedding is a lookup, not arithmetic).
            floor = 2 * (body_params * tokens + head_params * len(token_ids)) / (peak * 1e12)
            rows.append(
                {
                    "size": size,
                    "set": name,
                    "prefixes": len(token_ids),
                    "tokens": tokens,
                    "original_s": original_seconds,
                    "project_s": seconds,
                    "speedup": original_seconds / seconds,
                    "tokens_per_s": tokens / seconds,
                    "floor_s": floor,
                    "vs_floor": seconds / floor,
                    "gpu_peak_gib": gpu_peak,
                    "top1_agreement": float((original.argmax(1) == top1(out)).mean()),
                }
            )
        model = None  # drop the last reference, so that free_memory returns its memory
        inference.free_memory()
    return rows


def bench_output_memory(sizes: list, token_ids: list, vocab_size: int, device: str, dtype: torch.dtype) -> dict:
    """Host memory the output takes while the project's path runs all sizes: vs its float16 size."""
    tracemalloc.start()
    probs, _ = project_path(
        sizes,
        token_ids,
        vocab_size,
        device,
        dtype,
        lambda spec, device, dtype: neox(PYTHIA_SHAPES[spec.name], device).to(dtype),
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "float16_bytes": probs.nbytes,
        "peak_bytes": peak,
        "ratio": peak / probs.nbytes,
        "original_float64_bytes": probs.size * 8,
    }


def bench_loading(sizes: list, device: str, dtype: torch.dtype, workdir: Path) -> list:
    import torch
    from transformers import GPTNeoXForCausalLM

    from harness.models import inference

    rows = []
    for size in sizes:
        path = workdir / f"neox-{size}"
        neox(PYTHIA_SHAPES[size], "cpu").to(torch.float16).save_pretrained(path)  # float16 safetensors, as Pythia ships
        weights = sorted(path.glob("*.safetensors"))
        nbytes = sum(w.stat().st_size for w in weights)
        raw, _ = timed(lambda: [w.read_bytes() for w in weights], "cpu", repeats=3)

        def original_load():
            model = GPTNeoXForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
            sync(device)
            return model

        def project_load():
            model = inference.load_model(inference.ModelSpec(str(path)), device, dtype)
            sync(device)
            return model

        original, model = timed(original_load, device)
        del model
        inference.free_memory()
        project, model = timed(project_load, device)
        del model
        inference.free_memory()
        rows.append(
            {
                "size": size,
                "gb": nbytes / 1e9,
                "raw_s": raw,
                "original_s": original,
                "project_s": project,
                "speedup": original / project,
                "vs_raw": project / raw,
            }
        )
        for w in path.iterdir():
            w.unlink()
        path.rmdir()
    return rows


def bench_challenge(workdir: Path, num_prefixes: int, num_models: int = 7, vocab_size: int = 50277) -> dict:
    """challenge.py's load + validate + score against a bare pickle.load of the same file."""
    from harness.scoring.evaluate import Settings, score_dataset
    from strategies import REGISTRY, load_builtin

    rng = np.random.default_rng(0)
    probs = np.empty((num_prefixes, num_models, vocab_size), dtype=np.float16)
    for start in range(0, num_prefixes, 50):  # peaked rows, built in chunks to keep memory low
        x = rng.random((min(50, num_prefixes - start), num_models, vocab_size), dtype=np.float32) ** 16
        probs[start : start + 50] = x / x.sum(axis=2, keepdims=True)
    path = workdir / "big.pkl"
    save_dataset(path, [f"model-{j}" for j in range(num_models)], [f"prefix {i}" for i in range(num_prefixes)], probs)
    nbytes = probs.nbytes
    del probs, x
    gc.collect()
    load_builtin()

    def bare():
        with open(path, "rb") as f:
            return pickle.load(f)

    def project():
        return score_dataset(path, [REGISTRY["dummy"]], Settings(progress=False))

    def project_parts():
        start = time.perf_counter()
        dataset = load_dataset(path, check_values=False)
        loaded = time.perf_counter()
        from harness.data.dataset import check_probabilities

        check_probabilities(dataset)
        checked = time.perf_counter()
        view = target_view(dataset.probs, dataset.probs.shape[1] - 1)  # the engine's chunked pass
        input_model_reach(view.input_top1, view.target_top1)
        return {"load": loaded - start, "validate": checked - loaded, "score": time.perf_counter() - checked}

    times = {"bare": [], "project": []}
    for _ in range(3):  # alternate, so the page cache and the allocator treat both alike
        for name, fn in (("bare", bare), ("project", project)):
            start = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - start)
            del result
            gc.collect()
    parts = project_parts()
    memory = {}
    for name, fn in (("bare", bare), ("project", project)):
        tracemalloc.start()
        result = fn()
        memory[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del result
        gc.collect()
    path.unlink()
    bare_s, project_s = min(times["bare"]), min(times["project"])
    return {
        "shape": (num_prefixes, num_models, vocab_size),
        "array_bytes": nbytes,
        "bare_s": bare_s,
        "project_s": project_s,
        "ratio": project_s / bare_s,
        "parts": parts,
        "bare_peak": memory["bare"],
        "project_peak": memory["project"],
        "peak_vs_array": memory["project"] / nbytes,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["cpu", "gpu", "scale"], default="cpu")
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=list(PYTHIA_SHAPES),
        metavar="SIZE",
        help=f"Pythia shapes to run (default cpu: {CPU_SIZES}, gpu: {GPU_SIZES})",
    )
    parser.add_argument(
        "--load-sizes",
        nargs="*",
        choices=list(PYTHIA_SHAPES),
        metavar="SIZE",
        help="shapes for the load benchmark (default: the smallest and largest)",
    )
    harness.cli.add_device(parser, help="cuda, cuda:N or cpu (default: cuda in gpu mode, cpu in cpu mode)")
    harness.cli.add_num_prefixes(parser, "prefixes per set, short and long (default: 100)", default=100)
    parser.add_argument(
        "--challenge-prefixes",
        type=harness.cli.non_negative_int,
        default=1000,
        help="rows of the challenge.py dataset (0: skip)",
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=["inference", "memory", "loading", "challenge"])
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    parser.add_argument(
        "--scale",
        type=harness.cli.positive_int,
        nargs="+",
        default=[1000, 10000],
        metavar="N",
        help="--mode scale: prefixes per dataset (default: 1000 10000)",
    )
    scale.add_arguments(parser.add_argument_group("--mode scale (see benchmarks.scale)"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out:
        check_writable(args.out)
    if args.mode == "scale":
        lines = scale.scale_from_args(args, args.scale)
    else:
        lines = []
        measure_models(args, lambda line="": (print(line, flush=True), lines.append(line)))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


def measure_models(args: argparse.Namespace, emit) -> None:
    """--mode cpu or gpu: every part not in --skip, its tables through `emit`."""
    import torch
    import transformers
    from transformers.utils import logging as transformers_logging

    from harness.models import inference

    transformers_logging.disable_progress_bar()
    device = args.device or ("cuda" if args.mode == "gpu" else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--mode {args.mode} on {device}: this machine has no CUDA GPU (try --mode cpu)")
    sizes = args.sizes or (GPU_SIZES if args.mode == "gpu" else CPU_SIZES)
    load_sizes = args.load_sizes if args.load_sizes is not None else sorted({sizes[0], sizes[-1]}, key=sizes.index)
    dtype = inference.resolve_dtype("auto", device)
    device_name = (
        torch.cuda.get_device_name()
        if device.startswith("cuda")
        else f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    )
    tokenizer, sets, source = tokenizer_and_prefixes(args.num_prefixes)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    peak = matmul_tflops(device, dtype)
    emit(
        f"Device: {device_name}; torch {torch.__version__}, transformers {transformers.__version__}, "
        f"numpy {np.__version__}; {date.today()}; project dtype {str(dtype).removeprefix('torch.')}, "
        f"measured matmul peak {peak:.2f} TFLOP/s"
    )
    emit(
        f"Prefixes: {source}; "
        + "; ".join(
            f"{k}: {len(v)} prefixes, {min(map(len, v))}-{max(map(len, v))} tokens, {sum(map(len, v))} in all"
            for k, v in sets.items()
        )
    )
    if "inference" not in args.skip:
        emit(
            "\n| model | set | original loop s | project s | speedup | project tok/s | compute floor s | vs floor | "
            "GPU peak GiB | top-1 agreement |"
        )
        emit("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in bench_inference(sizes, sets, vocab_size, device, dtype, peak):
            emit(
                f"| {r['size']} | {r['set']} | {r['original_s']:.3f} | {r['project_s']:.3f} | {r['speedup']:.1f}x | "
                f"{r['tokens_per_s']:,.0f} | {r['floor_s']:.4f} | {r['vs_floor']:.1f}x | {r['gpu_peak_gib']:.2f} | "
                f"{r['top1_agreement']:.2f} |"
            )
    if "memory" not in args.skip:
        m = bench_output_memory(sizes, sets["long"], vocab_size, device, dtype)
        emit(
            f"\nOutput host memory ({len(sizes)} models x {args.num_prefixes} prefixes): peak "
            f"{m['peak_bytes'] / 1e6:.1f} MB = {m['ratio']:.3f}x its float16 size ({m['float16_bytes'] / 1e6:.1f} MB); "
            f"the original's float64 array: {m['original_float64_bytes'] / 1e6:.1f} MB"
        )
    if "loading" not in args.skip and load_sizes:
        emit_loading(load_sizes, device, dtype, emit)
    if "challenge" not in args.skip and args.challenge_prefixes:
        emit_challenge(args.challenge_prefixes, emit)


def emit_loading(load_sizes: list, device: str, dtype: torch.dtype, emit) -> None:
    emit(
        "\n| model | float16 safetensors GB | raw read s | original load s (float32 CPU, then .to) | project load s | "
        "speedup | project vs raw read |"
    )
    emit("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as workdir:
        for r in bench_loading(load_sizes, device, dtype, Path(workdir)):
            emit(
                f"| {r['size']} | {r['gb']:.2f} | {r['raw_s']:.2f} | {r['original_s']:.2f} | {r['project_s']:.2f} | "
                f"{r['speedup']:.1f}x | {r['vs_raw']:.2f}x |"
            )


def emit_challenge(num_prefixes: int, emit) -> None:
    with tempfile.TemporaryDirectory(dir=ROOT / "build" if (ROOT / "build").exists() else None) as workdir:
        c = bench_challenge(Path(workdir), num_prefixes)
    p = c["parts"]
    emit(
        f"\nchallenge.py on a {'x'.join(map(str, c['shape']))} float16 dataset ({c['array_bytes'] / 1e6:.0f} MB): "
        f"bare pickle.load {c['bare_s']:.2f} s; load + validate + score {c['project_s']:.2f} s = {c['ratio']:.2f}x "
        f"(load {p['load']:.2f}, validate {p['validate']:.2f}, score {p['score']:.2f}); peak traced memory "
        f"{c['project_peak'] / 1e6:.0f} MB = {c['peak_vs_array']:.2f}x the array (bare: {c['bare_peak'] / 1e6:.0f} MB)"
    )


if __name__ == "__main__":
    harness.cli.run(main)
