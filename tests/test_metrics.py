"""The distribution metrics (harness/scoring/metrics.py) on cases worked out by hand, and how the engine
scores a strategy that returns distributions."""

import math

import numpy as np
import pytest

from harness.data.dataset import save_dataset
from harness.scoring.evaluate import Settings, score_dataset, show_prefix
from harness.scoring.metrics import (
    FLOOR,
    compare,
    distribution_metrics,
    rank_of,
    removed_share,
    resample_metrics,
    summary,
    target_rows,
    tokens_per_pass,
    twin_floor,
)
from harness.scoring.registry import Strategy
from harness.scoring.stats import bootstrap_means, paired_bootstrap
from harness.scoring.top1 import StrategyError, check_output, top_two_ratio

LN2 = math.log(2)


def metrics_of(q, p, t):
    return distribution_metrics(np.asarray(q), target_rows(np.asarray(p), np.asarray(t)))


def test_two_three_token_distributions_by_hand():
    # p = (1/2, 1/4, 1/4), q = (1/4, 1/2, 1/4); the target's top-1 is token 0.
    got = metrics_of([[0.25, 0.5, 0.25]], [[0.5, 0.25, 0.25]], [0])
    assert got["alpha"][0] == pytest.approx(0.75)  # 1/4 + 1/4 + 1/4 = 1 - TV, TV = (1/4 + 1/4 + 0) / 2
    assert got["kl"][0] == pytest.approx(0.25 * LN2, rel=1e-6)  # 1/2 ln 2 + 1/4 ln(1/2) + 0
    assert got["log_loss"][0] == pytest.approx(math.log(4), rel=1e-6)  # -ln q(0)
    assert got["top5"][0]  # 3 tokens: everything is in the top 5
    same = metrics_of([[0.5, 0.25, 0.25]], [[0.5, 0.25, 0.25]], [0])
    assert same["kl"][0] == pytest.approx(0, abs=1e-7) and same["alpha"][0] == pytest.approx(1)


def test_float16_zeros_are_floored_at_2_to_the_minus_24_inside_the_logs():
    p = np.array([[0.5, 0.5, 0, 0]], dtype=np.float16)
    q = np.array([[1, 0, 0, 0]], dtype=np.float16)
    got = metrics_of(q, p, [0])  # ties: token 0 is the target's top-1 (the first)
    # KL = 1/2 ln(1/2 / 1) + 1/2 ln(1/2 / 2^-24) = -1/2 ln 2 + 23/2 ln 2 = 11 ln 2
    assert got["kl"][0] == pytest.approx(11 * LN2, rel=1e-6)
    assert got["log_loss"][0] == pytest.approx(0, abs=1e-7) and got["alpha"][0] == pytest.approx(0.5)
    assert metrics_of(q, p, [1])["log_loss"][0] == pytest.approx(24 * LN2, rel=1e-6)  # -ln 2^-24
    assert FLOOR == 2.0**-24
    # Where the target is 0, the term is 0 whatever the prediction: KL(1,0 || 1/2,1/2) = ln 2.
    assert metrics_of(np.array([[0.5, 0.5]], np.float16), np.array([[1, 0]], np.float16), [0])["kl"][
        0
    ] == pytest.approx(LN2, rel=1e-6)


def test_rows_are_divided_by_their_sums():
    # float16 rows are off by up to ~1e-3: both sides are divided by their sum first.
    got = metrics_of([[0.26, 0.52, 0.26]], [[0.505, 0.2525, 0.2525]], [0])
    assert got["alpha"][0] == pytest.approx(0.75, rel=1e-6) and got["kl"][0] == pytest.approx(0.25 * LN2, rel=1e-5)


def test_top5_orders_ties_by_token_id_as_argmax_does():
    q = np.array([[0.3] + [0.1] * 7])
    assert rank_of(q, np.array([0]))[0] == 0
    assert rank_of(q, np.array([4]))[0] == 4  # 0.3 first, then tokens 1, 2, 3 tie it and come before it
    assert rank_of(q, np.array([5]))[0] == 5
    p = np.zeros((2, 8))
    p[0, 4], p[1, 5] = 1, 1
    got = metrics_of(np.repeat(q, 2, axis=0), p, [4, 5])
    assert got["top5"].tolist() == [True, False]


