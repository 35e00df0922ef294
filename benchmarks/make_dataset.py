"""Synthetic datasets at the real scale: N prefixes x 7 Pythia-sized models x 50,277 tokens, float16,
in the original pickle format, for the scale benchmark (`benchmarks.scale`).

    python3 -m benchmarks.make_dataset --num-prefixes 10000 --out build/scale/synthetic-10000.pkl

The file is what `preprocess_train.py` writes: a protocol-5 pickle of `(model_names, sentences,
probs)` that plain `pickle.load` reads, and a JSON sidecar with the models' parameter counts
(Pythia's: 70m...2.8b are the inputs, 12b the target, as in the original challenge) and the
pickle's size and SHA-256.

The distributions are made so that strategies differ, as on real models. Per prefix, a latent
logit vector over the vocabulary is drawn from a Gumbel distribution (exponential upper tail: the
sorted softmax then falls off like a power of the rank, Zipf-like). Model m's logits are
`beta_i * sharpness_m * (latent + noise_m)`: the noise shrinks and the sharpness grows with
log size, so agreement with the target rises with size, and a per-prefix `beta_i` makes some
prefixes confident and others flat. In a third of the prefixes one token climbs with size (below
the top in small models, often above it in the large ones): the emergent cases. Pooling the inputs
beats the largest one alone, because their noises are independent.

Memory stays small whatever N: the array is generated CHUNK prefixes at a time and written into
the pickle's array in place (`harness.data.dataset.start_dataset`, as preprocess_train.py writes). Prefix i depends only on the
seed and i, so the first 1,000 rows of a 10,000-prefix file are the 1,000-prefix file's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from statistics import NormalDist

import numpy as np

import harness.cli
from harness.data.dataset import FORMAT, start_dataset
from harness.data.files import check_writable

# (name, non-embedding parameters, total parameters): the Pythia suite's published counts.
PYTHIA = [
    ("EleutherAI/pythia-70m", 18_915_328, 70_426_624),
    ("EleutherAI/pythia-160m", 85_056_000, 162_322_944),
    ("EleutherAI/pythia-410m", 302_311_424, 405_334_016),
    ("EleutherAI/pythia-1b", 805_736_448, 1_011_781_632),
    ("EleutherAI/pythia-1.4b", 1_208_602_624, 1_414_647_808),
    ("EleutherAI/pythia-2.8b", 2_517_652_480, 2_775_208_960),
    ("EleutherAI/pythia-12b", 11_327_027_200, 11_846_072_320),
]
VOCAB_SIZE = 50277  # Pythia's tokenizer
CHUNK = 8  # prefixes generated together: ~11 MB per float32 temporary at 7 x 50,277; fixed, so rows never depend on N

NOISE = (1.4, 0.3)  # std of each model's logit noise, smallest to largest (linear in log size)
SHARPNESS = (0.85, 1.15)  # inverse temperature, smallest to largest
BETA = (1.3, 0.35)  # per-prefix inverse temperature: log-normal, median and sigma of its log
EMERGENT_SHARE = 0.35  # prefixes with one token that climbs with size
EMERGENT_START = (0.5, 2.5)  # how far below the top that token starts (uniform, latent units)...
EMERGENT_RISE = (0.0, 3.5)  # ...and how much it rises from the smallest model to the largest
LOGIT_FLOOR = -30.0  # exp(-30) is far below float16's smallest value; avoids slow float32 denormals

# Standard normal quantiles at 65,536 evenly spaced probabilities: a uint16 draw looked up here is
# ~10x faster than numpy's float32 normal sampler, and fine-grained enough for noise.
_NORMAL = np.array([NormalDist().inv_cdf((k + 0.5) / 65536) for k in range(65536)], dtype=np.float32)


def log_size_position(non_embedding: list[int]) -> np.ndarray:
    """Each model's place between the smallest (0) and the largest (1), on a log scale of size."""
    log_size = np.log(np.asarray(non_embedding, dtype=np.float64))
    return ((log_size - log_size[0]) / (log_size[-1] - log_size[0])).astype(np.float32)


