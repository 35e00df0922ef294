"""Forecasting emergence from a study's results: the emergence law fitted on the models up to one
(a backtest holds the rest back), what it predicts for every model and data size, where it puts
the few-shot emergence point, and the terminal table. numpy and scipy only.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from harness import InputError, plural
from harness.data.dataset import short_name
from harness.forecast.law import NUM_RESAMPLES, Cell, LawFit, fit_law, hindsight_point
from harness.forecast.study import selected_runs, tasks_in

MIN_FIT_MODELS = 3


def _label(record: dict) -> str:
    return record["model"] + (f"@{record['revision']}" if record.get("revision") else "")


def study_cells(records: list[dict], task: str) -> list[Cell]:
    """The study's (model, D) cells for `task`, seeds together (the learning rate of each chosen on
    validation: `selected_runs`), least capable model first, then by D."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for record in selected_runs(records, task):
        groups.setdefault((_label(record), int(record["data_size"])), []).append(record)
    cells = []
    for (label, size), runs in groups.items():
        runs.sort(key=lambda r: int(r.get("seed", 0)))
        outcomes = None
        if all(r.get("outcomes") for r in runs) and len({len(r["outcomes"]) for r in runs}) == 1:
            outcomes = np.array([[c == "1" for c in r["outcomes"]] for r in runs], dtype=np.int8)
        cells.append(
            Cell(
                label,
                float(np.mean([r["pretraining_loss"] for r in runs])),
                size,
                np.array([int(r["correct"]) for r in runs]),
                np.array([int(r["n"]) for r in runs]),
                outcomes,
            )
        )
    cells.sort(key=lambda c: (-c.loss, c.data_size))
    return cells


def models_by_loss(cells: list[Cell]) -> list[str]:
    """The study's models, least capable (highest pretraining loss) first."""
    losses = {cell.model: cell.loss for cell in cells}
    return sorted(losses, key=lambda m: -losses[m])


def fit_models_up_to(cells: list[Cell], last: str | None, minimum: int = MIN_FIT_MODELS) -> list[str]:
    """The models a backtest fits on: every model up to `last` in order of capability (every model
    without it). One-line errors for a name not in the study, or fewer than `minimum` to fit on."""
    models = models_by_loss(cells)
    if last is None:
        chosen = models
    else:
        # the model itself before any checkpoint of it (suite-1.5m, not suite-1.5m@step240)
        matches = [m for m in models if last == m] or [
            m for m in models if last in (m.split("@")[0], short_name(m.split("@")[0]))
        ]
        if not matches:
            raise InputError(f"--fit-up-to {last}: not a model of the study ({', '.join(models)})")
        chosen = models[: models.index(matches[0]) + 1]
    if len(chosen) < minimum:
        models_word = plural(len(chosen), "model", "models")
        raise InputError(
            f"the study has {len(chosen)} {models_word}; the law needs at least {minimum}"
            if last is None
            else f"--fit-up-to {last}: leaves {len(chosen)} {models_word} to fit the law on; it needs "
            f"at least {minimum}"
        )
    return chosen


def checked_cells(records: list[dict], task: str, fit_up_to: str | None) -> tuple[list[Cell], list[str]]:
    """`task`'s cells and the models its law is fitted on; one-line errors where there is nothing to fit."""
    cells = study_cells(records, task)
    if not any(c.data_size > 0 for c in cells):
        raise InputError(f"task {task}: no finetuned runs (data_size > 0) to fit the emergence law on")
    return cells, fit_models_up_to(cells, fit_up_to)


@dataclass
class Forecast:
    """One task's forecast: the law fitted on `fit.fitted_on`, the models `held_back` from it, the
    measured emergence point at each D (the law fitted on every model's runs at that D alone), and
    how far the held-back models' predicted accuracy lands from the measured."""

    task: str
    models: list[str]  # least capable first
    losses: dict[str, float]
    fit: LawFit
    held_back: list[str]
    measured_points: dict  # D -> {"emergence_point", "ci95"}: in hindsight, from every model
    backtest: dict | None  # mean absolute error of the held-back predictions, overall and per D

    def zero_shot_between(self) -> tuple[str | None, str | None]:
        """The neighbouring models whose pretraining losses bracket the extrapolated E(0): (the
        last model above it, the first below it); None past either end."""
        point = self.fit.zero_shot_point["emergence_point"]
        above = [m for m in self.models if self.losses[m] >= point]
        below = [m for m in self.models if self.losses[m] < point]
        return (above[-1] if above else None, below[0] if below else None)

    def to_json(self) -> dict:
        before, after = self.zero_shot_between()
        return {
            "task": self.task,
            "models": [
                {"model": m, "pretraining_loss": self.losses[m], "held_back": m in self.held_back} for m in self.models
            ],
            **self.fit.to_json(),
            "zero_shot": {
                **self.fit.zero_shot_point,
                "between": [before, after],
                "measured": self.measured_points.get(0),
            },
            "measured_emergence_point": {str(d): v for d, v in self.measured_points.items()},
            "backtest": self.backtest,
        }