def test_tokens_per_pass_by_hand():
    assert tokens_per_pass(0.5, gamma=1) == pytest.approx(1.5)  # 1 + 1/2
    assert tokens_per_pass(0.5, gamma=2) == pytest.approx(1.75)  # 1 + 1/2 + 1/4
    assert tokens_per_pass(0.5) == pytest.approx(1.9375)  # gamma 4: (1 - 1/32) / (1/2)
    assert tokens_per_pass(0.0) == 1 and tokens_per_pass(1.0) == 5  # nothing accepted; everything: gamma + 1
    assert tokens_per_pass(np.array([0.5, 1.0]), gamma=1).tolist() == [1.5, 2.0]


def test_bootstrap_means_resample_prefixes_the_same_way_for_every_column():
    values = np.stack([np.ones(50), np.arange(50.0), np.arange(50.0) + 2], axis=1)
    means = bootstrap_means(values, seed=3, num_resamples=400)
    assert means.shape == (400, 3)
    assert np.allclose(means[:, 0], 1)  # every resample holds 50 prefixes
    assert np.allclose(means[:, 2] - means[:, 1], 2)  # paired: the same prefixes in both columns
    assert means[:, 1].mean() == pytest.approx(24.5, abs=1)
    assert np.array_equal(means, bootstrap_means(values, seed=3, num_resamples=400))  # seeded


def test_paired_bootstrap_difference_interval_and_p():
    a, b = np.arange(20.0), np.arange(20.0) + 0.1
    means = bootstrap_means(np.stack([a, b], axis=1), seed=0, num_resamples=999)
    # B is better by 0.1 on every prefix: every resample says so, so p is the smallest possible, 1 / 1000.
    result = paired_bootstrap(means[:, 0], means[:, 1], a.mean(), b.mean())
    assert result["difference"] == pytest.approx(-0.1)
    assert result["ci95"] == pytest.approx([-0.1, -0.1]) and result["p_value"] == pytest.approx(1 / 1000)
    same = paired_bootstrap(means[:, 0], means[:, 0], a.mean(), a.mean())
    assert same["difference"] == 0 and same["p_value"] == 1


def test_summary_and_compare_of_two_predictors():
    p = np.array([[0.5, 0.25, 0.25]] * 4)
    per_prefix = {"q": metrics_of([[0.25, 0.5, 0.25]] * 4, p, [0] * 4), "p": metrics_of(p, p, [0] * 4)}
    resampled = resample_metrics(per_prefix, seed=0, num_resamples=100)
    got = summary(per_prefix["q"], resampled["q"], (0.0, (0.0, 0.0)))
    assert got["alpha"]["mean"] == pytest.approx(0.75) and got["alpha"]["ci95"] == pytest.approx([0.75, 0.75])
    assert got["tokens_per_pass"]["mean"] == pytest.approx(tokens_per_pass(0.75))
    versus = compare(per_prefix["q"], resampled["q"], per_prefix["p"], resampled["p"])
    assert versus["kl"]["difference"] == pytest.approx(0.25 * LN2, rel=1e-5)
    assert versus["top5"] == {"a_only": 0, "b_only": 0, "p_value": 1.0}


