"""Prefix sets: Wikipedia openings, GLUE RTE prompts, or a user's own .txt / .jsonl file.

Named builders read from the Hugging Face hub (streamed, never the whole dump) or, with
`dataset_path`, from a local copy in the same columns, through the same `datasets` pipeline, so
both behave alike and run offline. The same seed always gives the same prefixes.
"""

from __future__ import annotations

import csv
import json
import sys
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from harness import InputError, plural
from harness.files import read_text_file

WIKIPEDIA_HUB = ("wikimedia/wikipedia", "20231101.en")
GLUE_RTE_HUB = ("nyu-mll/glue", "rte")
WIKIPEDIA_WORDS = (10, 20)  # a prefix is an article's first 10-20 words of text.split(" "), drawn per article
SHUFFLE_BUFFER = 10_000  # streamed shuffling: reads at most this many rows ahead
DEFAULT_NUM_PREFIXES = 100
NAMED = ("wikipedia", "glue-rte")
# --dataset-path files, by suffix: the `datasets` builder that reads them
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".tsv": "csv", ".csv": "csv"}


def rte_prompt(premise: str, hypothesis: str) -> str:
    return premise + "\nQuestion: " + hypothesis + " True or False?\nAnswer:"


def wikipedia_opening(text: str, num_words: int) -> str:
    """An article's first `num_words` words of `text.split(" ")`, the original rule: runs of spaces,
    non-breaking spaces and newlines stay as they are in the article."""
    return " ".join(text.split(" ")[:num_words])


def build_prefixes(dataset: str, num_prefixes: int | None = None, seed: int = 0,
                   dataset_path: str | None = None) -> tuple[list[str], dict]:
    """The prefixes for `dataset` (a builder name or a .txt/.jsonl path) and a record of the rule."""
    if num_prefixes is not None and num_prefixes < 1:
        raise InputError(f"--num-prefixes must be at least 1, got {num_prefixes}")
    if dataset == "wikipedia":
        rows = _stream(*WIKIPEDIA_HUB, dataset_path, seed)
        rng = np.random.default_rng(seed)
        prefixes = _take_unique(_wikipedia_openings(rows, rng, dataset_path), num_prefixes or DEFAULT_NUM_PREFIXES)
        rule = (f'first {WIKIPEDIA_WORDS[0]}-{WIKIPEDIA_WORDS[1]} words of text.split(" ") of an article, rejoined with '
                '" ", count drawn per article')
        source = dataset_path or "/".join(WIKIPEDIA_HUB)
    elif dataset == "glue-rte":
        rows = _stream(*GLUE_RTE_HUB, dataset_path, seed)
        prompts = (rte_prompt(_column(r, "sentence1", dataset_path), _column(r, "sentence2", dataset_path)) for r in rows)
        prefixes = _take_unique(prompts, num_prefixes or DEFAULT_NUM_PREFIXES)
        rule = 'sentence1 + "\\nQuestion: " + sentence2 + " True or False?\\nAnswer:"'
        source = dataset_path or "/".join(GLUE_RTE_HUB) + " (train)"
    elif dataset.endswith((".txt", ".jsonl")):
        if dataset_path:
            raise InputError(f"--dataset-path is for the named builders {NAMED}, not for a file like {dataset}")
        prefixes = dedupe(read_prefix_file(dataset), dataset)[:num_prefixes]
        rule = "one prefix per line" if dataset.endswith(".txt") else 'one {"text": ...} per line'
        source = dataset
    else:
        raise InputError(f"unknown dataset {dataset!r}: use one of {', '.join(NAMED)}, or a .txt or .jsonl file")
    if num_prefixes is not None and len(prefixes) < num_prefixes:
        warnings.warn(f"{source}: only {len(prefixes)} prefixes available, fewer than the {num_prefixes} asked for")
    return prefixes, {"dataset": dataset, "source": str(source), "rule": rule, "seed": seed,
                      "num_prefixes": len(prefixes)}


def read_prefix_file(path: str | Path) -> list[str]:
    """A .txt (one prefix per line) or .jsonl ({"text": ...} per line) file.

    Lines end at "\n" or "\r\n" only: U+2028, \x85 and \x0c are characters of a prefix, not line
    breaks (str.splitlines would split one prefix into several). A leading byte-order mark is dropped;
    blank lines are skipped with one warning; an empty "text" is an error.
    """
    path = Path(path)
    content = read_text_file(path, "a .txt or .jsonl file")
    lines = content.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not open a new one
    prefixes, blank = [], 0
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            blank += 1
            continue
        text = _json_text(path, number, line) if path.suffix == ".jsonl" else line
        if not text.strip():
            raise InputError(f"{path}:{number}: empty prefix")
        prefixes.append(text)
    if not prefixes:
        raise InputError(f"{path}: no prefixes in the file")
    if blank:
        warnings.warn(f"{path}: {blank} blank {plural(blank, 'line', 'lines')} skipped")
    return prefixes


def _json_text(path: Path, number: int, line: str) -> str:
    try:
        text = json.loads(line)["text"]
    except RecursionError:
        raise InputError(f"{path}:{number}: JSON nested too deeply") from None
    except (json.JSONDecodeError, TypeError, KeyError, IndexError):
        raise InputError(f'{path}:{number}: not a JSON object with a "text" field') from None
    if not isinstance(text, str):
        raise InputError(f'{path}:{number}: "text" must be a string')
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # JSON may escape half a surrogate pair, e.g. "\ud800"
        raise InputError(f"{path}:{number}: not valid Unicode text ({text[e.start]!r} is a lone surrogate)") from None
    return text


