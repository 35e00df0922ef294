"""The emergence law, its fit and backtest, the study's task data and its results file: numpy and
scipy only (no torch), with expected values worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import InputError
from harness.forecast.fit import fit_models_up_to, forecast, format_forecast, study_cells
from harness.forecast.law import Cell, emergence_point, fit_law, law_accuracy
from harness.forecast.study import (
    append_result,
    arithmetic_task,
    builder_task,
    check_resumable,
    default_data_sizes,
    read_results,
    selected_runs,
)

TRUE_LAW = dict(floor=0.02, slope=2.0, softness=0.03, e0=4.30, shift=0.03)
LOSSES = [5.13, 4.75, 4.61, 4.49, 4.39, 4.32, 4.26]
SIZES = [0, 64, 256, 1024, 4096]


def test_law_by_hand():
    # E(D) = 4.3 + 0.05 * log(1 + D): log(1 + D) is 0, 1 and 2 at D = 0, e - 1 and e^2 - 1
    assert emergence_point([0, np.e - 1, np.e**2 - 1], 4.3, 0.05) == pytest.approx([4.3, 4.35, 4.4])
    # Far above E (weaker models): the floor. Far below: floor + slope * (E - L), the ReLU's ramp.
    assert law_accuracy(5.0, 0, **TRUE_LAW) == pytest.approx(0.02, abs=1e-9)
    assert law_accuracy(4.0, 0, **TRUE_LAW) == pytest.approx(0.02 + 2.0 * 0.3, abs=1e-5)  # softplus(10) = 10 + 4.5e-5
    # At E itself the softplus gives slope * softness * ln 2 above the floor.
    assert law_accuracy(4.3, 0, **TRUE_LAW) == pytest.approx(0.02 + 2.0 * 0.03 * np.log(2))
    assert law_accuracy(1.0, 0, **TRUE_LAW) == 1.0  # clipped


def synthetic_cells(seed: int, n: int = 400) -> list[Cell]:
    rng = np.random.default_rng(seed)
    cells = []
    for i, loss in enumerate(LOSSES):
        for size in SIZES:
            outcomes = (rng.random((1, n)) < law_accuracy(loss, size, **TRUE_LAW)).astype(np.int8)
            cells.append(Cell(f"m{i}", loss, size, outcomes.sum(1), np.array([n]), outcomes))
    return cells


def standard_errors(params: dict, n: int = 400) -> dict[int, float]:
    """The asymptotic standard error of the maximum-likelihood E(D) at each D of SIZES, from the Fisher
    information of the fitted cells (every loss at D > 0, n binomial questions each): sqrt(g' I^-1 g),
    g = dE(D)/dtheta = (0, 0, 0, 1, log(1 + D)). The law is written out again here, and its derivatives
    taken by central differences, not with the fit's own analytic gradient."""

    def accuracy(theta, loss, size):
        floor, slope, softness, e0, shift = theta
        return floor + slope * softness * np.logaddexp(0, (e0 + shift * np.log(1 + size) - loss) / softness)

    theta = np.array([params[name] for name in ("floor", "slope", "softness", "e0", "shift")])
    loss, size = (np.array(v, dtype=float) for v in zip(*[(value, d) for value in LOSSES for d in SIZES if d > 0]))
    a, step = accuracy(theta, loss, size), 1e-6 * np.eye(len(theta))
    jacobian = np.stack([(accuracy(theta + h, loss, size) - accuracy(theta - h, loss, size)) / 2e-6 for h in step], 1)
    covariance = np.linalg.inv(jacobian.T @ (jacobian * (n / (a * (1 - a)))[:, None]))
    return {d: float(np.sqrt(g @ covariance @ g)) for d in SIZES for g in [np.array([0, 0, 0, 1, np.log(1 + d)])]}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fit_recovers_a_known_law_within_its_standard_error(seed):
    """Results drawn from a known law with binomial noise (400 questions per cell): every fitted
    emergence point, the extrapolated D = 0 one included, lands within 4 standard errors of the true
    one, and its bootstrap interval is as wide as that standard error says and covers the true one."""
    fit = fit_law(synthetic_cells(seed), resamples=40, seed=0)
    at_truth, at_fit = standard_errors(TRUE_LAW), standard_errors(fit.params)  # 0.010-0.014 nats at the truth
    for size in SIZES:
        true = 4.30 + 0.03 * np.log(1 + size)  # e0 + shift log(1 + D), by hand
        point = fit.emergence_points[size]
        # The MLE is asymptotically normal about the truth: 4 standard errors is a 6e-5 two-sided tail per
        # point (< 1e-3 for all 15 of the three seeds); measured here: within 0.8.
        assert abs(point["emergence_point"] - true) < 4 * at_truth[size], (size, point, true, at_truth[size])
        low, high = point["ci95"]
        # A percentile interval of 40 resamples of a normal estimate spans (p97.5 - p2.5) = 0.90 x 3.92 SE on
        # average, and between 0.51 and 1.44 x 3.92 SE but for 1e-4 of draws (simulated: 400,000 sets of 40
        # normal draws, np.percentile's interpolation); SE at the fitted law, which the bootstrap resamples.
        assert 0.5 < (high - low) / (3.92 * at_fit[size]) < 1.5, (size, point, at_fit[size])
        # No slack: at these fixed seeds every interval covers the truth as it is. A correct 95% interval
        # misses one time in twenty, so after a change of seeds a miss alone is no bug: the bounds above are.
        assert low <= true <= high, (size, point, true)
    assert not any(p["fitted"] for p in fit.predictions if p["data_size"] == 0)  # D = 0 is predicted, never fitted


def records_from(cells: list[Cell], task: str = "t") -> list[dict]:
    return [
        {
            "task": task,
            "model": c.model,
            "pretraining_loss": c.loss,
            "data_size": c.data_size,
            "correct": int(c.correct[0]),
            "n": int(c.n[0]),
            "outcomes": "".join(map(str, c.outcomes[0])),
        }
        for c in cells
    ]


def test_backtest_holds_the_larger_models_back_and_reports_them():
    records = records_from(synthetic_cells(0))
    result = forecast(records, "t", fit_up_to="m4", resamples=20)
    assert result.fit.fitted_on == ["m0", "m1", "m2", "m3", "m4"]
    assert result.held_back == ["m5", "m6"]
    assert set(result.backtest["mean_abs_error_per_data_size"]) == {"0", "64", "256", "1024", "4096"}
    assert result.backtest["mean_abs_error"] < 0.10
    lines = format_forecast(result, width=80)
    assert all(len(line) <= 80 for line in lines)
    assert any(line.startswith("m5*") for line in lines)
    document = json.loads(json.dumps(result.to_json()))  # plain JSON
    assert set(document["emergence_point"]) == {"0", "64", "256", "1024", "4096"}
    full = forecast(records, "t", resamples=20)  # on every model: the true E(0) = 4.30 lies between 4.32 and 4.26
    assert full.to_json()["zero_shot"]["between"] == ["m5", "m6"] and full.backtest is None


def test_fit_up_to_errors():
    cells = synthetic_cells(0)
    assert fit_models_up_to(cells, "m2") == ["m0", "m1", "m2"]
    with pytest.raises(InputError, match="--fit-up-to nope: not a model of the study"):
        fit_models_up_to(cells, "nope")
    with pytest.raises(InputError, match="--fit-up-to m1: leaves 2 models to fit the law on; it needs at least 3"):
        fit_models_up_to(cells, "m1")


def test_the_learning_rate_is_chosen_on_validation_and_seeds_pool():
    base = {"task": "t", "model": "a", "pretraining_loss": 4.0, "n": 10}
    records = [
        {**base, "data_size": 8, "seed": 0, "learning_rate": 1e-3, "validation_accuracy": 0.5, "correct": 9},
        {**base, "data_size": 8, "seed": 0, "learning_rate": 1e-4, "validation_accuracy": 0.6, "correct": 2},
        {**base, "data_size": 8, "seed": 0, "learning_rate": 3e-4, "validation_accuracy": 0.6, "correct": 4},
        {**base, "data_size": 8, "seed": 1, "learning_rate": 1e-3, "validation_accuracy": 0.1, "correct": 6},
    ]
    chosen = selected_runs(records, "t")
    # seed 0: 1e-4 and 3e-4 tie on validation (0.6), the smaller rate wins, whatever its test score.
    assert sorted((r["seed"], r["learning_rate"]) for r in chosen) == [(0, 1e-4), (1, 1e-3)]
    [cell] = study_cells(records, "t")
    assert cell.accuracy == pytest.approx((2 + 6) / 20)


def test_arithmetic_task_parts_are_disjoint_and_test_on_held_out_pairs():
    held_out = {(a, b) for a in range(10) for b in range(10, 40)}  # 300 pairs no finetuning may see
    task = arithmetic_task(2, test_size=50, validation_size=30, test_pairs=held_out, seed=3)
    texts = [{q["text"] for q in part} for part in (task.test, task.validation, task.pool)]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    held_texts = {f"Question: What is {a} plus {b}?\nAnswer:" for a, b in held_out}
    assert texts[0] <= held_texts and not (texts[1] | texts[2]) & held_texts
    assert len(task.pool) == 10_000 - 300 - 30
    assert task.test[0]["answer"] == " " + str(sum(map(int, task.test[0]["text"][17:-9].split(" plus "))))
    with pytest.raises(InputError, match="larger than task addition-2digit's finetuning pool of 9670"):
        task.check_data_sizes([0, 9671])
    assert default_data_sizes(48) == [0, 3, 12, 48]
    assert default_data_sizes(9670) == [0, 151, 604, 2417, 9670]


def test_results_file_roundtrip_and_errors(tmp_path):
    path = tmp_path / "r.jsonl"
    good = {"model": "a", "pretraining_loss": 4.5, "data_size": 0, "correct": 1, "n": 3, "outcomes": "010"}
    append_result(path, good)
    append_result(path, {**good, "data_size": 4})
    assert [r["data_size"] for r in read_results(path)] == [0, 4]
    cases = {
        '{"model": "a", "pretraining_loss": 4.5, "data_size": 0, "n": 3}\n': r":1: no \"correct\" \(every line needs",
        json.dumps({**good, "correct": 4}) + "\n": r":1: needs a finite pretraining_loss, data_size >= 0, n >= 1",
        json.dumps({**good, "outcomes": "110"}) + "\n": r':1: "outcomes" must be n characters 0 or 1',
        "not json\n" + json.dumps(good) + "\n": r":1: not a JSON line",
        json.dumps(good) + '\n{"model": "a", "pretr': r":2: the last line is torn",
        "": r": no runs in the results file",
    }
    for content, message in cases.items():
        path.write_text(content)
        with pytest.raises(InputError, match=f"^{path}{message}"):
            read_results(path)
    with pytest.raises(InputError, match="no such results file"):
        read_results(tmp_path / "missing.jsonl")


def test_a_resumed_study_must_ask_the_same_questions(tmp_path):
    task = arithmetic_task(1, test_size=40, validation_size=12, seed=0)
    record = {
        "task": task.name,
        "model": "a",
        "pretraining_loss": 4.5,
        "data_size": 4,
        "correct": 1,
        "n": 40,
        "seed": 0,
        "learning_rate": 1e-3,
        "task_fingerprint": task.fingerprint(),
        "epochs": 2.0,
    }
    assert check_resumable([record], [task], {"epochs": 2.0}, tmp_path / "r.jsonl") == {
        (task.name, "a", None, 4, 0, 1e-3)
    }
    other = arithmetic_task(1, test_size=40, validation_size=12, seed=1)
    with pytest.raises(InputError, match="asked other questions"):
        check_resumable([record], [other], {"epochs": 2.0}, tmp_path / "r.jsonl")
    with pytest.raises(InputError, match="finetuned with another epochs"):
        check_resumable([record], [task], {"epochs": 3.0}, tmp_path / "r.jsonl")


def test_a_users_jsonl_and_a_choice_task_become_study_tasks(tmp_path):
    from conftest import SHARED

    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"text": f"Q{i}?", "answer": f" A{i}"}) + "\n" for i in range(30)))
    task = builder_task(str(path), test_size=10, validation_size=5, seed=1)
    assert (task.name, len(task.test), len(task.validation), len(task.pool), task.choices) == ("qa", 10, 5, 15, None)
    assert sorted(q["text"] for q in task.test + task.validation + task.pool) == sorted(f"Q{i}?" for i in range(30))
    task = builder_task(str(path))  # a small task: 40% test (12), 12% validation (3), the rest to finetune on
    assert (len(task.test), len(task.validation), len(task.pool)) == (12, 3, 15)
    (tmp_path / "plain.jsonl").write_text('{"text": "no answer here"}\n')
    with pytest.raises(InputError, match='plain.jsonl: no "answer" on its lines'):
        builder_task(str(tmp_path / "plain.jsonl"))
    rte = SHARED / "corpus" / "rte-train.tsv"
    if not rte.exists():
        pytest.skip("../shared/data is not beside the project")
    pytest.importorskip("datasets")  # the builders read a local TSV through it (not in the numpy-only venv)
    with pytest.warns(UserWarning, match="prefixes available") as warned:  # the builder's warning: fewer than asked
        task = builder_task("glue-rte", test_size=100, validation_size=50, dataset_path=str(rte))
    assert task.choices == [" True", " False"] and {q["answer"] for q in task.test} == {" True", " False"}
    available = int(str(warned[0].message).split("only ")[1].split(" ")[0])
    assert len(task.test) + len(task.validation) + len(task.pool) == available > 1000
