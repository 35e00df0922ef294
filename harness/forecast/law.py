"""The emergence law of Snell et al. (2024): task accuracy against pretraining loss, whose point of
emergence moves towards less capable models as the amount of finetuning data grows.

    accuracy(L, D) = floor + slope * softness * softplus((E(D) - L) / softness)
    E(D)           = e0 + shift * log(1 + D)

L is a model's pretraining loss (nats per token on held-out text: lower is more capable), D the
number of finetuning examples. Above its emergence point E(D) a model sits at the `floor`; below
it, accuracy rises by `slope` per nat, the kink smoothed over about `softness` nats (softplus: a
differentiable ReLU, as Snell et al. use). Finetuning on more data moves E(D) up the loss axis, to
less capable models, by `shift` nats for every e-fold of data: log-linear in D, the shape Snell et
al. observe, while D = 0 stays a point of the law rather than a limit (a power law in D itself,
extrapolated from such points, dives to any depth as D -> 0; a free exponent on log(1 + D) made the
extrapolation unstable, off by over a nat on some noise seeds of the test below). e0 = E(0) is where the ability emerges with no finetuning: the few-shot (or 0-shot)
emergence point, which the law extrapolates to.

The law is fitted jointly over every D > 0 by binomial maximum likelihood (each run's `correct`
out of `n` test questions), so runs on more questions weigh more; the D = 0 runs are what it
predicts, not what it is fitted on. Intervals come from a bootstrap over test questions (the same
resampled questions for every run, where the results carry per-question outcomes; otherwise each
count is redrawn from its binomial) and over seeds (each (model, D) cell's seeds redrawn), with the
law refitted on every resample. numpy and scipy only: a study refits from its results file alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

PARAMS = ("floor", "slope", "softness", "e0", "shift")
NUM_RESAMPLES = 200
EPS = 1e-6  # accuracies kept inside (0, 1) so the binomial likelihood stays finite


def emergence_point(data_size: np.ndarray | float, e0: float, shift: float) -> np.ndarray:
    """E(D): the pretraining loss below which an ability appears after finetuning on D examples."""
    return e0 + shift * np.log1p(np.asarray(data_size, dtype=np.float64))


def law_accuracy(
    loss: np.ndarray | float,
    data_size: np.ndarray | float,
    floor: float,
    slope: float,
    softness: float,
    e0: float,
    shift: float,
) -> np.ndarray:
    """The law's accuracy at pretraining loss `loss` after `data_size` finetuning examples, in [0, 1]."""
    z = (emergence_point(data_size, e0, shift) - np.asarray(loss, dtype=np.float64)) / softness
    return np.clip(floor + slope * softness * np.logaddexp(0.0, z), 0.0, 1.0)


@dataclass
class Cell:
    """One (model, data size) point of a study: its seeds' test outcomes, (seeds, questions) of 0/1,
    or only their counts where a study from elsewhere gives no per-question outcomes."""

    model: str
    loss: float
    data_size: int
    correct: np.ndarray  # (seeds,) correct answers per seed
    n: np.ndarray  # (seeds,) test questions per seed
    outcomes: np.ndarray | None = None  # (seeds, n) 0/1, the same questions in the same order for every cell

    @property
    def accuracy(self) -> float:
        return float(self.correct.sum() / self.n.sum())


def _unpack(theta: np.ndarray) -> dict:
    return dict(zip(PARAMS, (float(t) for t in theta)))


def _nll(
    theta: np.ndarray, loss: np.ndarray, data_size: np.ndarray, correct: np.ndarray, n: np.ndarray
) -> tuple[float, np.ndarray]:
    """The binomial negative log-likelihood and its gradient (analytic: the fit runs hundreds of
    times per study, once per bootstrap resample)."""
    floor, slope, softness, e0, shift = theta
    log_data = np.log1p(data_size)
    z = (e0 + shift * log_data - loss) / softness
    soft, sigmoid = np.logaddexp(0.0, z), 0.5 * (1 + np.tanh(z / 2))
    a = floor + slope * softness * soft
    p = np.clip(a, EPS, 1 - EPS)
    nll = -(correct * np.log(p) + (n - correct) * np.log1p(-p)).sum()
    dp = -(correct / p - (n - correct) / (1 - p)) * ((a > EPS) & (a < 1 - EPS))
    de = dp * slope * sigmoid  # d nll / d E(D)
    gradient = np.array(
        [
            dp.sum(),
            (dp * softness * soft).sum(),
            (dp * slope * (soft - sigmoid * z)).sum(),
            de.sum(),
            (de * log_data).sum(),
        ]
    )
    return float(nll), gradient


