"""The README's commands, run as written, in a working directory that holds what a fresh clone holds
(the scripts, the library, the strategies, the bundled suite and the committed datasets), so that
they cannot rot. Commands that need a GPU and the network say so in a comment, and installing is
CI's job; every other line of every bash block runs, and must exit 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch  # CI's numpy-1 run has no torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
NOT_RUN = {
    "python3 -m pip install": "installing is CI's job",
    "python3 -m pytest": "this is the test run",
    "# GPU": "needs a GPU and the network",
}


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def commands() -> list[str]:
    return [line for block in blocks("bash") for line in block.splitlines() if line.strip()]


def why_not_run(command: str) -> str | None:
    return next((reason for mark, reason in NOT_RUN.items() if mark in command), None)


def test_the_readme_is_short_and_starts_with_what_a_researcher_came_for():
    lines = README.splitlines()
    assert len(lines) <= 200
    assert any(line.startswith("## Write a strategy") for line in lines[:80])
    links = re.findall(r"\]\(((?:docs|suite|benchmarks)/[^)#]+)", README)
    assert links and all((ROOT / link).exists() for link in links), [
        link for link in links if not (ROOT / link).exists()
    ]


def test_every_readme_command_is_run_or_says_why_not():
    run = [c for c in commands() if why_not_run(c) is None]
    assert {"python3 challenge.py", "python3 predict_emergence.py"} <= set(run)
    assert any(c.startswith("python3 preprocess_train.py --models suite") for c in run)
    assert all(why_not_run(c) for c in commands() if "preprocess_train.py" in c and "--models suite" not in c)


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """A directory laid out as a fresh clone (links into this one: git-ignored files stay out)."""
    root = tmp_path_factory.mktemp("clone")
    for name in (
        "challenge.py",
        "preprocess_train.py",
        "blind_test.py",
        "predict_emergence.py",
        "harness",
        "strategies",
        "suite",
    ):
        (root / name).symlink_to(ROOT / name)
    tracked = subprocess.run(["git", "ls-files", "data"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:  # not a git checkout (an unpacked archive): every file of data/
        tracked = [str(p.relative_to(ROOT)) for p in (ROOT / "data").rglob("*") if p.is_file()]
    for name in tracked:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(ROOT / name)
    (root / "my_strategy.py").write_text(blocks("python")[0])  # "Save this as my_strategy.py"
    bin_dir = root / ".bin"
    bin_dir.mkdir()
    python3 = bin_dir / "python3"  # `python3` is this interpreter, in its environment (a link would leave a venv)
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python3.chmod(0o755)
    return root


@pytest.mark.parametrize("command", [c for c in commands() if why_not_run(c) is None])
def test_readme_command_runs_as_written(fresh_clone, command):
    env = {**os.environ, "PATH": f"{fresh_clone / '.bin'}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        ["bash", "-c", command], cwd=fresh_clone, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
