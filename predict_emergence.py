"""Forecast emergence (Snell et al. 2024): finetune the models that cannot do a task yet on several
amounts of task data, fit an emergence law of how the point of emergence moves with the amount, and
extrapolate to where the few-shot ability appears, in pretraining loss.

    python predict_emergence.py                                   # the bundled suite's study (refits its committed results)
    python predict_emergence.py --fit-up-to suite-0.34m --report report/   # backtest: hold the larger models back
    python predict_emergence.py --results mine.jsonl              # the bundled study from scratch (12 min on 2 cores)
    python predict_emergence.py --models pythia --task arithmetic --digits 2 --results pythia.jsonl
    python predict_emergence.py --from-results mine.jsonl --json forecast.json   # refit only: no torch

Each finished run is appended to the results file as one JSON line; rerunning the same command skips
the finished runs, so a killed study resumes. `accelerate launch predict_emergence.py ...` shares the
runs out over the GPUs of one machine. All of it lives in `harness/forecast/`: the
study's runs (`study`), the finetuning (`finetune`), the law (`law`), its fit (`fit`), pictures (`report`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

# The fit is thousands of tiny problems, for which BLAS threads only cost time (measured: 9.5 s to
# refit the bundled study with them, 6.6 s without). Set before numpy loads; torch's threads are its own.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import harness.cli
from harness import InputError
from harness.cli import non_negative_int, positive_int
from harness.data.files import check_writable, write_output
from harness.data.prefixes import FROM_SOURCE, read_prefix_file
from harness.forecast.fit import forecasts, format_forecast
from harness.forecast.law import NUM_RESAMPLES
from harness.forecast.study import (
    Protocol,
    arithmetic_task,
    builder_task,
    check_resumable,
    default_data_sizes,
    default_seeds,
    planned_runs,
    read_results,
)
from harness.models.suites import PYTHIA, bundled_suite, check_sources, model_revisions, model_specs

ROOT = Path(__file__).resolve().parent
BUNDLED_RESULTS = ROOT / "data" / "emergence" / "suite-addition.jsonl"  # the bundled study, committed
LADDER_RESULTS = ROOT / "data" / "emergence" / "suite-ladder.jsonl"  # every ladder point's 0-shot runs, committed
LOSS_TEXT = ROOT / "data" / "prefixes" / "wikipedia-test.jsonl"  # Wikipedia openings no suite model trained on


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=harness.cli.exit_codes(
            "every run finished (or was already in the results) and the law was fitted",
            "bad input: a task, model, data size, --fit-up-to or results file (one line on "
            "stderr;\n       finished runs stay in the results file)",
        ),
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["suite"],
        help="hub ids or local directories, least capable first; `suite` (default): the bundled suite; "
        "`ladder`: its every size, checkpoint and seed on the loss axis; a checkpoint as "
        "suite-1.5m@step2880; `pythia`: Pythia 70m ... 12b",
    )
    harness.cli.add_revision(parser)
    parser.add_argument(
        "--task",
        default="arithmetic",
        help='arithmetic (default), copy, glue-rte, cot-arithmetic, or a .jsonl with an "answer" per line',
    )
    harness.cli.add_task_options(
        parser,
        shots="solved examples before every question (arithmetic: default 0)",
        digits="arithmetic's; several make several tasks (default: 2 1 for the bundled suite, else 2)",
        digits_nargs="+",
    )
    parser.add_argument("--dataset-path", help="local copy for copy (jsonl/parquet) or glue-rte (GLUE TSV)")
    parser.add_argument(
        "--test-size", type=positive_int, help="test questions (default: 200, or 40%% of a smaller task)"
    )
    parser.add_argument(
        "--validation-size",
        type=positive_int,
        help="validation questions, where the learning rate is chosen (default: 200, or 12%% of a smaller task)",
    )
    parser.add_argument(
        "--data-sizes",
        type=non_negative_int,
        nargs="+",
        metavar="D",
        help="finetuning set sizes D, 0 = no finetuning (default: 0, and the pool, 1/4, 1/16 and 1/64 of it)",
    )
    parser.add_argument(
        "--seeds",
        type=non_negative_int,
        nargs="+",
        metavar="S",
        help="finetuning seeds: which D examples and their order (default: 0 1 2 where the pool is "
        "under 1,000 questions, else 0)",
    )
    parser.add_argument(
        "--learning-rates",
        type=harness.cli.positive_float,
        nargs="+",
        default=[1e-4, 3e-4, 1e-3],
        metavar="LR",
        help="the sweep per model and D, chosen on the validation questions (default: 1e-4 3e-4 1e-3)",
    )
    parser.add_argument(
        "--epochs", type=harness.cli.positive_float, default=2.0, help="passes over the D examples (default 2)"
    )
    harness.cli.add_batch_size(parser, "finetuning batch (default 32)", default=32)
    parser.add_argument(
        "--min-steps",
        type=non_negative_int,
        default=20,
        help="optimizer steps at least, however few the examples (default 20)",
    )
    parser.add_argument(
        "--lora", type=positive_int, metavar="RANK", help="LoRA of this rank (peft) instead of full finetuning"
    )
    parser.add_argument(
        "--loss-text",
        type=Path,
        default=LOSS_TEXT,
        help="held-out text for each model's pretraining loss, .txt or .jsonl (default: "
        "data/prefixes/wikipedia-test.jsonl)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help=f"the results file, appended run by run (default: {BUNDLED_RESULTS.relative_to(ROOT)} for "
        f"the bundled study, {LADDER_RESULTS.relative_to(ROOT)} for --models ladder, else emergence.jsonl)",
    )
    parser.add_argument(
        "--from-results", type=Path, metavar="FILE", help="refit and report from FILE only: no runs, no torch"
    )
    parser.add_argument("--fit-up-to", metavar="MODEL", help="fit on the models up to MODEL only and predict the rest")
    parser.add_argument(
        "--resamples", type=positive_int, default=NUM_RESAMPLES, help=f"bootstrap resamples (default {NUM_RESAMPLES})"
    )
    harness.cli.add_seed(parser, "seeds the task's split into test, validation and pool, and the bootstrap")
    harness.cli.add_json(parser, "write the forecast here")
    harness.cli.add_report(parser, "draw the pictures here")
    harness.cli.add_device(parser)
    harness.cli.add_dtype(parser)
    harness.cli.add_no_progress(parser)
    args = parser.parse_args(argv)
    if args.models == ["pythia"]:
        args.models = PYTHIA
    args.bundled = args.models in (["suite"], ["ladder"])
    args.ladder = args.models == ["ladder"]
    args.models, args.labels = bundled_suite(args.models, ceiling_apart=False)  # every seed is a point
    if len(args.models) < 3:
        parser.error("--models needs at least three models: the law is fitted on three or more")
    if args.task != "arithmetic" and (args.digits is not None or args.operation is not None):
        parser.error("--digits and --operation are for --task arithmetic")
    args.operation = args.operation or "add"
    if args.digits is None:
        args.digits = [2, 1] if args.bundled and args.task == "arithmetic" else [2]
    if args.results is None:
        bundled = LADDER_RESULTS if args.ladder else BUNDLED_RESULTS
        args.results = bundled if args.bundled and args.task == "arithmetic" else Path("emergence.jsonl")
    return args


def shown_path(path: Path) -> str:
    """A path as the results record it: relative to the project where it lies inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def build_tasks(args: argparse.Namespace) -> list:
    """The study's tasks. On the bundled suite, 2-digit addition is tested on the pairs its corpus
    never stated (suite/arithmetic.py), and none of them is finetuned on."""
    sizes = dict(test_size=args.test_size, validation_size=args.validation_size)
    if args.task == "arithmetic":
        tasks = []
        for digits in args.digits:
            held_out = None
            if args.bundled and digits == 2 and args.operation == "add":
                from suite.arithmetic import held_out_pairs

                held_out = held_out_pairs()
            tasks.append(
                arithmetic_task(
                    digits, args.operation, seed=args.seed, shots=args.shots or 0, test_pairs=held_out, **sizes
                )
            )
        return tasks
    if args.task not in ("copy", "glue-rte", "cot-arithmetic") and not args.task.endswith(".jsonl"):
        raise InputError(
            f"unknown task {args.task!r}: use arithmetic, copy, glue-rte, cot-arithmetic or a .jsonl file with answers"
        )
    return [builder_task(args.task, seed=args.seed, dataset_path=args.dataset_path, shots=args.shots, **sizes)]


