"""One command-line vocabulary (docs/cli.md): every entry script, benchmark and suite script answers
--help, and a bad value of each shared flag is argparse's usage and one line, exit 2, before anything
loads. Each run is a subprocess from the repository root, offline. Measured on the 2-core machine:
about 0.4-1.3 s a run; suite.train imports torch at its top (about 4-5 s a run there), so its runs
are marked `torch`."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess

import pytest
from conftest import ROOT, script_command

ENTRY_SCRIPTS = ["challenge.py", "preprocess_train.py", "predict_emergence.py", "blind_test.py"]
# Every benchmark and suite script with a command line, found by its `__main__` block: a new one joins
# these tests by itself.
MODULES = [
    f"{path.parent.name}.{path.stem}"
    for folder in ("benchmarks", "suite")
    for path in sorted((ROOT / folder).glob("*.py"))
    if 'if __name__ == "__main__"' in path.read_text()
]
NEEDS_TORCH = {"suite.train"}  # torch at the module's top: not even --help runs without it


def scripts() -> list:
    found = [*ENTRY_SCRIPTS, *MODULES]
    return [pytest.param(s, marks=pytest.mark.torch) if s in NEEDS_TORCH else s for s in found]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*script_command(script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100"},
    )


def test_the_scripts_are_found():
    assert {"benchmarks.speculative", "benchmarks.scale", "suite.train", "suite.prefix_splits"} <= set(MODULES)
    assert "benchmarks.original" not in MODULES and "suite.neox" not in MODULES  # libraries, no command line


@pytest.mark.parametrize("script", scripts())
def test_help(script):
    result = run(script, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ") and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["split", "score"])
def test_blind_test_subcommand_help(command):
    result = run("blind_test.py", command, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: "), result.stderr


NOT_YET: dict[str, str] = {}  # a script not yet through harness.cli.run, and why (strict: fails once it is)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(s, marks=pytest.mark.xfail(reason=NOT_YET[s], strict=True)) if s in NOT_YET else s
        for s in [*ENTRY_SCRIPTS, *MODULES]
    ],
)
def test_through_harness_cli_run(script):
    # Ctrl-C, a missing package and InputError are handled alike: every script ends in harness.cli.run.
    text = (ROOT / (script if script.endswith(".py") else script.replace(".", "/") + ".py")).read_text()
    main_block = text[text.index('if __name__ == "__main__":') :]
    assert re.search(r"\b(harness\.)?cli\.run\(", main_block), f"{script}: end with harness.cli.run(main) (docs/cli.md)"


# (script, arguments before the bad value, the bad flag and value). Arguments a script requires are
# given so that the bad value is the only problem.
BLIND_SCORE = ("blind_test.py", ["score", "--answers", "a.json", "p.csv"])
BAD = [
    *[
        (s, [], "--num-prefixes", "0")
        for s in [
            "challenge.py",
            "preprocess_train.py",
            "benchmarks.bench",
            "benchmarks.loglinear_fit",
            "benchmarks.lowrank_fit",
            "benchmarks.speculative",
        ]
    ],
    ("benchmarks.make_dataset", ["--out", "x.pkl"], "--num-prefixes", "0"),
    ("benchmarks.preprocess_memory", [], "--num-prefixes", "0"),
    ("challenge.py", [], "--num-samples", "0"),  # the old name: hidden, with the same type
    *[
        (s, [], "--seed", "-1")
        for s in [
            "challenge.py",
            "preprocess_train.py",
            "predict_emergence.py",
            "benchmarks.lowrank_fit",
            "benchmarks.scale",
            "benchmarks.speculative",
            "suite.prefix_splits",
            "suite.train",
        ]
    ],
    (*BLIND_SCORE, "--seed", "-1"),
    ("benchmarks.make_dataset", ["--out", "x.pkl", "--num-prefixes", "1"], "--seed", "-1"),
    ("suite.arithmetic", ["--out", "x.jsonl"], "--seed", "-1"),
    *[
        (s, [], "--device", "tpu")
        for s in ["preprocess_train.py", "predict_emergence.py", "benchmarks.bench", "benchmarks.speculative"]
    ],
    *[(s, [], "--dtype", "fp16") for s in ["preprocess_train.py", "predict_emergence.py", "benchmarks.speculative"]],
    *[(s, [], "--batch-size", "0") for s in ["preprocess_train.py", "predict_emergence.py", "suite.train"]],
    *[
        (s, [], flag, value)
        for s in ["preprocess_train.py", "predict_emergence.py"]
        for flag, value in (("--shots", "-1"), ("--digits", "6"), ("--operation", "divide"))
    ],
    ("preprocess_train.py", [], "--models", "suite-1.5m"),
    ("predict_emergence.py", [], "--models", "suite-0.34m suite-1.5m"),
    ("benchmarks.speculative", [], "--models", "suite-1.5m"),
    *[(s, [], "--repeat", "0") for s in ["benchmarks.scale", "benchmarks.loglinear_fit"]],
    *[(s, [], "--interval", "0") for s in ["benchmarks.scale", "benchmarks.preprocess_memory"]],
    *[(s, [], "--threads", "0") for s in ["suite.train", "benchmarks.preprocess_memory"]],
    *[(s, [], "--epochs", "0") for s in ["predict_emergence.py", "benchmarks.lowrank_fit"]],
    ("predict_emergence.py", [], "--learning-rates", "0"),
    ("predict_emergence.py", [], "--resamples", "0"),
    ("benchmarks.speculative", [], "--gamma", "0"),
    ("benchmarks.speculative", [], "--new-tokens", "1"),
    ("challenge.py", [], "--folds", "1"),
]


@pytest.mark.parametrize(
    "script, before, flag, value",
    [pytest.param(*case, marks=pytest.mark.torch) if case[0] in NEEDS_TORCH else case for case in BAD],
)
def test_a_bad_value_is_one_line_and_exit_2(tmp_path, script, before, flag, value):
    result = run(script, *before, flag, *value.split())
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [i for i, line in enumerate(lines) if re.match(r"\S+( \w+)?: error: ", line)]
    # argparse's usage (its first line, then indented continuations), then exactly one line: the error
    assert errors == [len(lines) - 1] and lines[0].startswith("usage: "), result.stderr
    assert all(line.startswith(" ") for line in lines[1:-1]), result.stderr
    assert flag in lines[-1] or "--models" in lines[-1], lines[-1]


def test_the_old_num_samples_still_works_and_is_hidden():
    help_text = run("challenge.py", "--help").stdout
    assert "--num-prefixes N" in help_text and "--num-samples" not in help_text
    result = run("challenge.py", "--dataset", "data/wikipedia.pkl", "--strategy", "largest", "--num-samples", "3")
    assert result.returncode == 0, result.stderr
    assert "data/wikipedia.pkl: 3 prefixes" in result.stdout
    assert "warning: --num-samples is now --num-prefixes" in result.stderr


@pytest.mark.parametrize(
    "script, args",
    [
        ("benchmarks.speculative", ["--json"]),
        ("benchmarks.speculative", ["--report"]),
        ("benchmarks.lowrank_fit", ["--json"]),
        ("benchmarks.make_dataset", ["--num-prefixes", "1", "--out"]),
        ("benchmarks.scale", ["--out"]),
        ("benchmarks.bench", ["--out"]),
        ("predict_emergence.py", ["--json"]),
    ],
)
def test_an_unwritable_output_fails_first(tmp_path, script, args):
    # An output under a file cannot be written: one line and exit 1, before any model loads or work runs.
    if "--report" in args and importlib.util.find_spec("matplotlib") is None:
        pytest.skip("without matplotlib, --report fails first for that (CI's numpy-1 run)")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run(script, *args, str(blocker / "out"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and "a-file" in result.stderr
    assert result.stdout == ""
