"""Build a challenge dataset: run a model suite over a set of prefixes and pickle every model's
next-token distribution as a (prefixes x models x vocabulary) float16 tensor.

    python preprocess_train.py                                   # Pythia 70m..2.8b -> 12b, 100 Wikipedia openings
    python preprocess_train.py --dataset glue-rte --dataset-path rte-train.tsv --out data/glue-rte.pkl
    python preprocess_train.py --models small/ medium/ large/ --dataset my_prefixes.txt
    python preprocess_train.py --models suite --dataset arithmetic --digits 2 --shots 4 --out data/arithmetic-4shot.pkl

The last model is the target. Rows are written into the output file as they are computed (host
memory does not grow with the number of prefixes), and each finished model's slice is cached, so
an interrupted run resumes where it stopped. `accelerate launch preprocess_train.py ...` shards
the batches over processes (GPUs of one machine), each writing its own rows of the one file: the
dataset is identical to a single-process run's.
"""

from __future__ import annotations

import os
import signal
import sys


def exit_interrupted(*_) -> None:
    """Ctrl-C while nothing needs cleaning up (the imports, interpreter shutdown): one line, exit 130."""
    try:
        sys.stdout.flush()  # os._exit does not: keep the report of a finished run
        print("\ninterrupted", file=sys.stderr, flush=True)
    finally:
        os._exit(130)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, exit_interrupted)  # before the imports below, which take a moment

import argparse
import contextlib
import errno
import fcntl
import json
import platform
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from harness import InputError, cli
from harness.data.dataset import FORMAT, DatasetFile, sidecar_path, start_dataset
from harness.data.files import read_text_file
from harness.data.prefixes import NAMED, PrefixSet, build_prefixes, check_options, space_into_prefixes
from harness.models.processes import join_process_group, leave_process_group
from harness.models.suites import (
    PYTHIA,
    ModelSpec,
    bundled_ceiling,
    bundled_suite,
    check_sources,
    model_revisions,
    model_specs,
)

if TYPE_CHECKING:  # annotations only: accelerate loads torch, which run() imports once the input is checked
    from accelerate import PartialState