def test_check_output_takes_distributions_and_names_what_is_wrong():
    guesses, probs = check_output(np.array([[0.2, 0.8, 0.0], [0.5, 0.5, 0.0]]), 2, 3)
    assert guesses.tolist() == [1, 0] and probs.shape == (2, 3)  # a tie: the first token
    assert check_output([2, 0], 2, 3)[1] is None
    with pytest.raises(StrategyError, match=r"shape \(2, 4\)"):
        check_output(np.full((2, 4), 0.25), 2, 3)
    with pytest.raises(StrategyError, match="NaN or infinite probabilities for sentence 8"):
        check_output(np.array([[0.5, 0.5, 0], [np.nan, 0.5, 0.5]]), 2, 3, rows=range(7, 9))
    with pytest.raises(StrategyError, match=r"negative probability \(-0.1\) for sentence 0"):
        check_output(np.array([[0.6, 0.5, -0.1], [0.5, 0.5, 0]]), 2, 3)
    with pytest.raises(StrategyError, match="summing to 1.5 for sentence 1"):
        check_output(np.array([[0.5, 0.5, 0], [0.5, 0.5, 0.5]]), 2, 3)
    with pytest.raises(StrategyError, match="an array of int64: a distribution holds floats"):
        check_output(np.ones((2, 3), dtype=np.int64), 2, 3)
    # float16 -0.0 sorts above every positive value by its bits; top-1 is by value.
    negative_zero = np.array([[-0.0, 0.25, 0.75]], dtype=np.float16)
    assert check_output(negative_zero, 1, 3)[0].tolist() == [2]


def test_top_two_ratio():
    probs = np.array([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [0.4, 0.4, 0.2]], dtype=np.float16)
    assert top_two_ratio(probs) == pytest.approx([0.5, 0.5, 1.0], rel=1e-3)


# The engine, on a small dataset: 3 input models and a target, 4 prefixes, 4 tokens.
PROBS = np.array(
    [
        [[0.5, 0.5, 0, 0], [0.25, 0.75, 0, 0], [0.125, 0.875, 0, 0], [0.5, 0.25, 0.25, 0]],
        [[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0.25, 0.25, 0.5, 0], [0.25, 0.25, 0.5, 0]],
        [[0, 0, 0, 1], [0, 0, 0.5, 0.5], [0, 0.25, 0.25, 0.5], [0, 0.5, 0, 0.5]],
        [[0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25], [1, 0, 0, 0], [0.375, 0.625, 0, 0]],
    ],
    dtype=np.float16,
)


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.pkl"
    save_dataset(path, ["a", "b", "c", "t"], [f"prefix {i}" for i in range(4)], PROBS)
    return path


def as_strategy(name, fn):
    return Strategy(name, fn, name)


def test_a_strategy_returning_an_input_model_scores_as_that_model(small):
    result = score_dataset(
        small, [as_strategy("c", lambda s, m, t, probs: probs[:, 2])], Settings(chunk_size=3)
    )  # two chunks
    row = result.strategies[0]
    assert row.summary == result.model_summaries[2]
    # By hand, model c against the target: prefix 0: target (1/2, 1/4, 1/4, 0), top-1 0; c = (1/8, 7/8, 0, 0).
    assert row.per_prefix["alpha"][0] == pytest.approx(0.125 + 0.25)
    kl0 = 0.5 * math.log(0.5 / 0.125) + 0.25 * math.log(0.25 / 0.875) + 0.25 * math.log(0.25 / FLOOR)
    assert row.per_prefix["kl"][0] == pytest.approx(kl0, rel=1e-5)
    assert row.per_prefix["log_loss"][0] == pytest.approx(math.log(8), rel=1e-6)
    assert row.summary["top1"]["mean"] == row.accuracy


def test_near_ties_and_difficulty(small):
    # A strategy with the mean's distribution is the reference: the difficulty is its KL per prefix.
    mean = as_strategy("average", lambda s, m, t, probs: probs.astype(np.float32).mean(axis=1))
    result = score_dataset(small, [mean], Settings(references=(mean,)))
    assert result.reference.name == "average"
    assert np.array_equal(result.difficulty, result.strategies[0].per_prefix["kl"])
    assert [h["index"] for h in result.hardest()] == list(np.argsort(-result.difficulty, kind="stable"))
    kls = [h["kl"] for h in result.hardest()]
    assert len(kls) == 4 and kls == sorted(kls, reverse=True) and kls[0] == result.difficulty.max()
    # The target's second token over its first: 1/2, 1/2, 1 (a tie: prefix 2 is near-tied), 0.6.
    # The mean's top-1s are 1, 0, 3, 0 against the target's 0, 2, 1, 1: four misses, one near-tied.
    assert result.view.second_ratio.tolist() == pytest.approx([0.5, 0.5, 1.0, 0.6])
    assert result.near_ties() == {
        "threshold": 0.8,
        "prefixes": 1,
        "reference": "average",
        "reference_misses": 4,
        "misses_on_near_tied": 1,
        "reference_top1_near_tied": 0.0,
        "reference_top1_rest": 0.0,
    }


