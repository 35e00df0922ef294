"""Prefix sets, each prefix with its gold answer where the set has one: Wikipedia openings, GLUE
RTE prompts (zero- or few-shot), in-context copying of Wikipedia spans, arithmetic questions in
lm-evaluation-harness's format, multi-step arithmetic with worked steps, or a user's .txt / .jsonl.

Builders that read text take it from the Hugging Face hub (streamed, never the whole dump) or, with
`dataset_path`, from a local copy in the same columns, through the same `datasets` pipeline, so
both behave alike and run offline; the arithmetic builders need no source. The same seed always
gives the same prefixes, and every builder records its rule, seed and options (the sidecar keeps
that record).
"""

from __future__ import annotations

import csv
import json
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import InputError, plural
from harness.data.files import read_text_file

WIKIPEDIA_HUB = ("wikimedia/wikipedia", "20231101.en")
GLUE_RTE_HUB = ("nyu-mll/glue", "rte")
WIKIPEDIA_WORDS = (10, 20)  # a prefix is an article's first 10-20 words of text.split(" "), drawn per article
COPY_WORDS = (20, 30)  # a copied span is 20-30 words, drawn per article (a prefix: median 70 suite tokens)
SHUFFLE_BUFFER = 10_000  # streamed shuffling: reads at most this many rows ahead
DEFAULT_NUM_PREFIXES = 100
NAMED = ("wikipedia", "glue-rte", "copy", "arithmetic", "cot-arithmetic")
FROM_SOURCE = ("wikipedia", "glue-rte", "copy")  # these read the hub, or a local copy through --dataset-path
# Which builders take which option, and their defaults.
OPTIONS = {
    "shots": ("glue-rte", "arithmetic", "cot-arithmetic"),
    "digits": ("arithmetic", "cot-arithmetic"),
    "operation": ("arithmetic",),
}
DEFAULT_SHOTS = {"arithmetic": 0, "cot-arithmetic": 3}  # glue-rte without --shots is the original zero-shot set
DEFAULT_DIGITS = {"arithmetic": 2, "cot-arithmetic": 1}
MAX_DIGITS = 5  # GPT-3's arithmetic tasks, which lm-evaluation-harness runs, go up to 5 digits
# The operations of lm-evaluation-harness's arithmetic tasks, by --operation, with their words.
OPERATIONS = {"add": "plus", "subtract": "minus", "multiply": "times"}
SEPARATOR = "\n\n"  # between solved examples and the question, as lm-evaluation-harness joins few-shot examples
RTE_GOLD = {"entailment": " True", "not_entailment": " False", 0: " True", 1: " False"}  # TSV labels; the hub's ids
# --dataset-path files, by suffix: the `datasets` builder that reads them
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".tsv": "csv", ".csv": "csv"}


@dataclass
class PrefixSet:
    """The prefixes; each one's gold continuation (e.g. " 73", with its leading space), or None for a
    set without answers; and the record of the rule, seed and options that built them."""

    prefixes: list[str]
    answers: list[str] | None
    record: dict


def space_into_prefixes(prefix_set: PrefixSet, encode: Callable[[list[str]], list[list[int]]]) -> PrefixSet:
    """End a prefix after its answer's leading space where the tokenizer (`encode`: texts -> ids,
    no special tokens) writes that space as a token of its own, as one with one token per digit
    writes " 73": " ", "7", "3". Every such prefix would ask each model for the same bare space,
    and agree on it; ending after the space asks for the answer's first digit or word instead. A
    prefix moves only where the ids of prefix and answer together stay the same, so the answer's
    scores do not change. Choice tasks are left as they are (each choice is scored whole)."""
    if prefix_set.answers is None or prefix_set.record.get("choices"):
        return prefix_set
    space = encode([" "])[0]
    candidates = [i for i, answer in enumerate(prefix_set.answers) if len(answer) > 1 and answer[0] == " "]
    if not candidates:
        return prefix_set
    prefixes = [prefix_set.prefixes[i] for i in candidates]
    answers = [prefix_set.answers[i] for i in candidates]
    before = zip(encode(prefixes), encode(answers))
    after = zip(encode([p + " " for p in prefixes]), encode([a[1:] for a in answers]))
    moved = {
        i
        for i, (old, new) in zip(candidates, zip(before, after))
        if old[1][: len(space)] == space and old[0] + old[1] == new[0] + new[1]
    }
    if not moved:
        return prefix_set
    return PrefixSet(
        [p + " " if i in moved else p for i, p in enumerate(prefix_set.prefixes)],
        [a[1:] if i in moved else a for i, a in enumerate(prefix_set.answers)],
        {**prefix_set.record, "answer_space_in_prefix": len(moved)},
    )