def _bounds(loss: np.ndarray) -> list[tuple[float, float]]:
    low, high = float(loss.min()), float(loss.max())
    return [(1e-4, 0.99), (0.0, 100.0), (0.005, 0.5), (low - 3.0, high + 3.0), (0.0, 5.0)]


def _starts(loss: np.ndarray, data_size: np.ndarray, correct: np.ndarray, n: np.ndarray) -> list[np.ndarray]:
    """A small grid of starting points: the fit is not convex (the kink can sit anywhere)."""
    accuracy = correct / n
    floor = float(np.clip(np.quantile(accuracy, 0.1), 0.005, 0.9))  # off the bound, where the gradient lives
    low, high = float(loss.min()), float(loss.max())
    spread = max(high - low, 0.05)
    top = max(float(np.max(data_size)), 1.0)
    starts = []
    for e0 in (low - spread / 2, low, (low + high) / 2):
        for reach in (spread / 2, high - e0):  # E(largest D) short of, or at, the least capable model
            shift = max(reach, spread / 4) / np.log1p(top)
            for slope in (1.0, 5.0):
                starts.append(np.array([floor, slope, 0.05, e0, shift]))
    return starts


def _fit(
    loss: np.ndarray, data_size: np.ndarray, correct: np.ndarray, n: np.ndarray, starts: list[np.ndarray]
) -> np.ndarray:
    bounds = _bounds(loss)
    best = None
    for start in starts:
        start = np.array([np.clip(s, lo, hi) for s, (lo, hi) in zip(start, bounds)])
        result = minimize(_nll, start, args=(loss, data_size, correct, n), method="L-BFGS-B", jac=True, bounds=bounds)
        if best is None or result.fun < best.fun:
            best = result
    return best.x


@dataclass
class LawFit:
    """A fitted emergence law, with 95% bootstrap intervals on what it predicts."""

    params: dict
    fitted_on: list[str]  # the models whose D > 0 runs it was fitted on
    data_sizes: list[int]  # every D in the study, 0 included where measured
    emergence_points: dict  # D -> {"emergence_point": E(D), "ci95": [lo, hi]}, D = 0 the extrapolation
    predictions: list[dict]  # per cell: model, D, loss, measured accuracy, predicted and its ci95
    resamples: int
    seed: int
    curve_loss: np.ndarray = field(repr=False, default=None)  # a grid of losses for the pictures
    curve_band: dict = field(repr=False, default_factory=dict)  # D -> (accuracy, lo, hi) along curve_loss

    @property
    def zero_shot_point(self) -> dict:
        return self.emergence_points[0]

    def to_json(self) -> dict:
        return {
            "law": "accuracy = floor + slope * softness * softplus((E(D) - L) / softness), "
            "E(D) = e0 + shift * log(1 + D)",
            "params": self.params,
            "fitted_on": self.fitted_on,
            "resamples": self.resamples,
            "seed": self.seed,
            "emergence_point": {str(d): v for d, v in self.emergence_points.items()},
            "predictions": self.predictions,
        }


