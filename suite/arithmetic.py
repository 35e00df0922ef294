"""Synthetic arithmetic text for the suite's corpus (suite v3): worksheets of solved sums,
differences and products in varied natural formats, like the DeepMind Mathematics part of
Pythia's Pile, so that an arithmetic ability can emerge with size.

The evaluation prompts never appear: every operand pair of `held_out_pairs` (both orders) is
left out of the training text in every format, so the 2-digit addition of the challenge's
`--dataset arithmetic` is asked about pairs no model has seen.

    python3 -m suite.arithmetic --documents 20000 --out build/arithmetic.jsonl   # worksheets (train.py makes its own)
    python3 -m suite.arithmetic --questions 200 --out data/prefixes/arithmetic.jsonl

`--questions N` writes N held-out 2-digit addition questions in lm-evaluation-harness's format, with
their answers, for preprocess_train.py: the bundled arithmetic set, asked of pairs no model saw.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

import harness.cli
from harness.data.files import atomic_write
from harness.data.prefixes import arithmetic_question

HELD_OUT_SEED = 2024
HELD_OUT_SHARE = 0.2  # of the 2-digit addition pairs (a <= b): never in the training text

# (format, operation); {a} {b} {c}: operands and result.
FORMATS = [
    ("{a} + {b} = {c}", "add"),
    ("{a} plus {b} equals {c}.", "add"),
    ("The sum of {a} and {b} is {c}.", "add"),
    ("Adding {a} and {b} gives {c}.", "add"),
    ("What is {a} plus {b}? {c}", "add"),
    ("Question: What is {a} plus {b}?\nAnswer: {c}", "add"),
    ("{a} and {b} make {c}.", "add"),
    ("Calculate {a} + {b}. Answer: {c}", "add"),
    ("Total: {a} + {b} = {c}", "add"),
    ("{a} - {b} = {c}", "subtract"),
    ("{a} minus {b} equals {c}.", "subtract"),
    ("Question: What is {a} minus {b}?\nAnswer: {c}", "subtract"),
    ("{a} * {b} = {c}", "multiply"),
    ("{a} times {b} equals {c}.", "multiply"),
]


def held_out_pairs(seed: int = HELD_OUT_SEED, share: float = HELD_OUT_SHARE) -> set[tuple[int, int]]:
    """2-digit addition operand pairs (0-99 each) kept out of the training text: both orders."""
    rng = np.random.default_rng(seed)
    pairs = [(a, b) for a in range(100) for b in range(a, 100)]
    chosen = rng.choice(len(pairs), size=int(round(share * len(pairs))), replace=False)
    return {p for i in chosen for p in (pairs[i], pairs[i][::-1])}


def operands(rng: np.random.Generator, operation: str) -> tuple[int, int]:
    """Mostly 1- and 2-digit operands, some 3-digit, as a worksheet mixes them."""
    digits = rng.choice([1, 2, 3], p=[0.2, 0.65, 0.15])
    high = 10**digits
    a, b = int(rng.integers(0, high)), int(rng.integers(0, high if operation != "multiply" else min(high, 20)))
    if operation == "subtract" and b > a:
        a, b = b, a
    return a, b


def statement(rng: np.random.Generator, excluded: set[tuple[int, int]]) -> str:
    template, operation = FORMATS[int(rng.integers(len(FORMATS)))]
    while True:
        a, b = operands(rng, operation)
        if (a, b) not in excluded:  # excluded pairs are 2-digit: any format, any operation
            break
    c = {"add": a + b, "subtract": a - b, "multiply": a * b}[operation]
    return template.format(a=a, b=b, c=c)


def documents(count: int, seed: int = 0, excluded: set[tuple[int, int]] | None = None) -> list[str]:
    """`count` worksheets of 8-24 statements each, one per line."""
    excluded = held_out_pairs() if excluded is None else excluded
    rng = np.random.default_rng(seed)
    return ["\n".join(statement(rng, excluded) for _ in range(int(rng.integers(8, 25)))) for _ in range(count)]


def held_out_questions(count: int, seed: int = 0) -> list[dict]:
    """`count` of the held-out pairs (drawn with `seed`), as lm-evaluation-harness's arithmetic_2da
    asks them: {"text": "Question: What is A plus B?\\nAnswer:", "answer": " C"}."""
    pairs = sorted(held_out_pairs())
    chosen = np.random.default_rng(seed).choice(len(pairs), size=min(count, len(pairs)), replace=False)
    return addition_questions(pairs[i] for i in chosen)


def addition_questions(pairs: Iterable[tuple[int, int]]) -> list[dict]:
    """Each pair (A, B) asked as lm-evaluation-harness's arithmetic_2da asks it, with its answer."""
    return [arithmetic_question(a, b) for a, b in pairs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=harness.cli.positive_int, default=20_000, help="worksheets to write")
    parser.add_argument("--questions", type=harness.cli.positive_int, help="write this many held-out questions instead")
    harness.cli.add_seed(parser, "seeds the worksheets or the questions")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = (
        held_out_questions(args.questions, args.seed)
        if args.questions
        else [{"text": text} for text in documents(args.documents, args.seed)]
    )
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda f: f.write(lines), mode="w")
    return 0


if __name__ == "__main__":
    harness.cli.run(main)