def run_study(args: argparse.Namespace) -> None:
    """Every unfinished run of the study, appended to args.results. Bad input fails before torch
    loads, and a study whose runs are all in the results file does not load it at all."""
    try:
        if args.task in FROM_SOURCE and args.dataset_path is None:  # the hub, before reading from it
            check_sources([], [], args.task, None, dataset_option="--task")
        tasks = build_tasks(args)
    except ModuleNotFoundError as e:
        raise InputError(
            f"--task {args.task} needs the package {(e.name or '?').split('.')[0]!r} "
            "(pip install -r requirements-dev.txt)"
        ) from None
    for task in tasks:
        task.check_data_sizes(args.data_sizes or [])
    revisions = model_revisions(args.models, args.revision)
    records = read_results(args.results) if args.results.exists() and args.results.stat().st_size else []
    protocol = Protocol(
        epochs=args.epochs,
        batch_size=args.batch_size,
        min_steps=args.min_steps,
        learning_rates=tuple(args.learning_rates),
        lora_rank=args.lora,
        dtype=args.dtype,
    )
    finished = check_resumable(records, tasks, protocol.record(), args.results)
    names = [(label or name, revision) for name, label, revision in zip(args.models, args.labels, revisions)]
    plans = [
        (task, args.data_sizes or default_data_sizes(len(task.pool)), args.seeds or default_seeds(len(task.pool)))
        for task in tasks
    ]
    if all(
        set(planned_runs(task.name, names, sizes, seeds, args.learning_rates)) <= finished
        for task, sizes, seeds in plans
    ):
        return
    loss_texts, _ = read_prefix_file(args.loss_text)
    try:
        check_sources(args.models, revisions, args.task, args.dataset_path, dataset_option="--task")
        from harness.forecast.finetune import Study
        from harness.forecast.finetune import run_study as run_all
        from harness.models.inference import shared_tokenizer
        from harness.models.processes import join_process_group, leave_process_group
    except ModuleNotFoundError as e:
        raise InputError(
            f"running the study's runs needs the package {(e.name or '?').split('.')[0]!r} "
            "(pip install -r requirements-dev.txt); --from-results refits without it"
        ) from None

    specs = model_specs(args.models, args.revision, args.labels)
    state = join_process_group(args.device)
    try:
        tokenizer = shared_tokenizer(specs)
        for task, sizes, seeds in plans:
            study = Study(
                task,
                specs,
                sizes,
                seeds,
                protocol,
                loss_texts,
                shown_path(args.loss_text),
                device=args.device or str(state.device),
                finished=finished,
            )
            run_all(
                study,
                tokenizer,
                args.results,
                progress=not args.no_progress and state.is_local_main_process,
                rank=state.process_index,
                world_size=state.num_processes,
            )
        state.wait_for_everyone()
    finally:
        leave_process_group()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.json is not None:
        check_writable(args.json)
    if args.report is not None:
        from harness.scoring.report import check_report_dir

        check_report_dir(args.report)
    if args.from_results is None:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        check_writable(args.results)
        run_study(args)
        if int(os.environ.get("RANK", "0")) != 0:
            return 0  # under accelerate launch, the main process reports
    records = read_results(args.from_results or args.results)
    if not any(int(r["data_size"]) > 0 for r in records):  # 0-shot runs only (--data-sizes 0): nothing to fit
        points = len({(r["model"], r.get("revision")) for r in records})
        print(
            f"{args.from_results or args.results}: 0-shot runs of {points} models, no finetuned runs to fit the law on"
        )
        return 0
    results = forecasts(records, args.fit_up_to, args.resamples, args.seed)
    for result in results:
        print("\n".join(format_forecast(result, harness.cli.terminal_width())))
        print()
    if args.json is not None:
        document = {
            "results_file": str(args.from_results or args.results),
            "fit_up_to": args.fit_up_to,
            "tasks": [r.to_json() for r in results],
        }
        if not write_output(args.json, lambda f: f.write(json.dumps(document, indent=1) + "\n")):
            return 1
        print(f"wrote {args.json}")
    if args.report is not None:
        from harness.forecast.report import write_report

        for path in write_report(results, args.report):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    harness.cli.run(main)
