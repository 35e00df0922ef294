"""--report: the page and its pictures, the per-prefix numbers they draw (computed by the engine in
its pass over the data: the report reads no dataset), and refusals."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import ROOT, run_script

from harness.data.dataset import save_dataset
from harness.scoring.evaluate import Settings, score_dataset, target_ranks
from harness.scoring.registry import REGISTRY, Strategy
from harness.scoring.report import best_drafter, drafting_curve, interval_cell, rank_bins, trend, write_report
from harness.scoring.top1 import StrategyFailure, StrategyScore, emergent_prefixes
from strategies import load_builtin

# Three prefixes, input models a and b, target t (top-1s: 1, 3, 5), vocabulary 6, hand-checkable:
# prefix 0: b agrees (rank 1); a ranks token 1 second (only token 0 is above it).
# prefix 1: emergent; under a tokens 0, 1, 2 are above token 3 (rank 4); under b only token 4 (rank 2:
#           the tokens tying token 3 are not above it).
# prefix 2: emergent by top-1 (a's first argmax is token 0), yet a ties token 5 with it, so nothing is
#           above: rank 1; under b token 2 is above it: rank 2.
A = [[0.5, 0.2, 0.1, 0.1, 0.05, 0.05], [0.4, 0.3, 0.2, 0.05, 0.03, 0.02], [0.2, 0.2, 0.1, 0.1, 0.2, 0.2]]
B = [[0.1, 0.6, 0.1, 0.1, 0.05, 0.05], [0.1, 0.1, 0.1, 0.1, 0.5, 0.1], [0.1, 0.1, 0.5, 0.1, 0.1, 0.1]]
T = [[0.1, 0.7, 0.1, 0.04, 0.03, 0.03], [0.1, 0.1, 0.1, 0.6, 0.05, 0.05], [0.1, 0.1, 0.1, 0.1, 0.1, 0.5]]
RANKS = [[2, 1], [4, 2], [1, 2]]
SIZES = {"a": 1_000, "t": 100_000, "b": 10_000}


def hand_dataset(path, order=("a", "b", "t"), sizes=True):
    columns = {"a": A, "b": B, "t": T}
    probs = np.array([columns[m] for m in order], dtype=np.float16).transpose(1, 0, 2)
    metadata = (
        {"models": [{"name": m, "non_embedding_params": SIZES[m], "total_params": 2 * SIZES[m]} for m in order]}
        if sizes
        else None
    )
    save_dataset(path, list(order), ["zero", "one", "two"], probs, metadata)
    return path


def test_emergent_prefixes_and_ranks_by_hand():
    probs = np.array([A, B, T], dtype=np.float16).transpose(1, 0, 2)
    target_top1 = probs[:, 2].argmax(axis=1)
    assert list(target_top1) == [1, 3, 5]
    assert list(emergent_prefixes(probs[:, :2].argmax(axis=2), target_top1)) == [False, True, True]
    for rows_per_chunk in (1, 2, 64):  # chunking changes nothing
        ranks = target_ranks(probs, target_top1, rows_per_chunk=rows_per_chunk)
        assert ranks[:, :2].tolist() == RANKS and ranks[:, 2].tolist() == [1, 1, 1]
    assert (
        target_ranks(probs.astype(np.float32), target_top1).tolist() == ranks.tolist()
    )  # float16 bit trick = float order


def pictures(path, num_samples=None, chunk_size=None, target="t", strategies=("largest",)):
    load_builtin()
    settings = Settings(target=target, num_samples=num_samples, chunk_size=chunk_size, pictures=True, progress=False)
    return score_dataset(path, [REGISTRY[name] for name in strategies], settings)


@pytest.mark.parametrize("chunk_size", [1, 2, None])
def test_picture_data_with_the_target_not_last(tmp_path, chunk_size):
    path = hand_dataset(tmp_path / "middle.pkl", order=("a", "t", "b"))
    data = pictures(path, chunk_size=chunk_size).pictures
    assert data.input_names == ["a", "b"] and data.input_sizes == [1_000, 10_000]
    assert data.ranks.tolist() == RANKS
    assert data.agreement.tolist() == [[False, True], [False, False], [False, False]]
    assert data.emergent_index.tolist() == [1, 2] and data.emergent_tokens.tolist() == [3, 5]
    assert data.emergent_sentences == ["one", "two"]
    # the target's top-1 under every model, in the dataset's order (a, t, b)
    np.testing.assert_allclose(data.emergent_probs, [[0.05, 0.6, 0.1], [0.2, 0.5, 0.1]], rtol=1e-3)
    first_two = pictures(path, num_samples=2, chunk_size=chunk_size).pictures  # --num-samples 2
    assert first_two.ranks.tolist() == RANKS[:2] and first_two.emergent_index.tolist() == [1]


def test_rank_bins_cover_every_rank_once():
    edges = rank_bins(4000)
    assert edges.tolist() == [1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 4001]
    counts, _ = np.histogram(np.arange(1, 4001), bins=edges)
    assert counts.sum() == 4000 and counts[:4].tolist() == [1, 1, 2, 5]


def test_report_writes_pictures_and_a_page_linking_them(tmp_path):
    pytest.importorskip("matplotlib")
    sized = hand_dataset(tmp_path / "sized.pkl")
    unsized = hand_dataset(tmp_path / "unsized.pkl", sizes=False)
    report = tmp_path / "new" / "report"
    result = run_script(
        "challenge.py",
        "--dataset",
        sized,
        "--dataset",
        unsized,
        "--strategy",
        "average",
        "--strategy",
        "largest",
        "--report",
        report,
    )
    assert f"report: {report / 'index.md'}" in result.stdout
    page = (report / "index.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(<([^>]+)>\)", page)  # <...>: a file name may hold spaces
    pictures = sorted(p.name for p in report.glob("*.png"))
    assert (
        sorted(linked)
        == pictures
        == [
            "accuracy.png",
            "emergence.png",
            "harder.png",
            "mirage.png",
            "sized-emergent.png",
            "sized-rank.png",
            "speculative.png",
            "unsized-emergent.png",
            "unsized-rank.png",
        ]
    )
    assert all((report / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for name in pictures)
    assert sorted(p.name for p in report.iterdir()) == sorted(pictures + ["index.md"])  # no temporary files left
    assert "sizes are missing from a sidecar, so models are placed by their index" in page.lower()
    assert "The 2 prefixes of 3 whose target top-1 no input model ranks first" in page
    assert "- prefix 1: " in page and "after `one`" in page  # the labelled prefixes, by row and text


def test_no_emergent_prefix_is_said_not_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    path = hand_dataset(tmp_path / "easy.pkl")
    write_report([pictures(path, num_samples=1)], tmp_path / "r")
    assert not (tmp_path / "r" / "easy-emergent.png").exists()
    assert "No prefix is emergent (of 1)" in (tmp_path / "r" / "index.md").read_text()


def test_missing_matplotlib_is_one_line_before_scoring(tmp_path):
    blocker = tmp_path / "blocked"
    (blocker / "matplotlib").mkdir(parents=True)
    (blocker / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    path = hand_dataset(tmp_path / "d.pkl")
    result = run_script(
        "challenge.py", "--dataset", path, "--report", tmp_path / "r", check=False, env={"PYTHONPATH": str(blocker)}
    )  # `import matplotlib` now raises ImportError
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "error: --report needs matplotlib: pip install matplotlib\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("problem", ["a_file", "under_a_file"])
def test_unwritable_report_folder_is_refused_before_scoring(tmp_path, problem):
    pytest.importorskip("matplotlib")
    path = hand_dataset(tmp_path / "d.pkl")
    (tmp_path / "a_file").write_text("")
    report = {"a_file": tmp_path / "a_file", "under_a_file": tmp_path / "a_file" / "report"}[problem]
    result = run_script("challenge.py", "--dataset", path, "--report", report, check=False)
    out, err = result.stdout, result.stderr
    assert result.returncode == 1 and out == ""  # no leaderboard: nothing was scored
    assert err.startswith(f"error: {report}: ") and len(err.strip().splitlines()) == 1, err


def test_token_labels_never_reach_for_the_network(monkeypatch):
    """A hub-named target without a local tokenizer labels tokens by id, without a download attempt."""
    from tokenizers import Tokenizer

    from harness.data.tokenizer import load_tokenizer
    from harness.scoring.report import token_texts

    monkeypatch.setattr(Tokenizer, "from_pretrained", lambda *a, **k: pytest.fail("the report tried to download"))
    load_tokenizer.cache_clear()
    assert token_texts("nobody/no-such-model", np.array([5, 7])) == (["id 5", "id 7"], False)
    the = json.loads((ROOT / "suite" / "models" / "suite-1.5m" / "tokenizer.json").read_text())["model"]["vocab"][
        "Ġthe"
    ]
    texts, decoded = token_texts("suite-1.5m", np.array([the]))
    assert decoded and texts == ["' the'"]


def test_drafting_curve_by_hand():
    # (1 - alpha^(gamma + 1)) / (1 - alpha): at alpha = 1/2 that is 2 - 2^-gamma
    np.testing.assert_allclose(
        drafting_curve(0.5), [1.5, 1.75, 1.875, 1.9375, 1.96875, 1.984375, 1.9921875, 1.99609375]
    )
    np.testing.assert_allclose(drafting_curve(0.0, (1, 4)), [1, 1])  # every draft rejected: the target's own token
    np.testing.assert_allclose(drafting_curve(1.0, (1, 4)), [2, 5])  # every draft accepted: gamma + 1


def row(name, alpha=None):
    """A scored strategy: with a mean alpha it returned distributions, without one token ids."""
    return StrategyScore(
        name,
        np.array([True, False]),
        (0.0, 1.0),
        0,
        0,
        summary=None if alpha is None else {"alpha": {"mean": alpha, "ci95": [0, 1]}},
    )


def test_best_drafter_is_the_highest_alpha_of_the_distributions():
    assert best_drafter([row("ids"), StrategyFailure("broken", "error")]) is None
    rows = [row("ids"), row("low", 0.5), StrategyFailure("broken", "error"), row("high", 0.8), row("tie", 0.8)]
    assert best_drafter(rows).name == "high"  # the first listed on a tie


def test_interval_cell_and_trend():
    assert interval_cell({"mean": 0.5, "ci95": [0.25, 0.75]}, scale=100, digits=1) == "50.0 [25.0, 75.0]"
    assert interval_cell({"mean": 2.0, "ci95": [1.5, 2.5]}) == "2.000 [1.500, 2.500]"
    assert interval_cell(None) == "\u2014"
    assert trend(np.array([0.1, 0.2, 0.3])) == "rises at every step"
    assert trend(np.array([0.3, 0.2, 0.1])) == "falls at every step"
    assert trend(np.array([0.1, 0.3, 0.2])) == trend(np.array([0.1, 0.1])) == "not monotone"


# Token ids, not a distribution (the built-in strategies may return either): the first input model's top-1.
FIRST_MODEL = Strategy("first-model", lambda sentences, models, target, probs: probs[:, 0].argmax(axis=1), "")


def test_mirage_and_speculative_pictures_from_the_results(tmp_path):
    """By hand, per prefix, alpha = sum_x min(p, q) against T: a 0.5, 0.4, 0.7 (mean 0.533); b 0.9, 0.5, 0.6
    (0.667); the mean of a and b 0.7, 0.475, 0.65 (0.608). At gamma = 4, (1 - alpha^5) / (1 - alpha): 2.05, 2.60,
    2.34. The file lists b first: the pictures and the table still go smallest first (a: 1,000 parameters)."""
    pytest.importorskip("matplotlib")
    path = hand_dataset(tmp_path / "h.pkl", order=("b", "t", "a"))
    mean = Strategy("mean", lambda sentences, models, target, probs: probs.mean(axis=1, dtype=np.float32), "")
    result = score_dataset(path, [FIRST_MODEL, mean], Settings(target="t", pictures=True, progress=False))
    page = write_report([result], tmp_path / "r").read_text()
    for name in ("mirage.png", "speculative.png"):
        assert (tmp_path / "r" / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert f"](<{name}>)" in page
    # top-1: a agrees on no prefix, b on prefix 0; KL is left to tests/test_metrics.py
    assert (
        "- h (n = 3): top-1 0.0% \u2192 33.3% (rises at every step), alpha 0.53 \u2192 0.67 (rises at every step)"
        in page
    )
    assert "- h: a 2.05, b 2.60, strategy mean 2.34\n" in page  # first-model returned ids: not a drafter
    table = page.split("## h: every metric")[1].split("##")[0]
    assert "| a (1,000) | 0.0 [0.0, 0.0] | 100.0 [100.0, 100.0] |" in table  # a ranks 1, 3, 5 within its top 5
    assert table.index("| a (1,000) |") < table.index("| b (10,000) |") < table.index("| strategy first-model |")
    assert "| strategy first-model | 33.3 [0.0, 100.0] | \u2014 | \u2014 | \u2014 | \u2014 | \u2014 |" in table
    assert "| 0.608 [" in table.split("| strategy mean |")[1]


def test_speculative_picture_without_a_distribution_says_so(tmp_path):
    pytest.importorskip("matplotlib")
    settings = Settings(target="t", pictures=True, progress=False)
    write_report([score_dataset(hand_dataset(tmp_path / "h.pkl"), [FIRST_MODEL], settings)], tmp_path / "r")
    assert "- h: a 2.05, b 2.60 (no strategy returned distributions)" in (tmp_path / "r" / "index.md").read_text()