def test_a_strategy_switching_between_ids_and_distributions_fails_in_its_row(small):
    def switching(s, m, t, probs):
        return probs[:, 0] if "prefix 0" in s else probs[:, 0].argmax(axis=1)

    result = score_dataset(small, [as_strategy("switching", switching)], Settings(chunk_size=2))
    assert "returned token ids for prefixes 2-3 but distributions before them" in result.strategies[0].error


def test_show_keeps_each_distribution_at_the_prefix(small):
    shown = show_prefix(small, 2, [as_strategy("b", lambda s, m, t, probs: probs[:, 1])], Settings(chunk_size=3))
    assert shown.runs[0].shown.tolist() == PROBS[2, 1].astype(np.float32).tolist()
    assert shown.difficulty is None  # no reference heuristic ran


def test_a_whole_array_strategy_is_scored_chunk_by_chunk_like_the_others(small):
    mean = lambda s, m, t, probs: probs.astype(np.float32).mean(axis=1)
    chunked = score_dataset(small, [as_strategy("mean", mean)], Settings(chunk_size=3)).strategies[0]

    def whole_mean(s, m, t, probs):
        assert len(s) == 4  # every prefix in one call
        return mean(s, m, t, probs)

    whole_mean.whole_array = True
    whole = score_dataset(small, [as_strategy("mean", whole_mean)], Settings(chunk_size=3)).strategies[0]
    for name in ("top5", "log_loss", "kl", "alpha"):
        assert whole.per_prefix[name].tolist() == chunked.per_prefix[name].tolist(), name


def test_bootstrap_means_draw_the_same_resamples_in_separate_calls():
    # The KL floor's resamples (`harness.scoring.evaluate.kl_floor`) are drawn in a call of their own, and pair
    # with the metrics' only because the same seed over the same prefixes draws the same resamples.
    a, b = np.arange(30.0), np.arange(30.0) ** 2
    together = bootstrap_means(np.stack([b, a], axis=1), seed=5, num_resamples=300)
    assert np.array_equal(bootstrap_means(a[:, None], seed=5, num_resamples=300)[:, 0], together[:, 1])


def test_the_kl_floor_is_half_the_twins_kl_and_the_share_removed_is_of_what_lies_above_it():
    assert twin_floor(np.array([0.2, 0.4])).tolist() == [0.1, 0.2]
    # Reference at 0.25, floor at 0.15: 0.10 to remove. A predictor at 0.20 removes half of it, one at
    # the floor all of it, the reference itself none, and one at 0.35 makes it worse by as much again.
    assert removed_share(0.20, 0.25, 0.15) == pytest.approx(0.5)
    assert removed_share(0.15, 0.25, 0.15) == pytest.approx(1.0)
    assert removed_share(0.25, 0.25, 0.15) == 0
    assert removed_share(0.35, 0.25, 0.15) == pytest.approx(-1.0)