def dedupe(prefixes: list[str], source: str) -> list[str]:
    """Keep each prefix once, in first-seen order (the original overwrote rows silently)."""
    unique = list(dict.fromkeys(prefixes))
    if len(unique) < len(prefixes):
        dropped = len(prefixes) - len(unique)
        warnings.warn(f"{source}: {dropped} duplicate {plural(dropped, 'prefix', 'prefixes')} dropped, each kept once")
    return unique


def _take_unique(prefixes: Iterable[str], n: int) -> list[str]:
    seen: dict[str, None] = {}
    for prefix in prefixes:
        if prefix.strip():
            seen.setdefault(prefix)
            if len(seen) == n:
                break
    return list(seen)


def _wikipedia_openings(rows: Iterable[dict], rng: np.random.Generator, path: str | None) -> Iterator[str]:
    for row in rows:
        text = _column(row, "text", path)
        if text.strip():
            yield wikipedia_opening(text, int(rng.integers(WIKIPEDIA_WORDS[0], WIKIPEDIA_WORDS[1] + 1)))


def _column(row: dict, name: str, path: str | None) -> str:
    try:
        return row[name] or ""
    except KeyError:
        raise InputError(f"{path or 'dataset'}: no column {name!r} (columns: {', '.join(row)})") from None


def _stream(hub_name: str, hub_config: str, local_path: str | None, seed: int) -> Iterable[dict]:
    """Rows of the hub dataset, or of a local jsonl/parquet/tsv copy, in a seeded streamed order."""
    import datasets  # only preprocessing needs it

    if local_path is None:
        rows = datasets.load_dataset(hub_name, hub_config, split="train", streaming=True)
    else:
        path = Path(local_path)
        if path.is_dir():  # every readable file in it, in name order
            files = sorted((p for p in path.iterdir() if p.suffix.lower() in LOCAL_FORMATS), key=lambda p: p.name)
            if not files:
                raise InputError(f"{path}: no {', '.join(LOCAL_FORMATS)} files in the folder")
        elif path.is_file():
            files = [path]
        else:
            raise InputError(f"{path}: no such file or folder")
        suffixes = sorted({p.suffix.lower() for p in files})
        formats = {LOCAL_FORMATS.get(suffix) for suffix in suffixes}
        if None in formats:
            raise InputError(f"{path}: unsupported file type {suffixes[0]!r} (use .jsonl, .parquet or .tsv)")
        if len(formats) > 1 or {".csv", ".tsv"} <= set(suffixes):
            raise InputError(f"{path}: mixes file types ({', '.join(suffixes)}): one kind per folder")
        kwargs = {}
        if formats == {"csv"}:
            # GLUE TSVs hold bare quotes inside sentences: read them without quote handling.
            kwargs = dict(delimiter="\t" if suffixes[0] == ".tsv" else ",", quoting=csv.QUOTE_NONE)
        rows = datasets.load_dataset(formats.pop(), data_files=[str(p) for p in files], split="train",
                                     streaming=True, **kwargs)
    return rows.shuffle(seed=seed, buffer_size=SHUFFLE_BUFFER)


# ---- Train/test splits of the bundled suite's prefix sources (suite/prefix_splits.py writes them)

def split_wikipedia_openings(articles: list[dict], num_train: int, num_test: int,
                             seed: int) -> tuple[list[dict], list[dict]]:
    """Openings of distinct articles, in a seeded order: the first `num_train` for training, the
    next `num_test` for testing (disjoint by article, and by text). Rows: {"text", "id", "title"}."""
    rng = np.random.default_rng(seed)
    rows, seen = [], set()
    for index in rng.permutation(len(articles)):
        article = articles[index]
        text = article.get("text") or ""
        opening = wikipedia_opening(text, int(rng.integers(WIKIPEDIA_WORDS[0], WIKIPEDIA_WORDS[1] + 1)))
        if opening.strip() and opening not in seen:
            seen.add(opening)
            rows.append({"text": opening, "id": str(article.get("id", index)), "title": article.get("title", "")})
            if len(rows) == num_train + num_test:
                break
    if len(rows) < num_train + num_test:
        raise InputError(f"only {len(rows)} distinct openings, fewer than {num_train} + {num_test}")
    return rows[:num_train], rows[num_train:]


def read_glue_tsv(path: Path) -> Iterator[dict]:
    """The rows of a GLUE TSV (e.g. RTE's index, sentence1, sentence2, label) as dicts, in file order.

    GLUE's sentences hold bare, unbalanced quotes, so the file is read without quote handling.
    """
    csv.field_size_limit(sys.maxsize)  # a corpus TSV may hold fields past csv's default cap (128 KB)
    with path.open(encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)


def split_rte_prompts(pairs: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """GLUE RTE prompts split in half by premise: premises in a seeded order fill the training half,
    the rest is the test half, so no premise is in both. Rows: {"text", "index"}."""
    by_premise: dict[str, list[dict]] = {}
    for pair in pairs:
        by_premise.setdefault(pair["sentence1"], []).append(pair)
    premises = list(by_premise)
    train, test = [], []
    for index in np.random.default_rng(seed).permutation(len(premises)):
        half = train if len(train) < len(pairs) / 2 else test
        half += by_premise[premises[index]]
    to_rows = lambda half: [{"text": rte_prompt(p["sentence1"], p["sentence2"]), "index": p.get("index")}
                            for p in half]
    return to_rows(train), to_rows(test)