def rte_prompt(premise: str, hypothesis: str) -> str:
    return premise + "\nQuestion: " + hypothesis + " True or False?\nAnswer:"


def wikipedia_opening(text: str, num_words: int) -> str:
    """An article's first `num_words` words of `text.split(" ")`, the original rule: runs of spaces,
    non-breaking spaces and newlines stay as they are in the article."""
    return " ".join(text.split(" ")[:num_words])


def build_prefixes(
    dataset: str,
    num_prefixes: int | None = None,
    seed: int = 0,
    dataset_path: str | None = None,
    *,
    shots: int | None = None,
    digits: int | None = None,
    operation: str | None = None,
) -> PrefixSet:
    """The prefixes for `dataset` (a builder name or a .txt/.jsonl path), their answers, and a
    record of the rule. `shots`, `digits` and `operation` are the task builders' options (None: the
    builder's default)."""
    check_options(dataset, num_prefixes, dataset_path, shots, digits, operation)
    n = num_prefixes or DEFAULT_NUM_PREFIXES
    shots = DEFAULT_SHOTS.get(dataset) if shots is None else shots  # glue-rte without --shots: the original set
    digits = digits or DEFAULT_DIGITS.get(dataset)
    operation = operation or ("add" if dataset == "arithmetic" else None)
    options = {
        name: value
        for name, value in (("shots", shots), ("digits", digits), ("operation", operation))
        if value is not None
    }
    if dataset == "wikipedia":
        rows = _stream(*WIKIPEDIA_HUB, dataset_path, seed)
        prefixes, answers = _take_unique(_wikipedia_openings(rows, np.random.default_rng(seed), dataset_path), n)
        rule = (
            f'first {WIKIPEDIA_WORDS[0]}-{WIKIPEDIA_WORDS[1]} words of text.split(" ") of an article, rejoined with '
            '" ", count drawn per article'
        )
        source = dataset_path or "/".join(WIKIPEDIA_HUB)
    elif dataset == "glue-rte" and shots is None:
        rows = _stream(*GLUE_RTE_HUB, dataset_path, seed)
        pairs = (
            (
                rte_prompt(_column(r, "sentence1", dataset_path), _column(r, "sentence2", dataset_path)),
                RTE_GOLD.get(r.get("label")),
            )
            for r in rows
        )
        prefixes, answers = _take_unique(pairs, n)
        rule = 'sentence1 + "\\nQuestion: " + sentence2 + " True or False?\\nAnswer:"'
        if answers is not None:
            rule += '; the answer is " True" for the label entailment, " False" for not_entailment'
        source = dataset_path or "/".join(GLUE_RTE_HUB) + " (train)"
    elif dataset == "glue-rte":
        prefixes, answers, rule, source, split = _rte_few_shot(n, seed, dataset_path, shots)
        options.update(split)
    elif dataset == "copy":
        rows = _stream(*WIKIPEDIA_HUB, dataset_path, seed)
        prefixes, answers = _take_unique(_copy_spans(rows, np.random.default_rng(seed), dataset_path), n)
        rule = (
            f"a span of {COPY_WORDS[0]}-{COPY_WORDS[1]} words of an article's text.split() (length and start "
            'drawn per article, rejoined with " "), then " ", then the span\'s first k words again, k drawn '
            'from 1 to the length - 1; the answer is " " + the span\'s word k (in-context copying)'
        )
        source = dataset_path or "/".join(WIKIPEDIA_HUB)
    elif dataset == "arithmetic":
        prefixes, answers = arithmetic(n, seed, shots, digits, operation)
        rule = (
            f'{shots} solved examples "Question: What is A {OPERATIONS[operation]} B?\\n'
            'Answer: C", then the question "Question: What is A ... B?\\nAnswer:", joined by "\\n\\n" '
            "(lm-evaluation-harness's arithmetic format); A and B uniform in [0, 10^digits), each question "
            'once, no example is the question\'s own pair; the answer is " C"'
        )
        source = "synthetic"
    elif dataset == "cot-arithmetic":
        prefixes, answers = cot_arithmetic(n, seed, shots, digits)
        rule = (
            '"Question: What is A op B op C?\\nAnswer: " + worked steps ("B times C is D. A plus D is E." or, '
            'left to right, "A op B is D. D op C is E.") + " The answer is E.", op drawn from plus, minus, '
            "times (times first); shots worked examples, then the question with its steps, ending at "
            '"The answer is", joined by "\\n\\n"; A, B, C uniform in [0, 10^digits), each question once, '
            'no example is the question itself; the answer is " E"'
        )
        source = "synthetic"
    else:
        prefixes, answers = read_prefix_file(dataset)
        prefixes, answers = dedupe(prefixes, dataset, answers)
        prefixes, answers = prefixes[:num_prefixes], None if answers is None else answers[:num_prefixes]
        rule = "one prefix per line" if dataset.endswith(".txt") else 'one {"text": ...} per line'
        if answers is not None:
            rule = 'one {"text": ..., "answer": ...} per line'
        source = dataset
    if num_prefixes is not None and len(prefixes) < num_prefixes:
        warnings.warn(f"{source}: only {len(prefixes)} prefixes available, fewer than the {num_prefixes} asked for")
    record = {
        "dataset": dataset,
        "source": str(source),
        "rule": rule,
        "seed": seed,
        "num_prefixes": len(prefixes),
        **options,
    }
    if dataset == "glue-rte" and answers is not None:  # a two-way choice: task accuracy compares the two, chance 50%
        record["choices"] = sorted(set(RTE_GOLD.values()), reverse=True)
    return PrefixSet(prefixes, answers, record)


