"""Run the challenge blind: the participants never see the target, the organizer scores them.

    python3 blind_test.py split data/wikipedia-test.pkl --public public.pkl --answers answers.json
    python3 blind_test.py score --answers answers.json alice.csv bob.csv

`split` writes a public dataset holding the input models only (send it with its .json sidecar)
and a private answers file (the target's top-1 per prefix; keep it). Participants run
`python3 challenge.py --dataset public.pkl --predict-only --predictions mine.csv` and send the
CSV. `score` checks every file against the answers (every prefix once, the same prefixes, valid
token ids) and prints the leaderboard: accuracy, 95% bootstrap interval, and exact McNemar
comparisons. numpy only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np

import harness.cli
from harness import InputError, plural
from harness.data.dataset import find_model, load_dataset, save_dataset, sidecar_path
from harness.data.files import atomic_write, check_writable, write_output
from harness.scoring.blind import (
    BlindResult,
    Submission,
    answers_record,
    check_submission,
    load_answers,
    public_metadata,
    read_predictions,
)
from harness.scoring.stats import describe_comparison, paired_comparison
from harness.scoring.top1 import score_guesses, tie_note

MAX_PAIRS_PRINTED = 8  # submissions; beyond that the pairs go to --json only


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links and symlinks too
    except OSError:  # one of them does not exist yet
        return a.resolve() == b.resolve()


def check_split_paths(dataset: Path, public: Path, answers: Path) -> None:
    """Refuse outputs that would overwrite the dataset, its sidecar or each other."""
    outputs = {"--public": public, "--public's sidecar": sidecar_path(public), "--answers": answers}
    for (what, path), (other, other_path) in itertools.combinations(outputs.items(), 2):
        if _same_file(path, other_path):
            raise InputError(f"{path}: both {what} and {other}; give --public a .pkl name and --answers another file")
    for what, path in outputs.items():
        for source in (dataset, sidecar_path(dataset)):
            if _same_file(path, source):
                raise InputError(f"{path}: {what} would overwrite {source}, the dataset being split")


def split(dataset_path: Path, public: Path, answers: Path, target: str | None) -> None:
    dataset = load_dataset(dataset_path)
    names = dataset.model_names
    t = len(names) - 1 if target is None else find_model(names, target, dataset_path)
    if len(names) < 3 or not dataset.sentences:
        # A dataset file holds at least 2 models (harness.data.dataset), so the public one needs 2 inputs.
        raise InputError(
            f"{dataset_path}: a blind test needs at least 3 models (2 inputs + the target) and one "
            f"prefix; it has {len(names)} models, {len(dataset.sentences)} prefixes"
        )
    input_names = names[:t] + names[t + 1 :]
    # A new array of the input models only, copied a chunk at a time: the target's slice is not in
    # the public file at all.
    written = save_dataset(
        public,
        input_names,
        dataset.sentences,
        dataset.probs,
        public_metadata(dataset, input_names),
        columns=[j for j in range(len(names)) if j != t],
    )
    record = answers_record(dataset, t, {"path": str(public), **written})
    atomic_write(answers, lambda f: json.dump(record, f, indent=1), mode="w")
    n = len(dataset.sentences)
    print(
        f"{public}: {n} {plural(n, 'prefix', 'prefixes')}, {len(input_names)} input models "
        f"({', '.join(input_names)}); send it with {sidecar_path(public)} to the participants"
    )
    print(
        f"{answers}: target {names[t]}'s top-1 per prefix (sha256 of the public file {written['sha256'][:12]}...); "
        "keep it private"
    )


def _names(paths: list[Path]) -> dict[Path, str]:
    """Each predictions file's name on the leaderboard: its stem, or its path where two stems collide."""
    stems = [path.stem for path in paths]
    return {path: path.stem if stems.count(path.stem) == 1 else str(path) for path in paths}


def score(answers_path: Path, prediction_paths: list[Path], seed: int) -> BlindResult:
    """Every submission's top-1 agreement with the hidden target. A refused file or strategy gets a
    one-line error on stderr (and in the result), and the others are still scored."""
    answers = load_answers(answers_path)
    view = answers.view()
    submissions = []
    for path, base in _names(prediction_paths).items():
        try:
            per_strategy = read_predictions(path)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            submissions.append(Submission(base, path, None, error=str(e)))
            continue
        for predictions in per_strategy:
            name = base if len(per_strategy) == 1 else f"{base}/{predictions.strategy}"
            guesses, problem = check_submission(predictions, answers)
            if problem is not None:
                print(f"error: {path}, strategy {predictions.strategy!r}: {problem}", file=sys.stderr)
                submissions.append(Submission(name, path, predictions.strategy, error=problem))
            else:
                submissions.append(
                    Submission(name, path, predictions.strategy, score_guesses(name, guesses, view, seed))
                )
    scored = sorted((s for s in submissions if s.error is None), key=lambda s: (-s.score.accuracy, s.name))
    for s in scored[1:]:
        s.score.versus = {"best": scored[0].name, **paired_comparison(s.score.hits, scored[0].score.hits)}
    pairs = [
        {"a": a.name, "b": b.name, **paired_comparison(a.score.hits, b.score.hits)}
        for a, b in itertools.combinations(scored, 2)
    ]
    return BlindResult(answers_path, answers, seed, scored + [s for s in submissions if s.error is not None], pairs)


