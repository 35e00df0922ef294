"""Score next-token strategies: how often does a strategy, given only the smaller models'
distributions after a prefix, guess the token that the target (largest) model ranks first?

    python challenge.py                                  # every strategy, every dataset in data/
    python challenge.py --strategy mine.py:my_strategy   # your function, from your own file
    python challenge.py --list                           # the registered strategies
    python challenge.py --compare loglinear largest      # a paired test of two strategies
    python challenge.py --dataset data/wikipedia.pkl --show 3   # what each model said on one prefix
    python challenge.py --dataset public.pkl --predict-only --predictions p.csv   # a blind test

Needs numpy only (and `tokenizers` for token strings: --show, the predictions CSV, strategies
that want them; tqdm for the progress bar); no torch, transformers or network. The engine is
`harness/scoring/evaluate.py`; this file is the strategies block and the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

import harness.cli
from harness.data.files import check_writable, write_output
from harness.scoring.evaluate import (
    REFERENCE_HEURISTICS,
    DatasetFailure,
    DatasetResult,
    Settings,
    default_datasets,
    predict_dataset,
    score_dataset,
    show_prefix,
)
from harness.scoring.leaderboard import (
    predictions_csv,
    print_harder_here,
    print_leaderboard,
    print_predictions,
    print_shown,
)
from harness.scoring.metrics import GAMMA, METRICS
from harness.scoring.registry import REGISTRY, learned, register, resolve, unavailable  # noqa: F401 (learned: the block below)
from harness.scoring.report import check_report_dir, write_report
from harness.scoring.tasks import harder_here, names_dataset
from strategies import load_builtin

DATA_DIR = Path(__file__).resolve().parent / "data"

##############################################
# Define strategies (add your own here!)
# Each function registered here is scored with the built-in ones (strategies/), on chunks of
# prefixes: probs_per_sentences is a read-only float16 (sentences, input models, vocabulary) array.
##############################################


@register("geometric", "argmax of the geometric mean of the input models")
def geometric(sentences, model_names, target_model_name, probs_per_sentences):
    return np.log(probs_per_sentences.astype(np.float32) + 1e-9).sum(axis=1).argmax(axis=1)


##############################################


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=harness.cli.exit_codes(
            "every strategy ran (and every file was written)",
            "a bad dataset, strategy name or file, output path, or a strategy that failed\n"
            "       (one line on stderr, or in the strategy's row; the other strategies "
            "are still scored)",
        ),
    )
    parser.add_argument(
        "--dataset", action="append", type=Path, help="dataset pickle (repeatable; default: data/*.pkl)"
    )
    parser.add_argument("--strategy", action="append", help="registered name or path/to/file.py:function (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the registered strategies and exit")
    harness.cli.add_num_prefixes(parser, "score on the first N prefixes only", old_name="--num-samples")
    harness.cli.add_seed(parser, "seeds random/numpy before each strategy and the bootstrap")
    parser.add_argument("--target", help="model whose top-1 is predicted (default: the last); the others are inputs")
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default="top1",
        help="rank the leaderboard by this metric "
        "(default: top1); all are in --json. Besides top-1 they need a strategy that returns "
        "distributions: top5, log_loss, kl (KL(target || prediction), nats), alpha (1 - TV), "
        f"tokens_per_pass (expected tokens per target forward pass, drafting {GAMMA})",
    )
    parser.add_argument(
        "--baseline",
        metavar="DATASET",
        help="with several datasets, the one the others are tested "
        "against in 'is prediction harder here?' (a path or file stem; default: the first Wikipedia "
        "set without answers, else the first set without answers)",
    )
    harness.cli.add_json(parser, "write the results as JSON")
    parser.add_argument("--predictions", type=Path, help="write per-prefix guesses as CSV, tokens decoded")
    harness.cli.add_report(parser, "draw the results into DIR: PNGs and index.md (needs matplotlib)")
    parser.add_argument("--debug", action="store_true", help="print the full traceback of a strategy that raises")
    parser.add_argument(
        "--train",
        type=Path,
        help="learned strategies fit on this dataset (no prefix in common "
        "with --dataset), then predict --dataset; without it they are scored by K-fold",
    )
    parser.add_argument(
        "--folds",
        type=harness.cli.at_least(2),
        metavar="K",
        help="K for cross-validating learned "
        "strategies by prefix when there is no --train (default: 5, or the number of prefixes where "
        "fewer; folds drawn with --seed)",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        action="append",
        metavar=("A", "B"),
        help="paired comparison of two "
        "strategies (names or file.py:function) on each dataset: +a/-b and exact McNemar p "
        "(repeatable)",
    )
    parser.add_argument(
        "--show",
        type=harness.cli.non_negative_int,
        metavar="I",
        help="print prefix I of the (first) dataset: each model's "
        "top-k tokens with probabilities, and each strategy's guess, decoded",
    )
    parser.add_argument(
        "--top-k",
        type=harness.cli.positive_int,
        default=5,
        metavar="K",
        help="tokens per model for --show (default: 5)",
    )
    parser.add_argument(
        "--predict-only",
        action="store_true",
        help="write guesses to --predictions, score nothing and "
        "never read the target (for a blind test's public file, whose models are all inputs)",
    )
    harness.cli.add_no_progress(parser)
    args = parser.parse_args(argv)
    if args.train is not None and not args.dataset:
        parser.error("--train needs --dataset: the file its learned strategies are scored on")
    if args.predict_only and not args.predictions and args.show is None:
        parser.error("--predict-only needs --predictions FILE: the guesses are its only output")
    if args.show is not None and (args.json or args.predictions or args.compare or args.report):
        parser.error("--show prints one prefix: not with --json, --predictions, --compare or --report")
    if args.predict_only and (args.compare or args.report or args.metric != "top1"):
        parser.error("--compare, --report and --metric need scores: not with --predict-only")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_builtin()
    strategies = resolve(args.strategy)
    compared = resolve([name for pair in args.compare or [] for name in pair]) if args.compare else []
    if args.list:
        for strategy in strategies:
            print(f"{strategy.name:<24} {strategy.description}")
        return 0
    for path in (args.json, args.predictions):
        if path is not None:
            check_writable(path)
    if args.report is not None:
        check_report_dir(args.report)
    datasets = [(path, args.train) for path in args.dataset] if args.dataset else default_datasets(DATA_DIR)
    if args.baseline is not None and not any(names_dataset(args.baseline, path) for path, _ in datasets):
        raise harness.InputError(
            f"--baseline {args.baseline}: not one of the datasets ({', '.join(str(path) for path, _ in datasets)})"
        )
    strategies = list({s.name: s for s in strategies + compared}.values())  # --compare's are scored too
    if not args.strategy and not args.show:
        for line in unavailable():
            print(f"note: {line}: not scored")
    settings = Settings(
        target=args.target,
        num_samples=args.num_prefixes,
        seed=args.seed,
        folds=args.folds,
        references=tuple(REGISTRY[name] for name in REFERENCE_HEURISTICS if name in REGISTRY),
        comparisons=tuple(tuple(pair) for pair in args.compare or []),
        pictures=args.report is not None,
        progress=not args.no_progress,
        debug=args.debug,
    )

    if args.show is not None:
        path, train = datasets[0]
        shown = show_prefix(path, args.show, strategies, replace(settings, train=train), args.predict_only)
        print_shown(shown, args.top_k)
        return 1 if any(run.error for run in shown.runs) else 0

    results = []
    for path, train in datasets:
        try:
            run = predict_dataset if args.predict_only else score_dataset
            result = run(path, strategies, replace(settings, train=train))
        except harness.InputError as e:  # this dataset only: the others are still scored
            print(f"error: {e}", file=sys.stderr)
            results.append(DatasetFailure(path, str(e)))
            continue
        print_predictions(result) if args.predict_only else print_leaderboard(result, args.metric)
        results.append(result)
    failed = any(result.failed for result in results)
    scored = [result for result in results if isinstance(result, DatasetResult)]
    harder = None
    if len(scored) > 1:
        try:
            harder = harder_here(scored, args.seed, args.baseline)
        except harness.InputError as e:
            print(f"error: {e}", file=sys.stderr)
            failed = True
    if harder:
        print_harder_here(harder)

    if args.json:
        failed |= not write_output(
            args.json,
            lambda f: json.dump(
                {"seed": args.seed, "datasets": [result.to_json() for result in results], "harder_here": harder},
                f,
                indent=2,
            ),
        )
    if args.predictions and any(isinstance(result, DatasetFailure) for result in results):
        # A CSV cannot say that a dataset is missing from it: no file rather than one that looks complete.
        print(f"error: {args.predictions}: not written, since a dataset failed", file=sys.stderr)
    elif args.predictions:
        text = predictions_csv(results, args.predict_only)
        failed |= not write_output(args.predictions, lambda f: f.write(text))
    if args.report:
        try:
            print(f"\nreport: {write_report(results, args.report, seed=args.seed, harder=harder)}")
        except harness.InputError as e:
            print(f"error: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    harness.cli.run(main)
