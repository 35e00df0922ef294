"""harness.scoring.top1 called directly, on arrays small enough to work out by hand: top-1 and its
float16 ties, the target view (chunk by chunk), emergent prefixes, scores, bootstrap intervals and
the exact McNemar test. numpy only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.scoring.leaderboard import human_size
from harness.scoring.stats import bootstrap_ci, describe_comparison, mcnemar_exact_p, paired_comparison
from harness.scoring.top1 import StrategyError, check_guesses, score_guesses, target_view, tie_note, top1, top1_ties

# Four prefixes, models a, b and the target t (last), vocabulary 5:
#   prefix 0: a -> 1, b -> 2, t -> 2 (b agrees)
#   prefix 1: a -> 0, b -> 0, t -> 3 (emergent), and t ties tokens 3 and 4 (3 is first: it counts)
#   prefix 2: a -> 4, b -> 1, t -> 4 (a agrees)
#   prefix 3: a -> 0 (ties 0 and 2: the first counts), b -> 3, t -> 1 (emergent), t ties 1 and 2
PROBS = np.array(
    [
        [[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.1, 0.5, 0.2, 0.1], [0.1, 0.1, 0.5, 0.2, 0.1]],
        [[0.6, 0.1, 0.1, 0.1, 0.1], [0.4, 0.3, 0.1, 0.1, 0.1], [0.1, 0.1, 0.2, 0.3, 0.3]],
        [[0.1, 0.1, 0.1, 0.1, 0.6], [0.1, 0.6, 0.1, 0.1, 0.1], [0.2, 0.1, 0.1, 0.1, 0.5]],
        [[0.4, 0.1, 0.4, 0.05, 0.05], [0.1, 0.1, 0.1, 0.6, 0.1], [0.2, 0.3, 0.3, 0.1, 0.1]],
    ],
    dtype=np.float16,
)


def test_top1_takes_the_first_of_tied_tokens_and_orders_like_float():
    assert top1(PROBS).tolist() == [[1, 2, 2], [0, 0, 3], [4, 1, 4], [0, 3, 1]]
    assert top1(PROBS).tolist() == PROBS.astype(np.float32).argmax(axis=2).tolist()


def test_ties_of_the_target_top1_by_hand():
    rows, tokens = top1_ties(PROBS[:, 2], np.array([2, 3, 4, 1]))
    assert list(zip(rows.tolist(), tokens.tolist())) == [(1, 4), (3, 2)]
    rows, tokens = top1_ties(PROBS[:, 0], np.array([1, 0, 4, 0]))  # a's prefix 3: token 2 ties token 0
    assert list(zip(rows.tolist(), tokens.tolist())) == [(3, 2)]


@pytest.mark.parametrize("rows_per_chunk", [1, 2, 3, 4, None])
def test_target_view_is_the_same_whatever_the_chunk(rows_per_chunk):
    view = target_view(PROBS, 2, rows_per_chunk)
    assert view.target_top1.tolist() == [2, 3, 4, 1]
    assert view.input_top1.tolist() == [[1, 2], [0, 0], [4, 1], [0, 3]]
    assert view.emergent.tolist() == [False, True, False, True]
    assert list(zip(view.tie_rows.tolist(), view.tie_tokens.tolist())) == [(1, 4), (3, 2)]
    assert view.tied_targets == 2


def test_target_view_with_the_target_in_the_middle():
    view = target_view(PROBS, 1, 3)  # b is the target; a and t are inputs
    assert view.target_top1.tolist() == [2, 0, 1, 3]
    assert view.emergent.tolist() == [False, False, True, True]
    assert view.tie_rows.tolist() == [] and view.tied_targets == 0


def test_a_score_by_hand():
    view = target_view(PROBS, 2)
    # right on 0 and 2; on prefix 1 guesses 4, which ties the target's top-1 (scored wrong); on 3 guesses 2 (a tie too)
    score = score_guesses("mine", np.array([2, 4, 4, 2]), view, seed=0, seconds=1.5, fit="by hand")
    assert (score.accuracy, score.correct, score.n, score.tied_misses, score.emergent_correct) == (0.5, 2, 4, 2, 0)
    assert score.hits.tolist() == [True, False, True, False]
    assert score.to_json() == {
        "name": "mine",
        "accuracy": 0.5,
        "correct": 2,
        "n": 4,
        "ci95": list(score.ci95),
        "seconds": 1.5,
        "fit": "by hand",
        "tied_misses": 2,
        "emergent_correct": 0,
        "vs_reference": None,
        "metrics": {"top1": {"mean": 0.5, "ci95": list(score.ci95)}},
    }
    emergent_right = score_guesses("e", np.array([0, 3, 0, 1]), view, seed=0)
    assert (emergent_right.correct, emergent_right.emergent_correct) == (2, 2)


def test_tie_note_names_the_strategies_with_tied_misses():
    assert tie_note(2, [("a", 0), ("b", 3)]) == (
        "the target's top-1 is a float16 tie for 2 prefixes: the first tied "
        "token counts as its top-1; guesses of another tied token, scored "
        "wrong: b 3"
    )
    assert tie_note(1, [("a", 0)]).endswith("wrong: none") and "tie for 1 prefix:" in tie_note(1, [])


def exact_mcnemar(a_only: int, b_only: int) -> float:
    """By hand: 2 P(X <= min) for X ~ Binomial(a_only + b_only, 1/2), at most 1."""
    n = a_only + b_only
    return min(1.0, 2 * sum(math.comb(n, j) for j in range(min(a_only, b_only) + 1)) / 2**n)


@pytest.mark.parametrize("a_only, b_only", [(0, 0), (9, 4), (0, 3), (2, 10), (5, 5), (40, 70), (0, 1000)])
def test_mcnemar_is_the_exact_binomial(a_only, b_only):
    assert mcnemar_exact_p(a_only, b_only) == pytest.approx(exact_mcnemar(a_only, b_only), rel=1e-9, abs=1e-300)


def test_paired_comparison_by_hand():
    a = np.array([1, 1, 1, 0, 0, 1], dtype=bool)
    b = np.array([1, 0, 0, 1, 0, 1], dtype=bool)
    comparison = paired_comparison(a, b)
    assert (comparison["a_only"], comparison["b_only"]) == (2, 1)
    assert comparison["p_value"] == pytest.approx(1.0)  # 2 * (1 + 3) / 8 = 1
    assert describe_comparison(comparison) == "+2/-1 p=1"
    with pytest.raises(ValueError):
        paired_comparison(a, b[:-1])


def test_bootstrap_interval_covers_the_accuracy_and_narrows_with_n():
    small = bootstrap_ci(np.arange(100) % 2 == 0)
    large = bootstrap_ci(np.arange(10_000) % 2 == 0)
    assert small[0] < 0.5 < small[1] and large[0] < 0.5 < large[1]
    assert (large[1] - large[0]) < (small[1] - small[0]) / 5
    assert small == bootstrap_ci(np.arange(100) % 2 == 0)  # seeded
    assert bootstrap_ci(np.ones(10, dtype=bool)) == (1.0, 1.0)


def test_check_guesses_accepts_lists_of_numpy_ints_and_names_what_is_wrong():
    assert check_guesses([np.int64(3), 4], 2, 10).tolist() == [3, 4]
    with pytest.raises(StrategyError):
        check_guesses([True, False], 2, 10)
    with pytest.raises(StrategyError, match="^returned None, expected one token id per sentence$"):
        check_guesses(None, 2, 10)
    with pytest.raises(StrategyError, match="^returned dict, "):
        check_guesses({0: 1, 1: 2}, 2, 10)
    with pytest.raises(StrategyError, match="^returned 1 guesses for 2 sentences$"):
        check_guesses([1], 2, 10)
    # A chunk's guesses name the prefix by its index in the dataset.
    with pytest.raises(StrategyError, match=r"^returned token id 10 for sentence 7, outside \[0, 10\)$"):
        check_guesses([1, 10], 2, 10, rows=range(6, 8))


def test_human_sizes():
    assert [human_size(n) for n in (999, 1000, 6592, 25472, 793344, 1546720, 70_426_624, 2_775_208_960)] == [
        "999",
        "1K",
        "6.6K",
        "25K",
        "793K",
        "1.5M",
        "70M",
        "2.8B",
    ]