def check_options(
    dataset: str,
    num_prefixes: int | None,
    dataset_path: str | None,
    shots: int | None,
    digits: int | None,
    operation: str | None,
) -> None:
    """One-line errors for options out of range or given to a builder that does not take them."""
    if num_prefixes is not None and num_prefixes < 1:
        raise InputError(f"--num-prefixes must be at least 1, got {num_prefixes}")
    if dataset not in NAMED and not dataset.endswith((".txt", ".jsonl")):
        raise InputError(f"unknown dataset {dataset!r}: use one of {', '.join(NAMED)}, or a .txt or .jsonl file")
    if dataset_path and dataset not in FROM_SOURCE:
        raise InputError(f"--dataset-path is for --dataset {', '.join(FROM_SOURCE)}, not {dataset}")
    for name, value in (("shots", shots), ("digits", digits), ("operation", operation)):
        if value is not None and dataset not in OPTIONS[name]:
            raise InputError(f"--{name} is for --dataset {' or '.join(OPTIONS[name])}, not {dataset}")
    if shots is not None and shots < 0:
        raise InputError(f"--shots must be at least 0, got {shots}")
    if digits is not None and not 1 <= digits <= MAX_DIGITS:
        raise InputError(f"--digits must be 1 to {MAX_DIGITS}, got {digits}")
    if operation is not None and operation not in OPERATIONS:
        raise InputError(f"--operation must be one of {', '.join(OPERATIONS)}, got {operation!r}")


# ---- Arithmetic in lm-evaluation-harness's format, and multi-step arithmetic with worked steps


def _draw_questions(rng: np.random.Generator, space: int, n: int, shots: int) -> np.ndarray:
    """(min(n, space), 1 + shots) indices into a space of `space` questions: column 0 the questions,
    each once; then each one's examples, uniform over every other question (so never itself)."""
    questions = rng.choice(space, min(n, space), replace=False)
    examples = rng.integers(0, space - 1, (len(questions), shots))
    examples += examples >= questions[:, None]  # skip the question's own index
    return np.concatenate([questions[:, None], examples], axis=1)


def _join(asked: list[str], answers: list[object], shots: int) -> list[str]:
    """Prompts from `asked`, rows of 1 + shots questions flattened (the question, then its examples),
    and their answers: each row's examples with their answers, then its question, joined by
    SEPARATOR."""
    rows = range(0, len(asked), 1 + shots)
    return [
        SEPARATOR.join([*(f"{asked[j]} {answers[j]}" for j in range(i + 1, i + 1 + shots)), asked[i]]) for i in rows
    ]


def arithmetic_question(a: int, b: int, operation: str = "add") -> dict:
    """One question as lm-evaluation-harness's arithmetic tasks ask it, with its answer:
    {"text": "Question: What is A plus B?\nAnswer:", "answer": " C"}."""
    result = {"add": a + b, "subtract": a - b, "multiply": a * b}[operation]
    return {"text": f"Question: What is {a} {OPERATIONS[operation]} {b}?\nAnswer:", "answer": f" {result}"}


