"""challenge.py --report: the page and its pictures, the per-prefix numbers they draw, and refusals."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import challenge
from harness.dataset import save_dataset
from harness.report import picture_data, rank_bins, target_ranks
from harness.scoring import emergent_prefixes

# Three prefixes, input models a and b, target t (top-1s: 1, 3, 5), vocabulary 6, hand-checkable:
# prefix 0: b agrees (rank 1); a ranks token 1 second (only token 0 is above it).
# prefix 1: emergent; under a tokens 0, 1, 2 are above token 3 (rank 4); under b only token 4 (rank 2:
#           the tokens tying token 3 are not above it).
# prefix 2: emergent by top-1 (a's first argmax is token 0), yet a ties token 5 with it, so nothing is
#           above: rank 1; under b token 2 is above it: rank 2.
A = [[.5, .2, .1, .1, .05, .05], [.4, .3, .2, .05, .03, .02], [.2, .2, .1, .1, .2, .2]]
B = [[.1, .6, .1, .1, .05, .05], [.1, .1, .1, .1, .5, .1], [.1, .1, .5, .1, .1, .1]]
T = [[.1, .7, .1, .04, .03, .03], [.1, .1, .1, .6, .05, .05], [.1, .1, .1, .1, .1, .5]]
RANKS = [[2, 1], [4, 2], [1, 2]]
SIZES = {"a": 1_000, "t": 100_000, "b": 10_000}


def hand_dataset(path, order=("a", "b", "t"), sizes=True):
    columns = {"a": A, "b": B, "t": T}
    probs = np.array([columns[m] for m in order], dtype=np.float16).transpose(1, 0, 2)
    metadata = {"models": [{"name": m, "non_embedding_params": SIZES[m], "total_params": 2 * SIZES[m]}
                           for m in order]} if sizes else None
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
    assert target_ranks(probs.astype(np.float32), target_top1).tolist() == ranks.tolist()  # float16 bit trick = float order


def test_picture_data_with_the_target_not_last(tmp_path):
    path = hand_dataset(tmp_path / "middle.pkl", order=("a", "t", "b"))
    data = picture_data({"path": str(path), "n": 3, "target": "t"}, "middle")
    assert data.input_names == ["a", "b"] and data.input_sizes == [1_000, 10_000]
    assert data.ranks.tolist() == RANKS
    assert data.agreement.tolist() == [[False, True], [False, False], [False, False]]
    assert data.emergent_index.tolist() == [1, 2] and data.emergent_tokens.tolist() == [3, 5]
    assert data.emergent_sentences == ["one", "two"]
    # the target's top-1 under every model, in the dataset's order (a, t, b)
    np.testing.assert_allclose(data.emergent_probs, [[.05, .6, .1], [.2, .5, .1]], rtol=1e-3)
    first_two = picture_data({"path": str(path), "n": 2, "target": "t"}, "middle")  # --num-samples 2
    assert first_two.ranks.tolist() == RANKS[:2] and first_two.emergent_index.tolist() == [1]


def test_rank_bins_cover_every_rank_once():
    edges = rank_bins(4000)
    assert edges.tolist() == [1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 4001]
    counts, _ = np.histogram(np.arange(1, 4001), bins=edges)
    assert counts.sum() == 4000 and counts[:4].tolist() == [1, 1, 2, 5]


def test_report_writes_pictures_and_a_page_linking_them(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    sized = hand_dataset(tmp_path / "sized.pkl")
    unsized = hand_dataset(tmp_path / "unsized.pkl", sizes=False)
    report = tmp_path / "new" / "report"
    assert challenge.main(["--dataset", str(sized), "--dataset", str(unsized), "--strategy", "average",
                           "--strategy", "largest", "--report", str(report)]) == 0
    assert f"report: {report / 'index.md'}" in capsys.readouterr().out
    page = (report / "index.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(<([^>]+)>\)", page)  # <...>: a file name may hold spaces
    pictures = sorted(p.name for p in report.glob("*.png"))
    assert sorted(linked) == pictures == ["accuracy.png", "emergence.png", "sized-emergent.png", "sized-rank.png",
                                          "unsized-emergent.png", "unsized-rank.png"]
    assert all((report / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for name in pictures)
    assert sorted(p.name for p in report.iterdir()) == sorted(pictures + ["index.md"])  # no temporary files left
    assert "sizes are missing from a sidecar, so models are placed by their index" in page.lower()
    assert "The 2 prefixes of 3 whose target top-1 no input model ranks first" in page
    assert "- prefix 1: " in page and "after `one`" in page  # the labelled prefixes, by row and text


def test_no_emergent_prefix_is_said_not_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    path = hand_dataset(tmp_path / "easy.pkl")
    assert challenge.main(["--dataset", str(path), "--num-samples", "1", "--strategy", "largest",
                           "--report", str(tmp_path / "r")]) == 0
    assert not (tmp_path / "r" / "easy-emergent.png").exists()
    assert "No prefix is emergent (of 1)" in (tmp_path / "r" / "index.md").read_text()


def test_missing_matplotlib_is_one_line_before_scoring(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    path = hand_dataset(tmp_path / "d.pkl")
    assert challenge.main(["--dataset", str(path), "--report", str(tmp_path / "r")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == "error: --report needs matplotlib: pip install matplotlib\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("problem", ["a_file", "under_a_file"])
def test_unwritable_report_folder_is_refused_before_scoring(tmp_path, capsys, problem):
    pytest.importorskip("matplotlib")
    path = hand_dataset(tmp_path / "d.pkl")
    (tmp_path / "a_file").write_text("")
    report = {"a_file": tmp_path / "a_file", "under_a_file": tmp_path / "a_file" / "report"}[problem]
    assert challenge.main(["--dataset", str(path), "--report", str(report)]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # no leaderboard: nothing was scored
    assert err.startswith(f"error: {report}: ") and len(err.strip().splitlines()) == 1, err


def test_token_labels_never_reach_for_the_network(monkeypatch):
    """A hub-named target without a local tokenizer labels tokens by id, without a download attempt."""
    from tokenizers import Tokenizer

    from harness.report import token_texts
    from harness.tokenizer import load_tokenizer

    monkeypatch.setattr(Tokenizer, "from_pretrained", lambda *a, **k: pytest.fail("the report tried to download"))
    load_tokenizer.cache_clear()
    assert token_texts("nobody/no-such-model", np.array([5, 7])) == (["id 5", "id 7"], False)
    texts, decoded = token_texts("suite-1.5m", np.array([262]))
    assert decoded and texts == ["' the'"]