def _resample(cells: list[Cell], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One bootstrap draw of every cell's (correct, n): its seeds redrawn, then the test questions
    (the same draw for every cell, since every run answered the same questions)."""
    width = next((c.outcomes.shape[1] for c in cells if c.outcomes is not None), None)
    questions = rng.integers(0, width, width) if width else None
    correct, n = np.empty(len(cells)), np.empty(len(cells))
    for i, cell in enumerate(cells):
        seeds = rng.integers(0, len(cell.n), len(cell.n))
        if cell.outcomes is not None and cell.outcomes.shape[1] == width:
            correct[i] = cell.outcomes[seeds][:, questions].sum()
            n[i] = width * len(seeds)
        else:
            n[i] = cell.n[seeds].sum()
            correct[i] = rng.binomial(int(n[i]), cell.correct[seeds].sum() / n[i])
    return correct, n


def fit_law(
    cells: list[Cell],
    fit_models: list[str] | None = None,
    resamples: int = NUM_RESAMPLES,
    seed: int = 0,
    include_zero: bool = False,
) -> LawFit:
    """The law fitted on the D > 0 cells of `fit_models` (default: every model), with intervals from
    `resamples` bootstrap refits (seeded by `seed`); predictions for every cell, held back or not."""
    fit_models = list(fit_models) if fit_models is not None else sorted({c.model for c in cells})
    used = [c for c in cells if c.model in fit_models and (c.data_size > 0 or include_zero)]
    if not used:
        raise ValueError("no finetuned runs (D > 0) to fit the emergence law on")
    arrays = lambda subset: (np.array([c.loss for c in subset]), np.array([c.data_size for c in subset], dtype=float))
    loss, data_size = arrays(used)
    correct = np.array([c.correct.sum() for c in used], dtype=float)
    n = np.array([c.n.sum() for c in used], dtype=float)
    theta = _fit(loss, data_size, correct, n, _starts(loss, data_size, correct, n))

    all_loss, all_size = arrays(cells)
    sizes = sorted({c.data_size for c in cells} | {0})
    curve_loss = np.linspace(min(all_loss.min(), theta[3]) - 0.1, all_loss.max() + 0.1, 120)
    rng = np.random.default_rng(seed)
    drawn = []  # (resamples, len(PARAMS))
    for _ in range(resamples):
        correct_b, n_b = _resample(used, rng)
        drawn.append(_fit(loss, data_size, correct_b, n_b, [theta]))
    drawn = np.array(drawn).reshape(-1, len(PARAMS))
    interval = lambda values: (
        [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
        if len(values)
        else [float("nan"), float("nan")]
    )

    points = {
        d: {
            "emergence_point": float(emergence_point(d, *theta[3:])),
            "ci95": interval(emergence_point(d, drawn[:, 3], drawn[:, 4])),
        }
        for d in sizes
    }
    per_draw = np.array([law_accuracy(all_loss, all_size, *t) for t in drawn]).reshape(-1, len(cells))
    predicted = law_accuracy(all_loss, all_size, *theta)
    used_ids = {id(c) for c in used}
    predictions = [
        {
            "model": c.model,
            "data_size": c.data_size,
            "pretraining_loss": c.loss,
            "n": int(c.n.sum()),
            "measured": c.accuracy,
            "predicted": float(predicted[i]),
            "ci95": interval(per_draw[:, i]),
            "fitted": id(c) in used_ids,
        }
        for i, c in enumerate(cells)
    ]
    band = {}
    for d in sizes:
        draws = np.array([law_accuracy(curve_loss, d, *t) for t in drawn]).reshape(-1, len(curve_loss))
        band[d] = (
            law_accuracy(curve_loss, d, *theta),
            *(np.percentile(draws, q, axis=0) if len(draws) else np.full(len(curve_loss), np.nan) for q in (2.5, 97.5)),
        )
    return LawFit(
        params=_unpack(theta),
        fitted_on=fit_models,
        data_sizes=sizes,
        emergence_points=points,
        predictions=predictions,
        resamples=resamples,
        seed=seed,
        curve_loss=curve_loss,
        curve_band=band,
    )


def hindsight_point(cells: list[Cell], resamples: int = NUM_RESAMPLES, seed: int = 0) -> dict:
    """Where the ability appears at one data size, measured: the law fitted on every model's cells
    of that one D (E as a free constant), with its bootstrap interval. What a backtest's
    extrapolation is checked against."""
    single = [Cell(c.model, c.loss, 0, c.correct, c.n, c.outcomes) for c in cells]
    fit = fit_law(single, resamples=resamples, seed=seed, include_zero=True)
    return fit.emergence_points[0]