def arithmetic(n: int, seed: int, shots: int, digits: int, operation: str) -> tuple[list[str], list[str]]:
    """Up to `n` distinct questions "Question: What is A plus B?\\nAnswer:" (lm-evaluation-harness's
    arithmetic tasks, from GPT-3's), each after `shots` solved examples, and their answers " C"
    (subtraction may give " -C"). A and B are uniform in [0, 10^digits)."""
    size = 10**digits
    a, b = np.divmod(_draw_questions(np.random.default_rng(seed), size * size, n, shots), size)
    c = {"add": a + b, "subtract": a - b, "multiply": a * b}[operation]
    asked = [arithmetic_question(x, y, operation)["text"] for x, y in zip(a.ravel().tolist(), b.ravel().tolist())]
    return _join(asked, c.ravel().tolist(), shots), [f" {z}" for z in c[:, 0].tolist()]


def cot_arithmetic(n: int, seed: int, shots: int, digits: int) -> tuple[list[str], list[str]]:
    """Up to `n` distinct two-step questions "What is A op B op C?" (op: plus, minus or times; times
    before plus and minus), each after `shots` worked examples and with its own worked steps, the
    prefix ending at "The answer is"; the answers " E"."""
    size = 10**digits
    drawn, ops = np.divmod(_draw_questions(np.random.default_rng(seed), size**3 * 9, n, shots), 9)
    drawn, c = np.divmod(drawn, size)
    a, b = np.divmod(drawn, size)
    op1, op2 = np.divmod(ops, 3)  # indices into OPERATIONS: plus, minus, times
    apply = lambda op, x, y: np.choose(op, [x + y, x - y, x * y])
    times_first = (op2 == 2) & (op1 != 2)  # "A plus B times C": B times C first; else left to right
    d = np.where(times_first, b * c, apply(op1, a, b))
    e = np.where(times_first, apply(op1, a, d), apply(op2, d, c))
    words = list(OPERATIONS.values())
    asked = []
    for a_, b_, c_, o1, o2, d_, e_, first in zip(*(x.ravel().tolist() for x in (a, b, c, op1, op2, d, e, times_first))):
        w1, w2 = words[o1], words[o2]
        steps = (
            f"{b_} times {c_} is {d_}. {a_} {w1} {d_} is {e_}."
            if first
            else f"{a_} {w1} {b_} is {d_}. {d_} {w2} {c_} is {e_}."
        )
        asked.append(f"Question: What is {a_} {w1} {b_} {w2} {c_}?\nAnswer: {steps} The answer is")
    return _join(asked, [f"{z}." for z in e.ravel().tolist()], shots), [f" {z}" for z in e[:, 0].tolist()]


# ---- GLUE RTE with labelled demonstrations


def _rte_few_shot(n: int, seed: int, path: str | None, shots: int) -> tuple[list[str], list[str], str, str, dict]:
    """Up to `n` RTE queries, each after `shots` labelled demonstrations from rows that never give
    queries: on the hub, train gives demonstrations and validation queries; a local file's labelled
    rows are split in half by premise (`split_by_premise`), the first half giving demonstrations."""
    if path is None:
        demo_rows = _labelled(_stream(*GLUE_RTE_HUB, None, None, split="train"), None)
        query_rows = _labelled(_stream(*GLUE_RTE_HUB, None, None, split="validation"), None)
        split = "demonstrations from the train split, queries from the validation split"
        source = "/".join(GLUE_RTE_HUB) + " (train, validation)"
    else:
        demo_rows, query_rows = split_by_premise(_labelled(_stream(*GLUE_RTE_HUB, path, None), path), seed)
        split = (
            "the labelled rows split in half by premise in a seeded order (split_by_premise): demonstrations "
            "from the first half, queries from the second, so no premise is in both"
        )
        source = path
    if shots > len(demo_rows):
        raise InputError(f"--shots {shots}: only {len(demo_rows)} labelled demonstration rows in {source}")
    rng = np.random.default_rng(seed)
    queries = [query_rows[i] for i in rng.permutation(len(query_rows))]
    prefixes, answers = _take_unique(
        ((rte_prompt(r["sentence1"], r["sentence2"]), RTE_GOLD[r["label"]]) for r in queries), n
    )
    # Each query's demonstrations: `shots` distinct rows, uniformly, in a random order (the smallest
    # of one random key per row). float32 keys: n x rows x 4 bytes (2.8 MB for the hub's 277 x 2,490).
    keys = rng.random((len(prefixes), len(demo_rows)), dtype=np.float32)
    chosen = np.argsort(keys, axis=1)[:, :shots]
    demos = [rte_prompt(r["sentence1"], r["sentence2"]) + RTE_GOLD[r["label"]] for r in demo_rows]
    prefixes = [SEPARATOR.join([*(demos[i] for i in row), query]) for row, query in zip(chosen.tolist(), prefixes)]
    rule = (
        f'{shots} labelled demonstrations (sentence1 + "\\nQuestion: " + sentence2 + " True or False?\\n'
        'Answer:" + " True" for entailment, " False" otherwise), distinct rows drawn per query, then the '
        'query\'s prompt, joined by "\\n\\n"; the answer is " True" or " False" from the query\'s label'
    )
    return (
        prefixes,
        answers,
        rule,
        source,
        {"split": split, "demonstration_rows": len(demo_rows), "query_rows": len(query_rows)},
    )


