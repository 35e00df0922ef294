"""Write the bundled challenge's train/test prefix files from sources the suite never saw.

    python3 -m suite.prefix_splits            # sources in ../shared/data/prefix-source, seed 0

- Wikipedia openings (an article's first 10-20 words of `text.split(" ")`, the count drawn per
  article from the seed): 1,000 train + 1,000 test, disjoint by article;
- RTE-style prompts from rte-test.tsv, split in half by premise in a seeded order.

Output: data/prefixes/{wikipedia,glue-rte}-{train,test}.jsonl, one {"text": ...} per line (the
openings may hold newlines, so not .txt), with the article id / RTE index kept for provenance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import harness.cli
from harness.data.files import atomic_write
from harness.data.prefixes import read_glue_tsv, split_rte_prompts, split_wikipedia_openings

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT.parent / "shared" / "data" / "prefix-source"


def write_jsonl(path: Path, rows: list[dict]) -> None:
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write(path, lambda f: f.write(lines), mode="w")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wikipedia", type=Path, default=SOURCES / "wikipedia-en-prefix-source.jsonl")
    parser.add_argument("--rte", type=Path, default=SOURCES / "rte-test.tsv")
    parser.add_argument(
        "--num-train", type=harness.cli.positive_int, default=1000, help="Wikipedia training openings (default: 1000)"
    )
    parser.add_argument(
        "--num-test", type=harness.cli.positive_int, default=1000, help="Wikipedia test openings (default: 1000)"
    )
    harness.cli.add_seed(parser, "seeds the splits")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "prefixes")
    args = parser.parse_args(argv)

    with args.wikipedia.open(encoding="utf-8") as f:
        articles = [json.loads(line) for line in f if line.strip()]
    splits = {
        "wikipedia": split_wikipedia_openings(articles, args.num_train, args.num_test, args.seed),
        "glue-rte": split_rte_prompts(list(read_glue_tsv(args.rte)), args.seed),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (train, test) in splits.items():
        for half, rows in (("train", train), ("test", test)):
            write_jsonl(args.out / f"{name}-{half}.jsonl", rows)
        print(f"{name}: {len(train)} train + {len(test)} test prefixes -> {args.out}/{name}-{{train,test}}.jsonl")
    return 0


if __name__ == "__main__":
    harness.cli.run(main)