EXIT_CODES = """exit status:
  0    the dataset and its sidecar were written
  1    bad input: a model, prefix file, --out, a full disk or a missing package (one line on stderr;
       models that finished are cached, so the same command resumes)
  2    a bad command line
  130  interrupted (Ctrl-C; finished models are cached)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=PYTHIA,
        help="hub ids or local directories, smallest first; the last is the target (default: Pythia); "
        "`suite`: the bundled suite (suite/models/), whose members also go by their short names, a "
        "checkpoint as suite-1.5m@step2880; `ladder`: its every size, checkpoint and seed, by "
        "validation loss",
    )
    parser.add_argument(
        "--ceiling-model",
        help="another seed of the target (same size, data and recipe): its "
        "agreement with the target, the noise ceiling, goes in the sidecar; never an input "
        "(default with --models suite: the bundled one in suite/seeds/, if any)",
    )
    cli.add_revision(parser)
    parser.add_argument(
        "--dataset",
        default="wikipedia",
        help=f"{', '.join(NAMED)}, or a .txt (one prefix per line) or .jsonl "
        '({"text": ...} per line, optionally with an "answer") file',
    )
    parser.add_argument(
        "--dataset-path",
        help="local copy for wikipedia or copy (jsonl/parquet) or glue-rte (GLUE TSV), "
        "or a folder of them (read in name order)",
    )
    cli.add_task_options(
        parser,
        shots="solved examples before each question: arithmetic (default 0), "
        "cot-arithmetic (default 3), glue-rte (labelled demonstrations; default: the original set)",
        digits="arithmetic (default 2), cot-arithmetic (default 1)",
    )
    cli.add_num_prefixes(parser, "how many prefixes (default: 100 for named datasets, all of a file)")
    cli.add_seed(parser, "seeds which prefixes are drawn")
    parser.add_argument(
        "--out", type=Path, help="output pickle (default: data/<dataset>.pkl); the sidecar is <out>.json"
    )
    cli.add_dtype(parser)
    cli.add_device(parser)
    cli.add_batch_size(parser, "max prefixes per batch (default: automatic, by token budget)")
    parser.add_argument(
        "--max-tokens", type=cli.positive_int, help="max padded tokens per batch (default: 32768 on GPU, 4096 on CPU)"
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="per-model cache for resuming (default: <out>.cache, removed on success)"
    )
    parser.add_argument(
        "--meta-json", type=Path, help="JSON file whose content is recorded in the sidecar under 'extra'"
    )
    cli.add_no_progress(parser)
    args = parser.parse_args(argv)
    args.models, args.labels = bundled_suite(args.models)
    args.ceiling_label = None
    if args.ceiling_model is None:
        args.ceiling_model, args.ceiling_label = bundled_ceiling(args.models, args.labels)
    if len(args.models) < 2:
        parser.error("--models needs at least two models: inputs, then the target")
    if args.out is None:
        stem = args.dataset if args.dataset in NAMED else Path(args.dataset).stem
        args.out = Path("data") / f"{stem}.pkl"
    return args


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """One run per --out at a time: runs on one --out share its resume cache, and the first to finish
    removes it. A second run fails at once instead of crashing later. Creating the lock file also
    checks, before any model runs, that --out's folder is writable."""
    lock = out.with_name(out.name + ".lock")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        reason = "a file is in the way" if isinstance(e, (FileExistsError, NotADirectoryError)) else e.strerror
        raise InputError(f"{out.parent}: cannot write there (--out {out}): {reason}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(lock).st_ino:
            raise BlockingIOError  # the run we waited on finished and removed the file we opened
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        raise InputError(
            f"{out}: another preprocess_train.py run is writing it (it holds {lock}): "
            "wait for it to finish, or choose another --out"
        ) from None
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def check_free_space(out: Path, nbytes: int) -> None:
    free = shutil.disk_usage(out.parent).free
    if free < nbytes:
        raise InputError(
            f"{out.parent}: {free / 1e6:,.0f} MB free, but the dataset and its resume cache need "
            f"about {nbytes / 1e6:,.0f} MB"
        )


def answer_records(texts: list[str], answer_ids: list[list[int]], summary: list[dict]) -> list[dict]:
    """Per prefix: its answer and ids, and per model (in the dataset's order) the answer pass's
    scores, moved out of the models' summary rows."""
    scores = [row.pop("answers") for row in summary]
    records = []
    for i, (text, ids) in enumerate(zip(texts, answer_ids)):
        record = {"text": text, "ids": ids}
        for name in scores[0]:
            record[name] = [model_scores[name][i] for model_scores in scores]
        records.append(record)
    return records


def read_meta_json(path: Path) -> object:
    text = read_text_file(path, "a JSON file (--meta-json)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON (--meta-json): {e}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out.is_dir():
        raise InputError(f"{args.out}: is a directory (--out names the output pickle)")
    # Under `accelerate launch`, only the main process (rank 0) writes, so only it takes the lock.
    is_main = os.environ.get("RANK", "0") == "0"
    with output_lock(args.out) if is_main else contextlib.nullcontext():
        try:
            return run(args, argv)
        finally:
            leave_process_group()


def shared_output(
    state: PartialState, out: Path, model_names: list[str], prefixes: list[str], vocab_size: int
) -> DatasetFile:
    """The dataset file every process writes its rows into: the main process starts it (the pickle,
    its array allocated) and tells the others where it is. The processes share it through the page
    cache, so they must run on one machine."""
    if state.num_processes == 1:
        return start_dataset(out, model_names, prefixes, vocab_size)
    from accelerate.utils import broadcast_object_list

    if int(os.environ.get("LOCAL_WORLD_SIZE", state.num_processes)) != state.num_processes:
        raise InputError(
            "accelerate launch on several machines: the processes write one output file through "
            "the page cache, so run them on one machine (one process per GPU)"
        )
    started = start_dataset(out, model_names, prefixes, vocab_size) if state.is_main_process else None
    return broadcast_object_list([started])[0]


class Encoded(NamedTuple):
    """The prefixes as the models read them: the set (some prefixes ended after their answer's space),
    each prefix's ids, and each answer's and choice's ids where the set has them."""

    prefix_set: PrefixSet
    token_ids: list[list[int]]
    answer_ids: list[list[int]] | None
    choice_ids: list[list[int]] | None


def check_inputs(args: argparse.Namespace) -> PrefixSet:
    """Sources and prefixes, checked and built before any model loads: bad input fails in seconds."""
    check_options(args.dataset, args.num_prefixes, args.dataset_path, args.shots, args.digits, args.operation)
    check_sources(args.models, model_revisions(args.models, args.revision), args.dataset, args.dataset_path)
    if args.ceiling_model is not None:
        check_sources([args.ceiling_model], [None], args.dataset, args.dataset_path, option="--ceiling-model")
    return build_prefixes(
        args.dataset,
        args.num_prefixes,
        args.seed,
        args.dataset_path,
        shots=args.shots,
        digits=args.digits,
        operation=args.operation,
    )


def encode(prefix_set: PrefixSet, tokenizer, announce: bool) -> Encoded:
    """Each prefix's ids, and each answer's and choice's, tokenized alone and without special tokens:
    the ids it has after its prefix wherever the pre-tokenizer splits between the two, as byte-level
    BPE does before the leading space of " 73" or " True"."""
    from harness.models import inference

    count = len(prefix_set.prefixes)
    prefix_set = space_into_prefixes(
        prefix_set, lambda texts: inference.tokenize(tokenizer, texts, special_tokens=False)
    )
    if prefix_set.record.get("answer_space_in_prefix") and announce:
        moved = prefix_set.record["answer_space_in_prefix"]
        print(
            f"{moved} of {count} answers begin with a space that this tokenizer writes as a token of its own: "
            f"those prefixes end after it, so they ask for the answer's first digit or word",
            file=sys.stderr,
        )
    answer_ids, choice_ids = None, None
    if prefix_set.answers is not None:
        answer_ids = inference.tokenize(tokenizer, prefix_set.answers, special_tokens=False)
        if prefix_set.record.get("choices"):  # a choice task: every choice is scored as a continuation
            choice_ids = inference.tokenize(tokenizer, prefix_set.record["choices"], special_tokens=False)
    return Encoded(prefix_set, inference.tokenize(tokenizer, prefix_set.prefixes), answer_ids, choice_ids)


def compute(
    args: argparse.Namespace,
    state: PartialState,
    specs: list[ModelSpec],
    ceiling: ModelSpec | None,
    encoded: Encoded,
    probs: np.ndarray,
    cache_dir: Path,
    device: str,
) -> tuple[list[dict], dict | None]:
    """Every model's rows into `probs` (this process's share of them), then the noise ceiling's scores
    against the target's finished column: the models' summary rows and the ceiling's record."""
    from harness.models import inference

    common = dict(
        device=device,
        dtype=args.dtype,
        cache_dir=cache_dir,
        max_tokens=args.max_tokens,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    _, summary = inference.run_suite(
        specs,
        encoded.token_ids,
        probs.shape[2],
        out=probs,
        answer_ids=encoded.answer_ids,
        choice_ids=encoded.choice_ids,
        **common,
    )
    if isinstance(probs, np.memmap):
        probs.flush()
    state.wait_for_everyone()  # every process's rows are in the file
    if ceiling is None:
        return summary, None
    return summary, inference.ceiling_scores(
        ceiling, encoded.token_ids, probs[:, -1], cache_dir / "ceiling.npy", **common
    )


def sidecar(
    args: argparse.Namespace,
    argv: list[str] | None,
    specs: list[ModelSpec],
    encoded: Encoded,
    vocab_size: int,
    summary: list[dict],
    ceiling_record: dict | None,
    extra: object,
    device: str,
    num_processes: int,
) -> dict:
    """The dataset's metadata: models, prefixes, versions, the command; answers and noise ceiling where there are."""
    import torch
    import transformers

    metadata = {
        "format": FORMAT,
        "models": summary,
        "target_model": specs[-1].stored_name,
        "num_prefixes": len(encoded.token_ids),
        "vocab_size": vocab_size,
        "prefixes": encoded.prefix_set.record,
        "device": device,
        "num_processes": num_processes,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])],
    }
    if encoded.answer_ids is not None:  # aligned with the sentences; harness.data.dataset.sidecar_answers reads them
        metadata["answers"] = answer_records(encoded.prefix_set.answers, encoded.answer_ids, summary)
    if ceiling_record is not None:  # harness.data.dataset.sidecar_noise_ceiling reads it
        metadata["noise_ceiling"] = {
            "rule": "another seed of the target (same size, data and recipe), never an input: per prefix, "
            "its top-1 id, KL(target || it) and alpha against the target",
            **ceiling_record,
        }
    if extra is not None:
        metadata["extra"] = extra
    return metadata


