"""The pictures of `predict_emergence.py --report DIR`, two per task:

- `<task>-accuracy.png`: accuracy against pretraining loss (more capable to the right), one colour
  per finetuning data size D, the law's fitted curves, the held-back models hollow, and the
  predicted few-shot (D = 0) curve with its 95% band;
- `<task>-emergence.png`: the emergence point against D, as fitted (with its band) and as measured
  from every model at each D alone, and the extrapolation to D = 0.

matplotlib is imported only when drawing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.forecast.fit import Forecast
from harness.forecast.law import emergence_point
from harness.scoring.report import save


def accuracy_picture(result: Forecast, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 4.8))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(result.fit.data_sizes)))
    loss = result.fit.curve_loss
    for colour, size in zip(colours, result.fit.data_sizes):
        curve, low, high = result.fit.curve_band[size]
        label = "no finetuning (extrapolated)" if size == 0 else f"D = {size:,}"
        axis.plot(loss, 100 * curve, color=colour, lw=1.5, ls="--" if size == 0 else "-", label=label)
        if size == 0:
            axis.fill_between(loss, 100 * low, 100 * high, color=colour, alpha=0.15, lw=0)
        points = [p for p in result.fit.predictions if p["data_size"] == size]
        for held_back in (False, True):
            chosen = [p for p in points if (p["model"] in result.held_back) == held_back]
            if chosen:
                axis.scatter(
                    [p["pretraining_loss"] for p in chosen],
                    [100 * p["measured"] for p in chosen],
                    s=36,
                    facecolors="none" if held_back else colour,
                    edgecolors=colour,
                    zorder=3,
                )
    if result.held_back:
        axis.scatter([], [], s=36, facecolors="none", edgecolors="grey", label="held back from the fit")
    for model in result.models:
        axis.axvline(result.losses[model], color="grey", lw=0.4, alpha=0.5)
    axis.invert_xaxis()  # lower loss, more capable, to the right
    axis.set_xlabel("pretraining loss (nats per token, held-out text)")
    axis.set_ylabel("task accuracy (%)")
    axis.set_title(f"{result.task}: accuracy against pretraining loss, by finetuning data D")
    axis.legend(fontsize=8, loc="upper left")
    save(figure, path)


def emergence_point_picture(result: Forecast, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    sizes = [d for d in result.fit.data_sizes if d > 0]
    params = result.fit.params
    # D = 0 sits one step of the grid to the left of the smallest D, on the same log axis.
    zero_at = min(sizes) / 4 if sizes else 1.0
    grid = np.geomspace(min(sizes) if sizes else 1.0, max(sizes) if sizes else 1.0, 100)
    law = lambda d: emergence_point(d, params["e0"], params["shift"])
    axis.plot(grid, law(grid), color="C0", label="fitted E(D)")
    axis.plot([zero_at, grid[0]], [law(0), law(grid[0])], color="C0", ls=":")  # the extrapolation
    for size, point in result.fit.emergence_points.items():
        x = zero_at if size == 0 else size
        low, high = point["ci95"]
        axis.errorbar(
            [x],
            [point["emergence_point"]],
            yerr=[[point["emergence_point"] - low], [high - point["emergence_point"]]],
            fmt="o" if size else "*",
            ms=6 if size else 12,
            color="C0",
            capsize=3,
        )
    for size, point in result.measured_points.items():
        x = zero_at if size == 0 else size
        low, high = point["ci95"]
        axis.errorbar(
            [x * 1.1],
            [point["emergence_point"]],
            yerr=[[point["emergence_point"] - low], [high - point["emergence_point"]]],
            fmt="s",
            ms=5,
            color="C3",
            capsize=3,
            alpha=0.8,
        )
    axis.errorbar([], [], fmt="s", color="C3", label="measured from every model at that D")
    axis.errorbar([], [], fmt="*", ms=12, color="C0", label="extrapolated: no finetuning (D = 0)")
    for model in result.models:
        axis.axhline(result.losses[model], color="grey", lw=0.4, alpha=0.6)
        axis.annotate(model, (max(grid), result.losses[model]), fontsize=7, color="grey", ha="right", va="bottom")
    axis.set_xscale("log")
    axis.set_xticks([zero_at, *sizes], ["0", *(f"{d:,}" for d in sizes)])
    axis.xaxis.set_minor_locator(NullLocator())
    axis.invert_yaxis()  # more capable (lower loss) further down: finetuning lifts the point up to weaker models
    axis.set_xlabel("finetuning examples D")
    axis.set_ylabel("emergence point (pretraining loss, nats)")
    axis.set_title(f"{result.task}: where the ability appears, against D")
    axis.legend(fontsize=8)
    save(figure, path)


def write_report(results: list[Forecast], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for result in results:
        for suffix, draw in (("accuracy", accuracy_picture), ("emergence", emergence_point_picture)):
            path = directory / f"{result.task}-{suffix}.png"
            draw(result, path)
            written.append(path)
    return written
