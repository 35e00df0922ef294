"""An emergence study's task data and its results file (predict_emergence.py).

Task data: every question of a task falls in exactly one of three disjoint parts, drawn once from
the study's seed: the test questions (what every run is scored on), a validation slice (what the
learning rate is chosen on), and the finetuning pool (each run finetunes on its first D).

Results: one JSON line per finished run (model, revision, D, seed, learning rate), appended as the
run ends, so a killed study loses at most the run it was in, and resumes from the file. A line needs
`model`, `pretraining_loss`, `data_size` (0: no finetuning), `correct` and `n`, so results from
elsewhere can be refitted too; the study's own lines also carry the task, the seed, the learning
rate, the validation accuracy it was chosen on and every test question's outcome (for the
bootstrap). No torch here: `--from-results` refits and redraws from this file alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import InputError
from harness.data.prefixes import (
    OPERATIONS,
    SEPARATOR,
    arithmetic_question,
    build_prefixes,
    check_options,
    read_prefix_file,
)

REQUIRED = ("model", "pretraining_loss", "data_size", "correct", "n")


@dataclass
class Protocol:
    """How every run finetunes: recorded on each results line."""

    epochs: float = 2.0
    batch_size: int = 32
    min_steps: int = 20  # a handful of examples still gets this many steps (many epochs over them)
    learning_rates: tuple[float, ...] = (1e-4, 3e-4, 1e-3)  # the sweep per model, D and seed
    weight_decay: float = 0.0
    lora_rank: int | None = None  # None: full finetuning
    dtype: str = "auto"

    def record(self) -> dict:
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "min_steps": self.min_steps,
            "weight_decay": self.weight_decay,
            "finetuning": "full" if self.lora_rank is None else f"lora-r{self.lora_rank}",
        }


@dataclass
class StudyTask:
    """A task's three disjoint parts, each a list of {"text": prompt, "answer": gold continuation}."""

    name: str
    test: list[dict]
    validation: list[dict]
    pool: list[dict]
    choices: list[str] | None = None  # a choice task's continuations (e.g. " True", " False"); else exact match
    record: dict = field(default_factory=dict)  # how it was built: rule, seed, sizes

    def check_data_sizes(self, data_sizes: list[int]) -> None:
        too_large = [d for d in data_sizes if d > len(self.pool)]
        if too_large:
            raise InputError(
                f"--data-sizes {too_large[0]}: larger than task {self.name}'s finetuning pool of "
                f"{len(self.pool)} questions (test and validation questions are never finetuned on)"
            )
        if any(d < 0 for d in data_sizes):
            raise InputError(f"--data-sizes must be 0 or more, got {min(data_sizes)}")

    def fingerprint(self) -> str:
        """A hash of the questions and answers: runs of one task answered the same test questions."""
        text = json.dumps([self.test, self.validation, self.pool, self.choices], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def split_sizes(total: int, test_size: int | None, validation_size: int | None) -> tuple[int, int]:
    """Test and validation sizes as given, else 200 each, or 40% and 12% of a task of fewer than
    500 questions (the rest, at least 48%, is the finetuning pool)."""
    return (
        min(200, int(0.4 * total)) if test_size is None else test_size,
        min(200, int(0.12 * total)) if validation_size is None else validation_size,
    )


def _split(
    rows: list[dict], test_size: int, validation_size: int, rng: np.random.Generator, source: str
) -> tuple[list[dict], list[dict], list[dict]]:
    if len(rows) < test_size + validation_size + 1:
        raise InputError(
            f"{source}: {len(rows)} questions, too few for {test_size} test and {validation_size} "
            "validation questions and a finetuning pool"
        )
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    return rows[:test_size], rows[test_size : test_size + validation_size], rows[test_size + validation_size :]


def arithmetic_task(
    digits: int = 2,
    operation: str = "add",
    test_size: int | None = None,
    validation_size: int | None = None,
    seed: int = 0,
    shots: int = 0,
    test_pairs: set[tuple[int, int]] | None = None,
    max_pool: int = 100_000,
) -> StudyTask:
    """Arithmetic in lm-evaluation-harness's format ("Question: What is A plus B?\\nAnswer:", answer
    " C"), A and B in [0, 10^digits). With `test_pairs` (for the bundled suite: the pairs its corpus
    never stated), the test questions are drawn from them and none of them is ever finetuned on.
    `shots` solved examples from the finetuning pool go before every question, finetuning and test
    alike."""
    check_options("arithmetic", None, None, shots, digits, operation)
    rng = np.random.default_rng(seed)
    size = 10**digits
    space = size * size
    test_size, validation_size = split_sizes(space, test_size, validation_size)
    drawn = rng.choice(space, min(space, max_pool + test_size + validation_size + len(test_pairs or ())), replace=False)
    pairs = [(int(a), int(b)) for a, b in zip(*np.divmod(drawn, size))]
    question = lambda a, b: arithmetic_question(a, b, operation)
    source = f"{digits}-digit {OPERATIONS[operation]}"
    if test_pairs:
        held = sorted(p for p in test_pairs if max(p) < size)
        if len(held) < test_size:
            raise InputError(f"{source}: only {len(held)} held-out pairs for {test_size} test questions")
        test = [question(*held[i]) for i in sorted(rng.choice(len(held), test_size, replace=False))]
        rest = [question(a, b) for a, b in pairs if (a, b) not in test_pairs]
        _, validation, pool = _split(rest, 0, validation_size, rng, source)
    else:
        test, validation, pool = _split([question(a, b) for a, b in pairs], test_size, validation_size, rng, source)
    pool = pool[:max_pool]
    if shots:
        demos = lambda: SEPARATOR.join(
            f"{q['text']}{q['answer']}" for q in (pool[i] for i in rng.choice(len(pool), shots, replace=False))
        )
        test, validation, pool = (
            [{"text": demos() + SEPARATOR + q["text"], "answer": q["answer"]} for q in part]
            for part in (test, validation, pool)
        )
    name = f"{'addition' if operation == 'add' else operation}-{digits}digit" + (f"-{shots}shot" if shots else "")
    rule = (
        f"lm-evaluation-harness's arithmetic format, A and B uniform in [0, 10^{digits}), {shots} solved "
        "examples from the finetuning pool before each question"
        + (
            "; test questions from the pairs the bundled suite's corpus never stated, none of those finetuned on"
            if test_pairs
            else ""
        )
    )
    return StudyTask(
        name,
        test,
        validation,
        pool,
        None,
        {
            "builder": "arithmetic",
            "digits": digits,
            "operation": operation,
            "shots": shots,
            "seed": seed,
            "rule": rule,
            "held_out_test": bool(test_pairs),
        },
    )


def builder_task(
    dataset: str,
    test_size: int | None = None,
    validation_size: int | None = None,
    seed: int = 0,
    dataset_path: str | None = None,
    shots: int | None = None,
    pool_size: int = 20_000,
) -> StudyTask:
    """A task from preprocess_train.py's builders with answers (`copy`, `glue-rte` with its choices,
    `cot-arithmetic`) or a user's .jsonl with an "answer" on every line, split three ways."""
    if dataset.endswith(".jsonl"):
        texts, answers = read_prefix_file(dataset)
        record = {"builder": "file", "source": dataset}
        choices = None
        if answers is None:
            raise InputError(f'{dataset}: no "answer" on its lines: a study needs the gold answer of every question')
    else:
        prefix_set = build_prefixes(
            dataset, sum(split_sizes(10**9, test_size, validation_size)) + pool_size, seed, dataset_path, shots=shots
        )
        texts, answers, record = prefix_set.prefixes, prefix_set.answers, prefix_set.record
        if answers is None:
            raise InputError(f"--task {dataset}: its prefixes have no answers (a labelled source is needed)")
        choices = record.get("choices")
    rows = [{"text": t, "answer": a} for t, a in zip(texts, answers)]
    test, validation, pool = _split(
        rows, *split_sizes(len(rows), test_size, validation_size), np.random.default_rng(seed), dataset
    )
    name = Path(dataset).stem if dataset.endswith(".jsonl") else dataset
    return StudyTask(name, test, validation, pool, choices, {**record, "seed": seed})


# ---- The results file


def read_results(path: str | os.PathLike) -> list[dict]:
    """Every run in a results file, checked: one-line errors name the file, the line and the problem."""
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read it as a results file ({e})") from None
    lines = content.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # no newline after it: a run killed while it was written
                raise InputError(
                    f"{path}:{number}: the last line is torn (a study killed while writing it?): "
                    "delete that line, and the study reruns that run"
                ) from None
            raise InputError(f"{path}:{number}: not a JSON line") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{number}: not a JSON object")
        missing = [name for name in REQUIRED if name not in record]
        if missing:
            raise InputError(f'{path}:{number}: no "{missing[0]}" (every line needs {", ".join(REQUIRED)})')
        try:
            loss, size, correct, n = (
                float(record["pretraining_loss"]),
                int(record["data_size"]),
                int(record["correct"]),
                int(record["n"]),
            )
        except (TypeError, ValueError):
            raise InputError(f"{path}:{number}: pretraining_loss, data_size, correct and n must be numbers") from None
        if not (np.isfinite(loss) and size >= 0 and n >= 1 and 0 <= correct <= n):
            raise InputError(
                f"{path}:{number}: needs a finite pretraining_loss, data_size >= 0, n >= 1 and "
                f"0 <= correct <= n (got {loss}, {size}, {correct}, {n})"
            )
        outcomes = record.get("outcomes")
        if outcomes is not None and (
            len(outcomes) != n or set(outcomes) - {"0", "1"} or outcomes.count("1") != correct
        ):
            raise InputError(f'{path}:{number}: "outcomes" must be n characters 0 or 1, with correct ones')
        records.append(record)
    if not records:
        raise InputError(f"{path}: no runs in the results file")
    return records


def append_result(path: Path, record: dict) -> None:
    """One finished run, appended in one write and synced: a kill loses at most the run in progress."""
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def run_key(record: dict) -> tuple:
    """What makes a run: the task, model, revision, D, seed and learning rate."""
    return (
        record.get("task", "task"),
        record["model"],
        record.get("revision"),
        int(record["data_size"]),
        int(record.get("seed", 0)),
        record.get("learning_rate"),
    )


def planned_runs(
    task: str,
    models: list[tuple[str, str | None]],
    data_sizes: list[int],
    seeds: list[int],
    learning_rates: list[float],
) -> list[tuple]:
    """Every run of a study of `task` (`run_key`s), model by model ((name, revision): one model in
    memory at a time): each D with each seed and learning rate, and D = 0 once (nothing is drawn,
    nothing is trained)."""
    return [
        (task, name, revision, size, seed, rate)
        for name, revision in models
        for size in data_sizes
        for seed in (seeds if size else seeds[:1])
        for rate in (learning_rates if size else (None,))
    ]


def tasks_in(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(r.get("task", "task") for r in records))


def selected_runs(records: list[dict], task: str) -> list[dict]:
    """Per (model, revision, D, seed), the learning rate with the best validation accuracy (the
    smallest rate among ties): the run whose test result counts. Lines without a validation
    accuracy (a study from elsewhere) count as they are."""
    best = {}
    for record in records:
        if record.get("task", "task") != task:
            continue
        key = run_key(record)[:5]
        score = (record.get("validation_accuracy", 0.0), -(record.get("learning_rate") or 0.0))
        if key not in best or score > best[key][0]:
            best[key] = (score, record)
    return [record for _, record in best.values()]


def default_data_sizes(pool: int) -> list[int]:
    """0 (no finetuning), then the whole pool and 1/4, 1/16 and 1/64 of it: a geometric grid."""
    return sorted({0, *(pool // 4**k for k in (3, 2, 1, 0) if pool // 4**k > 0)})


def default_seeds(pool: int) -> list[int]:
    """Three seeds where the pool is small (under 1,000 questions: which D are drawn matters more),
    else one."""
    return [0, 1, 2] if pool < 1000 else [0]


def check_resumable(records: list[dict], tasks: list[StudyTask], protocol: dict, path: Path) -> set:
    """The runs already finished in the results file, after checking they were made the same way
    (same questions, same finetuning): a study does not mix runs of two protocols."""
    fingerprints = {task.name: task.fingerprint() for task in tasks}
    for record in records:
        task = record.get("task", "task")
        if task not in fingerprints:
            continue
        if record.get("task_fingerprint") not in (None, fingerprints[task]):
            raise InputError(
                f"{path}: its runs of task {task} asked other questions (another --seed, --test-size, "
                "--validation-size or --shots?): use another --results file"
            )
        changed = [k for k, v in protocol.items() if k in record and record[k] != v]
        if changed and int(record["data_size"]) > 0:
            raise InputError(
                f"{path}: its runs of task {task} were finetuned with another {changed[0]} "
                f"({record[changed[0]]}): use another --results file"
            )
    return {run_key(record) for record in records}