def print_leaderboard(result: BlindResult) -> None:
    answers, scored = result.answers, result.scored
    n, refused = answers.n, len(result.submissions) - len(scored)
    print(
        f"\n{result.answers_path}: {n} {plural(n, 'prefix', 'prefixes')}, target {answers.target_model} (hidden from "
        f"the participants), {len(answers.input_models)} input models, vocabulary {answers.vocab_size}; "
        f"{len(scored)} {plural(len(scored), 'submission', 'submissions')} scored"
        + (f", {refused} refused (above)" if refused else "")
    )
    if not scored:
        return
    width = max(24, *(len(s.name) for s in scored))
    emergent = int(answers.emergent.sum())
    print(f"  {'submission':<{width}} {'top-1':>7}  {'95% CI':<17} {'n':>6} {'emergent':>9}  vs best")
    for s in scored:
        low, high = s.score.ci95
        versus = describe_comparison(s.score.versus) if s.score.versus else "(best)"
        print(
            f"  {s.name:<{width}} {s.score.accuracy:>7.3f}  [{low:.3f}, {high:.3f}]   {s.score.n:>6} "
            f"{s.score.emergent_correct:>4}/{emergent:<4}  {versus}"
        )
    print(
        f"  emergent: right on the {emergent} {plural(emergent, 'prefix', 'prefixes')} ({emergent / n:.1%}) whose "
        "target top-1 is no input model's top-1; 95% CI: bootstrap, seed "
        f"{result.seed}; vs best: prefixes only this / only the best gets right, exact McNemar"
    )
    tied = len(np.unique(answers.tie_rows))
    if tied:
        print(f"  {tie_note(tied, [(s.name, s.score.tied_misses) for s in scored])}")
    if 2 < len(scored) <= MAX_PAIRS_PRINTED:
        print(
            "  every pair (+a/-b: prefixes only the first / only the second gets right; exact McNemar, "
            "not adjusted for multiple comparisons):"
        )
        for pair in result.pairs:
            print(f"    {pair['a']} vs {pair['b']}: {describe_comparison(pair)}")
    elif len(scored) > MAX_PAIRS_PRINTED:
        print(f"  the {len(result.pairs)} pairwise comparisons are in --json")


EXIT_CODES = harness.cli.exit_codes(
    "done (every predictions file scored)",
    "a bad dataset, answers or predictions file, or an output that cannot be written "
    "or would\n       overwrite an input (one line on stderr; the other predictions "
    "files are still scored)",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    split_parser = commands.add_parser("split", help="a public file without the target, and the private answers")
    split_parser.add_argument("dataset", type=Path, help="a challenge dataset pickle (the last model is the target)")
    split_parser.add_argument("--public", type=Path, required=True, help="the public dataset to write (.pkl)")
    split_parser.add_argument("--answers", type=Path, required=True, help="the private answers file to write (.json)")
    split_parser.add_argument("--target", help="the model to hide (default: the last), by name or last path component")
    score_parser = commands.add_parser("score", help="check and score the participants' predictions CSVs")
    score_parser.add_argument("predictions", type=Path, nargs="+", help="predictions CSVs (challenge.py --predictions)")
    score_parser.add_argument("--answers", type=Path, required=True, help="the answers file of blind_test.py split")
    harness.cli.add_seed(score_parser, "seed of the bootstrap intervals")
    harness.cli.add_json(score_parser, "write every number as JSON")
    args = parser.parse_args(argv)
    if args.command == "score" and any(_same_file(a, b) for a, b in itertools.combinations(args.predictions, 2)):
        parser.error("a predictions file is given twice")

    if args.command == "split":
        check_split_paths(args.dataset, args.public, args.answers)
        for path in (args.public, args.answers):
            check_writable(path)
        split(args.dataset, args.public, args.answers, args.target)
        return 0
    if args.json is not None:
        for path in (args.answers, *args.predictions):
            if _same_file(args.json, path):
                raise InputError(f"{args.json}: --json would overwrite an input file")
        check_writable(args.json)
    result = score(args.answers, args.predictions, args.seed)
    print_leaderboard(result)
    failed = result.failed
    if args.json is not None:
        failed |= not write_output(args.json, lambda f: json.dump(result.to_json(), f, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    harness.cli.run(main)
