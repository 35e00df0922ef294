"""Speculative decoding priced (harness/drafting/pricing.py): the speedup formula, the best gamma, the
costs from a sidecar, a strategy's summed cost, and what the engine and the leaderboard make of them.

numpy only.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import InputError
from harness.data.dataset import save_dataset
from harness.drafting.pricing import best_gamma, model_costs, priced, speedup, strategy_cost
from harness.scoring.evaluate import Settings, score_dataset
from harness.scoring.metrics import tokens_per_pass
from harness.scoring.registry import REGISTRY, Strategy, register


def test_the_speedup_is_tokens_per_pass_over_the_cost_of_a_round():
    # The example: alpha 0.777, gamma 4, c 0.5: (1 - 0.777^5) / 0.223 = 3.2143 tokens per pass,
    # over 4 x 0.5 + 1 = 3 target passes' time: 1.07x.
    assert tokens_per_pass(0.777, 4) == pytest.approx((1 - 0.777**5) / 0.223)
    assert speedup(0.777, 4, 0.5) == pytest.approx(3.2143 / 3, abs=1e-4)
    assert speedup(1.0, 3, 0.5) == pytest.approx(4 / 2.5)  # every draft accepted: gamma + 1 tokens
    assert speedup(0.0, 2, 0.1) == pytest.approx(1 / 1.2)  # nothing accepted: the drafts are pure cost


def test_the_best_gamma():
    # alpha 0.5, c 0.5: gamma 1 gives 1.5 / 1.5 = 1.0, gamma 2 gives 1.75 / 2 = 0.875: drafting one is best.
    assert best_gamma(0.5, 0.5) == (1, pytest.approx(1.0))
    gamma, gain = best_gamma(0.9, 0.0)  # free drafts: the longest
    assert gamma == 16 and gain == pytest.approx((1 - 0.9**17) / 0.1)
    entry = priced(0.5, None, 0.5)  # ids only: greedy alone
    assert entry["greedy"]["gamma"] == 1 and "sampling" not in entry


def test_costs_from_measured_speeds_else_from_parameter_counts():
    models = [
        {"name": "a", "tokens_per_second": 400.0, "total_params": 10},
        {"name": "b", "tokens_per_second": 200.0, "total_params": 30},
        {"name": "t", "tokens_per_second": 100.0, "total_params": 100},
    ]
    assert model_costs(["a", "b"], "t", models) == ({"a": 0.25, "b": 0.5}, "measured")
    del models[1]["tokens_per_second"]
    assert model_costs(["a", "b"], "t", models) == ({"a": 0.1, "b": 0.3}, "parameters")
    del models[0]["total_params"]
    assert model_costs(["a", "b"], "t", models) is None
    assert model_costs(["a", "x"], "t", models) is None


def test_a_strategy_costs_the_models_it_reads_or_all_of_them():
    costs = {"a": 0.1, "b": 0.2, "c": 0.4}

    def reads_nothing_said(*args):
        return None

    assert strategy_cost(reads_nothing_said, ["a", "b", "c"], costs) == (["a", "b", "c"], pytest.approx(0.7))
    reads_nothing_said.reads = (-2, -1)
    assert strategy_cost(reads_nothing_said, ["a", "b", "c"], costs) == (["b", "c"], pytest.approx(0.6))
    assert strategy_cost(reads_nothing_said, ["c"], costs) == (["c"], pytest.approx(0.4))  # one input model
    reads_nothing_said.reads = "largest"
    with pytest.raises(
        InputError,
        match=r"reads_nothing_said: `reads` must be input-model indices such as \(-2, -1\), "
        r"got 'largest'",
    ):
        strategy_cost(reads_nothing_said, ["a", "b", "c"], costs)

    try:

        @register("test-reads-largest", reads=(-1,))
        def largest_only(sentences, model_names, target_model_name, probs):
            return probs[:, -1]

        assert largest_only.reads == (-1,)
    finally:
        REGISTRY.pop("test-reads-largest", None)


def test_the_engine_prices_each_model_and_strategy_from_the_sidecar(tmp_path, capsys):
    # Two prefixes, two tokens; the target's top-1 is token 0 on both. Model a agrees on one, b on both.
    probs = np.array(
        [[[0.25, 0.75], [0.75, 0.25], [0.5 + 1 / 8, 0.5 - 1 / 8]], [[0.75, 0.25], [1.0, 0.0], [1.0, 0.0]]],
        dtype=np.float16,
    )
    models = [
        {"name": "a", "tokens_per_second": 400.0},
        {"name": "b", "tokens_per_second": 200.0},
        {"name": "t", "tokens_per_second": 100.0},
    ]
    path = tmp_path / "priced.pkl"
    save_dataset(path, ["a", "b", "t"], ["p0", "p1"], probs, {"models": models})
    largest = Strategy("largest", lambda s, m, t, p: p[:, -1], "largest")
    largest.fn.reads = (-1,)
    both = Strategy("both", lambda s, m, t, p: p.astype(np.float32).mean(axis=1), "both")
    result = score_dataset(path, [largest, both], Settings())
    drafting = result.drafting
    assert drafting["cost_source"] == "measured"
    assert drafting["models"]["a"]["cost"] == 0.25 and drafting["models"]["a"]["greedy"]["alpha"] == 0.5
    assert drafting["strategies"]["largest"]["reads"] == ["b"] and drafting["strategies"]["largest"]["cost"] == 0.5
    assert drafting["strategies"]["both"]["reads"] == ["a", "b"] and drafting["strategies"]["both"]["cost"] == 0.75
    # b agrees on both prefixes: greedy alpha 1, so gamma 16 at cost 0.5: 17 / 9 tokens per unit time.
    assert drafting["models"]["b"]["greedy"] == {
        "alpha": 1.0,
        "gamma": 16,
        "speedup": pytest.approx(17 / 9),
        "tokens_per_pass": 17.0,
    }
    from harness.scoring.leaderboard import print_leaderboard

    print_leaderboard(result)
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "drafting for the target, wall-time speedup priced by cost from the sidecar's measured tokens/s: "
        "greedy b 1.89x (gamma 16), largest 1.89x (gamma 16, reads 1)" in out
    )