def _labelled(rows: Iterable[dict], path: str | None) -> list[dict]:
    """The rows whose label is entailment or not_entailment (a test split's rows have none), with
    their columns checked."""
    labelled = []
    for row in rows:
        _column(row, "label", path)  # names a file without labels
        if row["label"] in RTE_GOLD:
            labelled.append(
                {
                    "sentence1": _column(row, "sentence1", path),
                    "sentence2": _column(row, "sentence2", path),
                    "label": row["label"],
                }
            )
    return labelled


def read_prefix_file(path: str | Path) -> tuple[list[str], list[str] | None]:
    """A .txt (one prefix per line) or .jsonl ({"text": ...} per line) file: its prefixes, and their
    answers where every .jsonl line carries an "answer" string beside "text" (None where none does;
    some lines only is an error).

    Lines end at "\n" or "\r\n" only: U+2028, \x85 and \x0c are characters of a prefix, not line
    breaks (str.splitlines would split one prefix into several). A leading byte-order mark is dropped;
    blank lines are skipped with one warning; an empty "text" or "answer" is an error.
    """
    path = Path(path)
    content = read_text_file(path, "a .txt or .jsonl file")
    lines = content.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not open a new one
    prefixes, answers, blank = [], [], 0
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            blank += 1
            continue
        text, answer = _json_line(path, number, line) if path.suffix == ".jsonl" else (line, None)
        if not text.strip():
            raise InputError(f"{path}:{number}: empty prefix")
        if answers and (answer is None) != (answers[0] is None):
            raise InputError(
                f'{path}:{number}: {"no" if answer is None else "an"} "answer", unlike the first line: '
                "give every line an answer, or none"
            )
        prefixes.append(text)
        answers.append(answer)
    if not prefixes:
        raise InputError(f"{path}: no prefixes in the file")
    if blank:
        warnings.warn(f"{path}: {blank} blank {plural(blank, 'line', 'lines')} skipped")
    return prefixes, (answers if answers[0] is not None else None)


def _json_line(path: Path, number: int, line: str) -> tuple[str, str | None]:
    """The "text" of a .jsonl line, and its "answer" if it has one."""
    try:
        row = json.loads(line)
        text = row["text"]
    except RecursionError:
        raise InputError(f"{path}:{number}: JSON nested too deeply") from None
    except (json.JSONDecodeError, TypeError, KeyError, IndexError):
        raise InputError(f'{path}:{number}: not a JSON object with a "text" field') from None
    answer = row.get("answer")
    for name, value in (("text", text), ("answer", answer)):
        if name == "answer" and value is None:
            continue
        if not isinstance(value, str):
            raise InputError(f'{path}:{number}: "{name}" must be a string')
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:  # JSON may escape half a surrogate pair, e.g. "\ud800"
            raise InputError(
                f"{path}:{number}: not valid Unicode text ({value[e.start]!r} is a lone surrogate)"
            ) from None
    if answer == "":
        raise InputError(f"{path}:{number}: empty answer")
    return text, answer