def print_written(out: Path, num_prefixes: int, vocab_size: int, summary: list[dict]) -> None:
    print(
        f"\nwrote {out} ({out.stat().st_size / 1e6:.1f} MB): {num_prefixes} prefixes x "
        f"{len(summary)} models x {vocab_size} tokens, float16; metadata in {sidecar_path(out)}"
    )
    for row in summary:
        speed = (
            "from cache"
            if row["from_cache"]
            else (f"{row['seconds']:.2f} s, {row['tokens_per_second']:,.0f} tok/s, load {row['load_seconds']:.2f} s")
        )
        print(f"  {row['name']:<40} {speed}")


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    prefix_set = check_inputs(args)
    extra = read_meta_json(args.meta_json) if args.meta_json else None

    import transformers

    from harness.models import inference

    # Under `accelerate launch`, each process runs its share of the batches; a plain run is one process.
    state = join_process_group(args.device)
    device = args.device or str(state.device)
    specs = model_specs(args.models, args.revision, args.labels)
    ceiling = None if args.ceiling_model is None else ModelSpec(args.ceiling_model, None, args.ceiling_label)
    tokenizer = inference.shared_tokenizer(specs + ([ceiling] if ceiling else []))
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    encoded = encode(prefix_set, tokenizer, announce=state.is_main_process)
    num_prefixes = len(encoded.token_ids)
    cache_dir = args.cache_dir or args.out.with_name(args.out.name + ".cache")
    if state.is_main_process:  # the old pickle, the new one while it is written, the cached slices
        check_free_space(args.out, 3 * num_prefixes * (len(specs) + (ceiling is not None)) * vocab_size * 2)
    if args.no_progress or not state.is_local_main_process:
        transformers.utils.logging.disable_progress_bar()

    # The output file is written as rows are computed: memory does not grow with the prefixes.
    output = shared_output(
        state, args.out, [spec.stored_name for spec in specs], encoded.prefix_set.prefixes, vocab_size
    )
    try:
        summary, ceiling_record = compute(args, state, specs, ceiling, encoded, output.open(), cache_dir, device)
        if state.is_main_process:
            output.finish(
                sidecar(
                    args, argv, specs, encoded, vocab_size, summary, ceiling_record, extra, device, state.num_processes
                )
            )
    except BaseException:
        if state.is_main_process:
            output.discard()
        raise
    if not state.is_main_process:
        return 0
    if args.cache_dir is None:
        shutil.rmtree(cache_dir, ignore_errors=True)
    print_written(args.out, num_prefixes, vocab_size, summary)
    return 0


def main_with_extras() -> int:
    """main, with what harness.cli does not know: a missing package and a full disk are one line
    and exit 1, and Ctrl-C during shutdown prints no traceback."""
    try:
        return main()
    except ModuleNotFoundError as e:
        print(
            f"error: preprocess_train.py needs the package {(e.name or '?').split('.')[0]!r} ({e}): "
            "pip install -r requirements-dev.txt",
            file=sys.stderr,
        )
        return 1
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        where = f"{e.filename}: " if e.filename else ""  # a failed write() names no file
        print(
            f"error: {where}{e.strerror}; models that finished before it are cached, so the same command resumes",
            file=sys.stderr,
        )
        return 1
    finally:
        signal.signal(signal.SIGINT, exit_interrupted)  # Ctrl-C during shutdown (torch, threads): no traceback


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)  # main() cleans up as KeyboardInterrupt unwinds
    cli.run(main_with_extras, interrupted="\ninterrupted: finished models are cached; rerun the same command to resume")