def chunk_probs(rng: np.random.Generator, num_prefixes: int, position: np.ndarray, vocab_size: int) -> np.ndarray:
    """Next-token distributions (num_prefixes, models, vocab_size), float32, for models at `position`
    (log_size_position), as the module docstring describes."""
    num_models = len(position)
    u = rng.random((num_prefixes, vocab_size), dtype=np.float32)
    latent = -np.log(-np.log(np.maximum(u, np.float32(2.0**-30))))  # Gumbel(0, 1)
    # Independent noise per model, from ONE draw: model m reads the draw shifted by m * shift tokens
    # (a strided view). The same token gets a different value in each model, at a seventh of the cost.
    shift = int(rng.integers(1, 4096))
    draw = _NORMAL[rng.integers(0, 65536, (num_prefixes, vocab_size + (num_models - 1) * shift), dtype=np.uint16)]
    noise = np.lib.stride_tricks.as_strided(
        draw,
        (num_prefixes, num_models, vocab_size),
        (draw.strides[0], shift * draw.strides[1], draw.strides[1]),
        writeable=False,
    )
    std = (NOISE[0] + (NOISE[1] - NOISE[0]) * position).astype(np.float32)
    x = noise * std[None, :, None]
    x += latent[:, None, :]
    # The emergent token: `start` below the latent's top in the smallest model, `rise` higher in the largest.
    rows = np.flatnonzero(rng.random(num_prefixes) < EMERGENT_SHARE)
    token = rng.integers(0, vocab_size, num_prefixes)[rows]
    start = rng.uniform(*EMERGENT_START, num_prefixes)[rows]
    rise = rng.uniform(*EMERGENT_RISE, num_prefixes)[rows]
    level = latent[rows].max(axis=1) - start
    where = (rows[:, None], np.arange(num_models)[None, :], token[:, None])
    x[where] = level[:, None] + rise[:, None] * position[None, :] + noise[where] * std[None, :]
    # Softmax of beta_i * sharpness_m * x (a positive factor: the max can be taken before it).
    beta = np.exp(rng.normal(np.log(BETA[0]), BETA[1], num_prefixes))
    sharpness = SHARPNESS[0] + (SHARPNESS[1] - SHARPNESS[0]) * position
    x -= x.max(axis=2, keepdims=True)
    x *= (beta[:, None] * sharpness[None, :]).astype(np.float32)[:, :, None]
    np.maximum(x, np.float32(LOGIT_FLOOR), out=x)
    np.exp(x, out=x)
    x /= x.sum(axis=2, keepdims=True)
    return x


def to_float16(x: np.ndarray) -> np.ndarray:
    """`x.astype(np.float16)` for float32 values in [0, 1], bit for bit, in integer arithmetic: numpy's
    cast takes a slow path, ~300 ns a value, for float16's subnormal range (below 2**-14), which
    holds most of a next-token distribution. Normal range: drop 13 mantissa bits, rounding to
    nearest, ties to even, and rebias the exponent (127 -> 15). Subnormals are multiples of 2**-24:
    adding 0.5 in float32, whose spacing there is 2**-24, rounds to the nearest one (ties to even)
    and leaves it in the low mantissa bits."""
    bits = x.view(np.uint32)
    small = bits < np.uint32(113 << 23)  # below 2**-14
    half = bits >> 13
    half &= 1  # the kept mantissa's lowest bit: ties go to even
    half += bits
    half += np.uint32((0xFFF - (112 << 23)) % 2**32)  # round half up (ties settled above), rebias
    half >>= 13
    subnormal = (x + np.float32(0.5)).view(np.uint32)
    subnormal -= np.uint32(0x3F000000)  # the bits of 0.5
    np.copyto(half, subnormal, where=small)
    return half.astype(np.uint16).view(np.float16)


def generate(
    num_prefixes: int, seed: int = 0, vocab_size: int = VOCAB_SIZE, models: list[tuple[str, int, int]] = PYTHIA
) -> Iterator[np.ndarray]:
    """The dataset's probs, CHUNK prefixes at a time as float16 arrays (the last one cut to size)."""
    position = log_size_position([non_embedding for _, non_embedding, _ in models])
    for index, start in enumerate(range(0, num_prefixes, CHUNK)):
        rng = np.random.default_rng([seed, index])  # rows depend on (seed, row) only, not on N
        yield to_float16(chunk_probs(rng, CHUNK, position, vocab_size))[: num_prefixes - start]


def write_dataset(
    path: str | os.PathLike,
    num_prefixes: int,
    seed: int = 0,
    vocab_size: int = VOCAB_SIZE,
    models: list[tuple[str, int, int]] = PYTHIA,
) -> dict:
    """Write the pickle and its sidecar with the project's own writer (`harness.data.dataset.start_dataset`,
    filled in place chunk by chunk, then renamed after its sidecar); return the sidecar's record."""
    names = [name for name, _, _ in models]
    sentences = [f"synthetic prefix {i}" for i in range(num_prefixes)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    file = start_dataset(path, names, sentences, vocab_size)

    def fill(out: np.ndarray) -> None:
        for start, chunk in zip(range(0, num_prefixes, CHUNK), generate(num_prefixes, seed, vocab_size, models)):
            out[start : start + len(chunk)] = chunk

    file.fill(fill)
    record = {
        "format": FORMAT,
        "models": [
            {"name": name, "non_embedding_params": non_embedding, "total_params": total}
            for name, non_embedding, total in models
        ],
        "synthetic": {
            "generator": "benchmarks/make_dataset.py",
            "prefixes": num_prefixes,
            "vocab_size": vocab_size,
            "seed": seed,
        },
    }
    return {**record, "pickle": file.finish(record)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.cli.add_num_prefixes(parser, "N, the number of prefixes", required=True)
    parser.add_argument("--out", type=Path, required=True, help="the pickle to write (its sidecar goes beside it)")
    harness.cli.add_seed(parser, "the generator's seed")
    parser.add_argument(
        "--vocab-size",
        type=harness.cli.at_least(2),
        default=VOCAB_SIZE,
        help=f"tokens (default: {VOCAB_SIZE:,}, Pythia's)",
    )
    args = parser.parse_args(argv)
    check_writable(args.out)
    start = time.perf_counter()
    record = write_dataset(args.out, args.num_prefixes, args.seed, args.vocab_size)
    print(
        f"{args.out}: {args.num_prefixes} x {len(PYTHIA)} x {args.vocab_size} float16, "
        f"{record['pickle']['bytes'] / 1e9:.2f} GB, written in {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    harness.cli.run(main)