def dedupe(prefixes: list[str], source: str, answers: list[str] | None = None) -> tuple[list[str], list[str] | None]:
    """Keep each prefix once, in first-seen order (the original overwrote rows silently), with its
    answer; the same prefix with two different answers is an error."""
    first: dict[str, int] = {}
    for i, prefix in enumerate(prefixes):
        j = first.setdefault(prefix, i)
        if answers is not None and answers[j] != answers[i]:
            raise InputError(
                f"{source}: the prefix {prefix[:40]!r} twice, with the answers {answers[j]!r} and {answers[i]!r}"
            )
    if len(first) < len(prefixes):
        dropped = len(prefixes) - len(first)
        warnings.warn(f"{source}: {dropped} duplicate {plural(dropped, 'prefix', 'prefixes')} dropped, each kept once")
    return list(first), (None if answers is None else [answers[i] for i in first.values()])


def _take_unique(rows: Iterable[tuple[str, str | None]], n: int) -> tuple[list[str], list[str] | None]:
    """The first `n` distinct (prefix, answer) rows by prefix; the answers, or None unless every
    row kept has one."""
    seen: dict[str, str | None] = {}
    for prefix, answer in rows:
        if prefix.strip():
            seen.setdefault(prefix, answer)
            if len(seen) == n:
                break
    answers = list(seen.values())
    return list(seen), (answers if answers and None not in answers else None)


def _wikipedia_openings(rows: Iterable[dict], rng: np.random.Generator, path: str | None) -> Iterator[tuple[str, None]]:
    for row in rows:
        text = _column(row, "text", path)
        if text.strip():
            yield wikipedia_opening(text, int(rng.integers(WIKIPEDIA_WORDS[0], WIKIPEDIA_WORDS[1] + 1))), None


def _copy_spans(rows: Iterable[dict], rng: np.random.Generator, path: str | None) -> Iterator[tuple[str, str]]:
    """Per article long enough: a span of its words, then the span again up to word k; the answer
    is word k. Words are text.split(), so the span's words are joined by single spaces, as their
    repeat is, and the answer is exactly what comes next in the repeat."""
    for row in rows:
        words = _column(row, "text", path).split()
        length = int(rng.integers(COPY_WORDS[0], COPY_WORDS[1] + 1))
        if len(words) < length:
            continue
        start = int(rng.integers(0, len(words) - length + 1))
        span = words[start : start + length]
        k = int(rng.integers(1, length))
        yield " ".join(span) + " " + " ".join(span[:k]), " " + span[k]


def _column(row: dict, name: str, path: str | None) -> str:
    try:
        return row[name] or ""
    except KeyError:
        raise InputError(f"{path or 'dataset'}: no column {name!r} (columns: {', '.join(row)})") from None


def _stream(
    hub_name: str, hub_config: str, local_path: str | None, seed: int | None, split: str = "train"
) -> Iterable[dict]:
    """Rows of the hub dataset's `split`, or of a local jsonl/parquet/tsv copy, in a seeded streamed
    order (in the source's order with `seed=None`)."""
    import datasets  # only preprocessing needs it

    if local_path is None:
        rows = datasets.load_dataset(hub_name, hub_config, split=split, streaming=True)
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
        rows = datasets.load_dataset(
            formats.pop(), data_files=[str(p) for p in files], split="train", streaming=True, **kwargs
        )
    return rows if seed is None else rows.shuffle(seed=seed, buffer_size=SHUFFLE_BUFFER)


# ---- Train/test splits of the bundled suite's prefix sources (suite/prefix_splits.py writes them)


def split_wikipedia_openings(
    articles: list[dict], num_train: int, num_test: int, seed: int
) -> tuple[list[dict], list[dict]]:
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


def split_by_premise(pairs: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """RTE pairs split in half by premise: premises in a seeded order fill the first half, the rest
    is the second, so no premise is in both."""
    by_premise: dict[str, list[dict]] = {}
    for pair in pairs:
        by_premise.setdefault(pair["sentence1"], []).append(pair)
    premises = list(by_premise)
    first, second = [], []
    for index in np.random.default_rng(seed).permutation(len(premises)):
        half = first if len(first) < len(pairs) / 2 else second
        half += by_premise[premises[index]]
    return first, second


def split_rte_prompts(pairs: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """GLUE RTE prompts split in half by premise (`split_by_premise`): the training half, then the
    test half. Rows: {"text", "index"}."""
    to_rows = lambda half: [{"text": rte_prompt(p["sentence1"], p["sentence2"]), "index": p.get("index")} for p in half]
    train, test = split_by_premise(pairs, seed)
    return to_rows(train), to_rows(test)