def test_the_leaderboard_gives_the_kl_floor_from_the_twin_and_each_predictors_share_above_it(tmp_path, capsys):
    # Two prefixes, two tokens; the target (1/2, 1/2) after both. Input model a is the target itself,
    # b is (3/4, 1/4). The twin's KL from the target per prefix, 0.02 and 0.06: the floor is 0.01 and 0.03, 0.02 on average.
    probs = np.array([[[0.5, 0.5], [0.75, 0.25], [0.5, 0.5]]] * 2, dtype=np.float16)
    path = tmp_path / "twin.pkl"
    ceiling = {"model": {"name": "t-seed2"}, "top1": [0, 0], "kl": [0.02, 0.06], "alpha": [0.9, 0.9]}
    save_dataset(path, ["a", "b", "t"], ["p0", "p1"], probs, {"noise_ceiling": ceiling})
    # The reference (the best heuristic here, by top-1, first listed on a tie) is `largest`: model b.
    half = as_strategy("half", lambda s, m, t, p: (p[:, 0].astype(np.float32) + p[:, 1]) / 2)  # (5/8, 3/8)
    result = score_dataset(path, [half], Settings(references=(as_strategy("largest", lambda s, m, t, p: p[:, 1]),)))
    floor = result.kl_floor
    kl_b = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # 0.1438
    kl_half = 0.5 * math.log(0.5 / 0.625) + 0.5 * math.log(0.5 / 0.375)  # 0.0323
    assert floor["mean"] == pytest.approx(0.02) and floor["reference"] == "largest"
    assert floor["above_floor"] == pytest.approx(kl_b - 0.02, rel=1e-4)
    assert floor["removed"]["half"]["share"] == pytest.approx((kl_b - kl_half) / (kl_b - 0.02), rel=1e-3)
    assert floor["removed"]["a"]["share"] == pytest.approx(kl_b / (kl_b - 0.02), rel=1e-3)  # the target: KL 0
    assert floor["removed"]["largest"] == {"share": 0.0, "ci95": [0.0, 0.0]}
    # Both prefixes have the same KLs, so only the floor varies across resamples: per prefix it is 0.01
    # and 0.03, so a resample's is 0.01 (the first prefix drawn twice), 0.02 or 0.03, each end a quarter of the time.
    low, high = floor["removed"]["half"]["ci95"]
    assert low == pytest.approx((kl_b - kl_half) / (kl_b - 0.01), rel=1e-3)
    assert high == pytest.approx((kl_b - kl_half) / (kl_b - 0.03), rel=1e-3)
    from harness.scoring.leaderboard import print_leaderboard

    print_leaderboard(result, "kl")
    out = " ".join(capsys.readouterr().out.split())
    assert "KL floor (half the KL to that seed): 0.020 [0.010, 0.030]; largest is 0.124 above it" in out
    from harness.scoring.report import metrics_table

    table = metrics_table(result)
    assert "| KL above the floor removed (%) |" in table.splitlines()[0] and "KL floor: 0.020 [0.010, 0.030]" in table


def test_a_floor_above_the_reference_gives_no_shares_and_says_why(tmp_path, capsys):
    # The twin is 2 nats from the target on both prefixes: the floor (1.0) lies above the reference's KL (0.144).
    probs = np.array([[[0.5, 0.5], [0.75, 0.25], [0.5, 0.5]]] * 2, dtype=np.float16)
    path = tmp_path / "far.pkl"
    ceiling = {"model": {"name": "t-seed2"}, "top1": [0, 0], "kl": [2.0, 2.0], "alpha": [0.5, 0.5]}
    save_dataset(path, ["a", "b", "t"], ["p0", "p1"], probs, {"noise_ceiling": ceiling})
    result = score_dataset(path, [], Settings(references=(as_strategy("largest", lambda s, m, t, p: p[:, 1]),)))
    assert result.kl_floor["mean"] == pytest.approx(1.0) and result.kl_floor["removed"] == {}
    from harness.scoring.leaderboard import print_leaderboard

    print_leaderboard(result, "kl")
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "KL floor (half the KL to that seed): 1.000 [1.000, 1.000], above largest's 0.144: the two seeds "
        "differ too much here for the floor's quadratic approximation"
    ) in out


def test_input_models_are_labelled_by_size_only_where_sizes_tell_them_apart():
    from harness.scoring.leaderboard import size_labels

    curve = [
        {"model": "suite-0.34m", "non_embedding_params": 335_712},
        {"model": "suite-0.79m", "non_embedding_params": 793_344},
    ]
    assert size_labels(curve) == (["336K", "793K"], "")
    # a ladder: a checkpoint shares its model's size, so the short names (less "suite-") say which is which
    curve.insert(1, {"model": "suite-0.79m@step2880", "non_embedding_params": 793_344})
    assert size_labels(curve) == (["0.34m", "0.79m@step2880", "0.79m"], " (suite-*)")