def forecast(
    records: list[dict], task: str, fit_up_to: str | None = None, resamples: int = NUM_RESAMPLES, seed: int = 0
) -> Forecast:
    """Fit `task`'s law on the models up to `fit_up_to` and set its predictions beside the results."""
    cells, fit_on = checked_cells(records, task, fit_up_to)
    fit = fit_law(cells, fit_on, resamples, seed)
    models = models_by_loss(cells)
    losses = {c.model: c.loss for c in cells}
    measured = {}
    for size in sorted({c.data_size for c in cells}):
        at = [c for c in cells if c.data_size == size]
        if len(at) >= MIN_FIT_MODELS:
            measured[size] = hindsight_point(at, resamples, seed)
    held_back = [m for m in models if m not in fit_on]
    backtest = None
    if held_back:
        rows = [p for p in fit.predictions if p["model"] in held_back]
        error = lambda subset: float(np.mean([abs(p["predicted"] - p["measured"]) for p in subset])) if subset else None
        backtest = {
            "mean_abs_error": error(rows),
            "mean_abs_error_finetuned": error([p for p in rows if p["data_size"]]),
            "mean_abs_error_per_data_size": {
                str(d): error([p for p in rows if p["data_size"] == d]) for d in sorted({p["data_size"] for p in rows})
            },
        }
    return Forecast(task, models, losses, fit, held_back, measured, backtest)


def forecasts(
    records: list[dict],
    fit_up_to: str | None = None,
    resamples: int = NUM_RESAMPLES,
    seed: int = 0,
    tasks: list[str] | None = None,
) -> list[Forecast]:
    """A forecast for every task in the results (or those named), tasks in parallel processes: each
    is a few hundred bootstrap refits."""
    present = tasks_in(records)
    for task in tasks or []:
        if task not in present:
            raise InputError(f"--task {task}: no runs of it in the results ({', '.join(present)})")
    tasks = tasks or present
    for task in tasks:  # bad input (a --fit-up-to, a task without finetuned runs) fails here, in this process
        checked_cells(records, task, fit_up_to)
    workers = min(len(tasks), os.cpu_count() or 1)
    if workers == 1:
        return [forecast(records, task, fit_up_to, resamples, seed) for task in tasks]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(forecast, *zip(*((records, task, fit_up_to, resamples, seed) for task in tasks))))


def _point(point: dict | None) -> str:
    if point is None:
        return "-"
    low, high = point["ci95"]
    return f"{point['emergence_point']:.3f} [{low:.3f}, {high:.3f}]"


def format_forecast(result: Forecast, width: int = 100) -> list[str]:
    """The terminal table: per model its pretraining loss and, per D, measured / predicted accuracy
    (%); held-back models marked *; then the emergence points and the backtest. Data-size columns
    beyond the width are dropped (the JSON has them all)."""
    sizes = result.fit.data_sizes
    predictions = {(p["model"], p["data_size"]): p for p in result.fit.predictions}
    name_width = max(len(short_name(m)) for m in result.models) + 2
    column = 10
    fits = max(1, (width - name_width - 7) // column)
    shown = sizes[:fits]
    lines = [
        f"task {result.task}: the law fitted on the D > 0 runs of {short_name(result.fit.fitted_on[0])} ... "
        f"{short_name(result.fit.fitted_on[-1])} ({len(result.fit.fitted_on)} models)",
        f"accuracy %, measured/predicted{'; * held back from the fit' if result.held_back else ''}"
        + (f"; {len(sizes) - len(shown)} more D in --json" if len(shown) < len(sizes) else ""),
        f"{'model':<{name_width}}{'loss':>7}" + "".join(f"{'D=' + str(d):>{column}}" for d in shown),
    ]
    for model in result.models:
        cells = []
        for d in shown:
            p = predictions.get((model, d))
            cells.append("-" if p is None else f"{100 * p['measured']:.0f}/{100 * p['predicted']:.0f}")
        mark = "*" if model in result.held_back else " "
        lines.append(
            f"{short_name(model) + mark:<{name_width}}{result.losses[model]:>7.3f}"
            + "".join(f"{c:>{column}}" for c in cells)
        )
    lines.append(f"{'emergence point E(D), nats':<28}{'fitted [95% CI]':<26}measured from all models")
    for d in sizes:
        label = "D=0 (extrapolated)" if d == 0 else f"D={d}"
        lines.append(
            f"  {label:<26}{_point(result.fit.emergence_points.get(d)):<26}{_point(result.measured_points.get(d))}"
        )
    lines.append(f"  ({result.fit.resamples} bootstrap resamples of test questions and seeds)")
    before, after = result.zero_shot_between()
    before, after = (None if m is None else short_name(m) for m in (before, after))
    where = (
        f"between {before} and {after}"
        if before and after
        else f"past the most capable model ({before})"
        if before
        else f"before the least capable model ({after})"
    )
    lines.append(f"  few-shot (D=0) ability predicted to appear {where}")
    if result.backtest:
        bt = result.backtest
        per_d = ", ".join(f"D={d}: {100 * e:.1f}" for d, e in bt["mean_abs_error_per_data_size"].items())
        lines.append(
            f"backtest on {len(result.held_back)} held-back {plural(len(result.held_back), 'model', 'models')}: "
            f"predicted accuracy off by {100 * bt['mean_abs_error']:.1f} points on average"
        )
        lines.append(f"  ({per_d})")
    return lines
