"""Pictures of a challenge run (`challenge.py --report DIR`): PNGs and one page, DIR/index.md.

- emergence.png: each input model's top-1 agreement with the target against its size;
- accuracy.png: each strategy's accuracy with its 95% interval, per dataset;
- mirage.png: each input model's top-1 agreement, alpha (1 - TV) and KL from the target against its
  size, per dataset: top-1 can be flat where the continuous metrics still improve (Schaeffer et al.);
- speculative.png: the expected tokens per target forward pass for 1 to 8 drafted tokens, with each
  input model, and the strategy of highest alpha, as the drafter (Leviathan et al.);
- a table per dataset on the page: every metric of each input model and strategy, with its interval;
- <dataset>-emergent.png: on the prefixes whose target top-1 is no input model's top-1, the
  probability every model gives that token against size (a capability against scale, as in Wei et al.);
- <dataset>-rank.png: the rank of the target's top-1 under each input model (1 = agrees).

Every number drawn comes from the engine's results (`harness.scoring.evaluate.DatasetResult`): the
per-prefix ones (`PictureData`) are computed in its pass over the data, so no dataset is read here.
matplotlib is optional: `check_report_dir` says so in one line before any scoring.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import InputError, plural
from harness.data.dataset import short_name
from harness.data.files import atomic_write, check_writable
from harness.data.tokenizer import local_tokenizer
from harness.drafting.pricing import speedup
from harness.scoring.evaluate import DatasetResult, PictureData
from harness.scoring.metrics import FLOOR, GAMMA, LABELS, tokens_per_pass
from harness.scoring.stats import bootstrap_ci
from harness.scoring.top1 import StrategyScore

MAX_LINES = 30  # thin lines drawn per emergent-prefix picture (a seeded sample beyond that)
LABELLED_LINES = 6  # of those, how many carry their token's text


def check_report_dir(directory: Path) -> None:
    """Fail now, before any scoring, if matplotlib is missing or `directory` cannot be written."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError("--report needs matplotlib: pip install matplotlib") from None
    check_writable(directory, folder=True)


@dataclass
class Drawn:
    """One scored dataset on the page: its label (the file's stem), its result and its per-prefix numbers."""

    name: str
    result: DatasetResult

    @property
    def pictures(self) -> PictureData:
        return self.result.pictures


def token_texts(model: str, tokens: np.ndarray) -> tuple[list[str], bool]:
    """Each token's decoded text, quoted for a label; the ids (and False) if no tokenizer loads."""
    tokenizer, _ = local_tokenizer(model)  # never the network: no local tokenizer, and ids still identify the tokens
    if tokenizer is None:
        return [f"id {k}" for k in tokens], False
    quoted = [repr(tokenizer.decode([int(k)])).replace("$", r"\$") for k in tokens]  # `$` would start mathtext
    return quoted, True


def size_axis(axes) -> None:
    """A log x axis of parameter counts, labelled 10k, 100k, 1M."""
    from matplotlib.ticker import EngFormatter, NullFormatter

    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(EngFormatter(sep=""))
    axes.xaxis.set_minor_formatter(NullFormatter())


def plain_log_axis(axis) -> None:
    """Tick labels 1, 10, 100 rather than 10^0, 10^1, 10^2 on a log axis."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    plt.close(figure)


def emergence_picture(data: list[Drawn], path: Path, seed: int) -> str:
    import matplotlib.pyplot as plt

    by_size = all(d.pictures.sizes is not None for d in data)
    figure, axes = plt.subplots(figsize=(7.5, 4.6))
    for k, d in enumerate(data):
        n, p = d.result.n, d.pictures
        x = np.array(p.input_sizes if by_size else np.arange(1, len(p.input_names) + 1), dtype=float)
        # Datasets of one suite share sizes: a small sideways shift keeps their error bars apart.
        x = x * 10 ** (0.015 * (k - (len(data) - 1) / 2)) if by_size else x + 0.06 * (k - (len(data) - 1) / 2)
        agreement = p.agreement.mean(axis=0) * 100
        intervals = np.array([bootstrap_ci(column, seed=seed) for column in p.agreement.T]) * 100
        line = axes.errorbar(
            x,
            agreement,
            yerr=[agreement - intervals[:, 0], intervals[:, 1] - agreement],
            marker="o",
            capsize=3,
            label=f"{d.name} (n = {n}, target {short_name(d.result.target)})",
        )
        ceiling = d.result.noise_ceiling
        if ceiling is not None:  # another seed of the target: how high agreement can go at all
            axes.axhline(
                ceiling["top1"] * 100,
                color=line[0].get_color(),
                linestyle="--",
                linewidth=1,
                label=f"{d.name}: noise ceiling ({short_name(ceiling['model'])})",
            )
    if by_size:
        size_axis(axes)
        axes.set_xlabel("input model size (non-embedding parameters, log scale)")
    else:
        axes.set_xlabel("input model (index in the dataset; sizes unknown)")
        axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel("top-1 agreement with the target (%)")
    axes.set_title("Emergence curve: how often each input model's top-1 is the target's")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    save(figure, path)
    sizes_note = "" if by_size else " Sizes are missing from a sidecar, so models are placed by their index."
    counts = ", ".join(f"{d.name}: {d.result.n} prefixes" for d in data)
    ceilings = "".join(
        f" {d.name}'s dashed line: the noise ceiling, another seed of the target "
        f"({short_name(d.result.noise_ceiling['model'])}), which agrees with it on "
        f"{d.result.noise_ceiling['top1']:.1%} of the prefixes."
        for d in data
        if d.result.noise_ceiling is not None
    )
    return (
        f"Each input model's top-1 agreement with the target against its size, one line per dataset "
        f"({counts}), with 95% bootstrap "
        f"intervals (seed {seed}).{sizes_note}{ceilings}"
    )


def accuracy_picture(data: list[Drawn], path: Path) -> str:
    import matplotlib.pyplot as plt

    heights = [max(1, sum(isinstance(row, StrategyScore) for row in d.result.strategies)) for d in data]
    figure, all_axes = plt.subplots(
        len(data),
        1,
        figsize=(7.5, 1.0 + 0.42 * sum(heights) + 0.9 * len(data)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for axes, d in zip(all_axes[:, 0], data):
        scored = sorted(
            (row for row in d.result.strategies if isinstance(row, StrategyScore)), key=lambda r: r.accuracy
        )
        failed = [row.name for row in d.result.strategies if not isinstance(row, StrategyScore)]
        y = np.arange(len(scored))
        accuracy = np.array([row.accuracy for row in scored]) * 100
        low, high = (np.array([row.ci95[i] for row in scored]) * 100 for i in (0, 1))
        axes.errorbar(accuracy, y, xerr=[accuracy - low, high - accuracy], fmt="o", capsize=3, color="tab:blue")
        for yi, a, lo, hi in zip(y, accuracy, low, high):
            axes.annotate(
                f"{a:.1f}% [{lo:.1f}, {hi:.1f}]",
                (hi, yi),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                bbox=dict(facecolor="white", edgecolor="none", pad=0.5),
            )
        axes.set_yticks(y, [row.name + (" (learned)" if row.fit else "") for row in scored])
        reach = d.result.input_model_reach["some_input_model"] * 100
        axes.axvline(reach, color="gray", linestyle="--", linewidth=1)
        left = reach > 50  # the line's label on the side with room
        axes.annotate(
            f"some input model's top-1: {reach:.1f}%",
            (reach, 1),
            xycoords=("data", "axes fraction"),
            xytext=(-4 if left else 4, -2),
            textcoords="offset points",
            ha="right" if left else "left",
            va="top",
            fontsize=7,
            color="gray",
        )
        axes.set_xlim(0, 119)  # room on the right for the interval's text
        axes.set_xticks(range(0, 101, 20))
        axes.set_ylim(-0.7, len(scored) - 0.3)
        axes.grid(True, axis="x", alpha=0.3)
        title = f"{d.name}: n = {d.result.n}, target {short_name(d.result.target)}"
        axes.set_title(title + (f" (not drawn, failed: {', '.join(failed)})" if failed else ""), fontsize=10)
    all_axes[-1, 0].set_xlabel("top-1 accuracy against the target (%), with its 95% bootstrap interval")
    figure.tight_layout()
    save(figure, path)
    return (
        "Each strategy's top-1 accuracy with its 95% bootstrap interval, one panel per dataset, sorted; the "
        "dashed line is how often some input model's top-1 is the target's (the best picking one model per "
        "prefix can reach). Strategies that failed are named in the panel's title, not drawn."
    )


def emergent_picture(drawn: Drawn, path: Path, seed: int) -> str:
    """Draw the emergent prefixes (at least one); the caption lists the labelled ones with their prefixes."""
    import matplotlib.pyplot as plt

    d, name = drawn.pictures, drawn.name
    n, count = drawn.result.n, len(d.emergent_tokens)
    target_name = d.model_names[d.target_index]
    x = np.array(d.sizes if d.sizes is not None else np.arange(1, len(d.model_names) + 1), dtype=float)
    order = np.argsort(x, kind="stable")  # a --target other than the last may not be the largest
    x, probs = x[order], np.maximum(d.emergent_probs[:, order], FLOOR)
    sampled = count > MAX_LINES
    drawn = (
        np.sort(np.random.default_rng(seed).choice(count, MAX_LINES, replace=False)) if sampled else np.arange(count)
    )
    # Label lines spread over the target's own probability, so the labels do not pile up.
    target_column = int(np.flatnonzero(order == d.target_index)[0])
    by_target = drawn[np.argsort(probs[drawn, target_column])]
    picks = np.unique(np.linspace(0, len(by_target) - 1, min(LABELLED_LINES, len(by_target))).round().astype(int))
    labelled = by_target[picks][::-1]  # highest first, as the labels stack on the right
    texts, decoded = token_texts(target_name, d.emergent_tokens[labelled])

    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    for i in np.setdiff1d(drawn, labelled):
        axes.plot(x, probs[i], color="gray", alpha=0.35, linewidth=0.8)
    colors = plt.get_cmap("tab10")
    right = len(x) - 1
    label_y = spread_in_log(probs[labelled, right])
    label_x = x[right] * 1.25 if d.sizes is not None else x[right] + 0.25
    for k, (i, text) in enumerate(zip(labelled, texts)):
        axes.plot(x, probs[i], color=colors(k), alpha=0.85, linewidth=1.2)
        axes.annotate(
            text,
            (x[right], probs[i, right]),
            xytext=(label_x, label_y[k]),
            textcoords="data",
            fontsize=8,
            color=colors(k),
            va="center",
            arrowprops=dict(arrowstyle="-", color=colors(k), alpha=0.5, linewidth=0.6),
        )
    if count > 1:
        axes.plot(
            x,
            np.median(probs, axis=0),
            color="black",
            linewidth=2.8,
            label=f"median over all {count} emergent prefixes",
        )
        axes.legend(fontsize=8, loc="lower right")
    axes.axvline(x[target_column], color="gray", linestyle=":", linewidth=1)
    axes.annotate(
        "target",
        (x[target_column], 1),
        xycoords=("data", "axes fraction"),
        xytext=(-3, -3),
        textcoords="offset points",
        ha="right",
        va="top",
        fontsize=8,
        color="gray",
    )
    if d.sizes is not None:
        size_axis(axes)
        axes.set_xlabel("model size (non-embedding parameters, log scale)")
        axes.set_xlim(x[0] / 1.3, x[-1] * 3)  # room for the labels on the right
    else:
        axes.set_xlabel("model (sizes unknown: in the dataset's order)")
        axes.set_xticks(x, [short_name(d.model_names[i]) for i in order], rotation=20, fontsize=8)
        axes.set_xlim(x[0] - 0.3, x[-1] + 1.2)
    axes.set_yscale("log")
    axes.set_ylim(FLOOR / 2 if probs.min() <= FLOOR else None, 1.2)
    axes.set_ylabel("probability of the target's top-1 token")
    axes.grid(True, which="major", alpha=0.3)
    prefixes = plural(count, "prefix", "prefixes")
    axes.set_title(
        f"{name}: the target's top-1 token on the {count} emergent {prefixes} of {n}\n"
        f"(no input model ranks it first; {len(drawn)} drawn" + (f", sampled with seed {seed})" if sampled else ")"),
        fontsize=10,
    )
    save(figure, path)
    labels = "their decoded token" if decoded else "their token id (no tokenizer could be loaded)"
    listed = [
        f"- prefix {d.emergent_index[i]}: {text} after `{markdown_code(d.emergent_sentences[i])}`"
        for i, text in zip(labelled, texts)
    ]
    return "\n".join(
        [
            f"The {count} {prefixes} of {n} whose target top-1 no input model ranks first: the probability each model, "
            f"the target ({short_name(target_name)}) included, gives that token, against size, log-log. "
            f"Thin lines are single prefixes ({len(drawn)} drawn"
            + (f", a sample with seed {seed}" if sampled else "")
            + f"; {len(labelled)} coloured and labelled with {labels})"
            + (f", the bold line the median over all {count}" if count > 1 else "")
            + f". A probability of 0 (float16 stores those below about 6e-8 as 0) is drawn at 2^-24 = {FLOOR:.2g}, the "
            "floor of every log-loss and KL. The labelled ones:",
            "",
        ]
        + listed
    )


def markdown_code(text: str, keep: int = 80) -> str:
    """A prefix's end, on one line, safe inside a markdown code span."""
    text = text.replace("\n", " \u23ce ").replace("`", "'")
    return text if len(text) <= keep else "\u2026" + text[-keep:]


def spread_in_log(values: np.ndarray, min_ratio: float = 1.9) -> np.ndarray:
    """Label heights near `values` but at least `min_ratio` apart (log axis), so their text does not overlap."""
    if len(values) == 0:
        return values
    order = np.argsort(values)
    heights = np.log(np.asarray(values, dtype=float)[order])
    for k in range(1, len(heights)):
        heights[k] = max(heights[k], heights[k - 1] + np.log(min_ratio))
    heights -= max(0.0, heights[-1] - np.log(0.9))  # keep the top one inside the axes
    out = np.empty_like(heights)
    out[order] = np.exp(heights)
    return out


def rank_bins(vocab_size: int) -> np.ndarray:
    """Rank bin edges 1, 2, 3, 5, 10, 20, 50, 100, ... up to the vocabulary: bins 1, 2, 3-4, 5-9, 10-19, ..."""
    steps = [1, 2, 3] + [m * 10**e for e in range(len(str(vocab_size)) + 1) for m in (5, 10, 20)][:-1]
    edges = sorted({step for step in steps if step <= vocab_size} | {vocab_size + 1})
    return np.array(edges)


def rank_picture(drawn: Drawn, path: Path) -> str:
    import matplotlib.pyplot as plt

    d, name = drawn.pictures, drawn.name
    names, n, num_inputs = d.input_names, drawn.result.n, len(d.input_names)
    edges = rank_bins(d.vocab_size)
    columns = min(3, num_inputs)
    rows = -(-num_inputs // columns)
    figure, all_axes = plt.subplots(
        rows, columns, figsize=(3.0 * columns + 0.6, 2.4 * rows + 0.8), sharex=True, sharey=True, squeeze=False
    )
    sizes = d.input_sizes
    for j, axes in enumerate(all_axes.flat):
        if j >= num_inputs:
            axes.set_visible(False)
            continue
        ranks = d.ranks[:, j]
        counts, _ = np.histogram(ranks, bins=edges)
        axes.stairs(counts / n * 100, edges, fill=True, alpha=0.6, color="tab:blue")
        axes.set_xscale("log")
        axes.set_yscale("log")  # the tail (a few % or less) matters as much as rank 1
        plain_log_axis(axes.xaxis)
        plain_log_axis(axes.yaxis)
        axes.set_ylim(50 / n, 150)
        title = short_name(names[j]) + (f" ({sizes[j]:,} params)" if sizes is not None else "")
        axes.set_title(title, fontsize=9)
        axes.text(
            0.97,
            0.95,
            f"rank 1: {np.mean(ranks == 1):.1%}\nrank > 10: {np.mean(ranks > 10):.1%}",
            transform=axes.transAxes,
            ha="right",
            va="top",
            fontsize=8,
        )
        axes.grid(True, axis="y", alpha=0.3)
    for axes in all_axes[-1]:
        axes.set_xlabel("rank (log scale)")
    for axes in all_axes[:, 0]:
        axes.set_ylabel("% of prefixes (log)")
    figure.suptitle(
        f"{name}: rank of the target's top-1 token under each input model "
        f"(n = {n}, vocabulary {d.vocab_size:,}; 1 = agrees)",
        fontsize=10,
    )
    figure.tight_layout()
    save(figure, path)
    return (
        f"Where each input model ranks the target's top-1 token, over all {n} prefixes: a histogram per input "
        f"model, smallest first, with bins 1, 2, 3-4, 5-9, 10-19, 20-49, ... up to the vocabulary "
        f"({d.vocab_size:,}), both axes log. Rank = 1 + the number of tokens the model gives a higher probability, "
        f"so the first bar is that model's point on the emergence curve (plus any float16 ties for its top-1)."
    )


def input_models_by_size(result: DatasetResult) -> tuple[list[int], np.ndarray | None]:
    """The input models' indices smallest first (`DatasetResult.by_size`), and their sizes (None if any is unknown:
    they are then drawn in the dataset's order, at 1, 2, 3...)."""
    order = result.by_size()
    sizes = [result.inputs[j].non_embedding_params for j in order]
    return order, None if None in sizes else np.array(sizes, dtype=float)


def trend(values: np.ndarray) -> str:
    """Whether `values` (smallest model first) rise or fall at every step: the mirage's question."""
    steps = np.diff(values)
    return (
        "rises at every step" if (steps > 0).all() else "falls at every step" if (steps < 0).all() else "not monotone"
    )


# The mirage picture's panels: (metric, title, scale of the drawn values, y limits, colour).
MIRAGE_PANELS = (
    ("top1", "top-1 agreement (%)", 100, (0, 100), "tab:blue"),
    ("alpha", "alpha = 1 - TV (higher is better)", 1, (0, 1), "tab:green"),
    ("kl", "KL(target || model), nats (lower is better)", 1, (0, None), "tab:red"),
)


def mirage_picture(data: list[Drawn], path: Path, seed: int) -> str:
    import matplotlib.pyplot as plt

    figure, all_axes = plt.subplots(len(data), len(MIRAGE_PANELS), figsize=(12, 0.6 + 3.0 * len(data)), squeeze=False)
    notes = []
    for row, d in zip(all_axes, data):
        order, sizes = input_models_by_size(d.result)
        x = sizes if sizes is not None else np.arange(1, len(order) + 1, dtype=float)
        summaries = [d.result.model_summaries[j] for j in order]
        spans = []
        for axes, (metric, title, scale, limits, color) in zip(row, MIRAGE_PANELS):
            mean = np.array([s[metric]["mean"] for s in summaries]) * scale
            low, high = (np.array([s[metric]["ci95"][i] for s in summaries]) * scale for i in (0, 1))
            axes.errorbar(x, mean, yerr=[mean - low, high - mean], marker="o", capsize=3, color=color)
            # Fixed 0-100% and 0-1 axes: top-1 and alpha are both fractions, so their slopes compare.
            top = limits[1] if limits[1] is not None else max(high.max() * 1.15, 1e-3)
            axes.set_ylim(limits[0] - 0.03 * top, top * 1.03)  # a margin: points at 0 or 100% stay whole
            unit = "%" if metric == "top1" else " nats" if metric == "kl" else ""
            digits = 1 if metric == "top1" else 2
            span = f"{mean[0]:.{digits}f}{unit} \u2192 {mean[-1]:.{digits}f}{unit}"
            spans.append(
                f"{LABELS[metric]} {span}" + (f" ({trend(mean)})" if sizes is not None and len(mean) > 1 else "")
            )
            axes.set_title(f"{d.name}: {title}\nsmallest \u2192 largest: {span}", fontsize=9)
            axes.grid(True, which="major", alpha=0.3)
            if sizes is not None:
                size_axis(axes)
            else:
                axes.set_xticks(x, [short_name(d.result.inputs[j]) for j in order], rotation=20, fontsize=8)
        notes.append(f"{d.name} (n = {d.result.n}): " + ", ".join(spans))
    sized = [input_models_by_size(d.result)[1] is not None for d in data]
    figure.supxlabel(
        "input model size (non-embedding parameters, log scale)"
        if all(sized)
        else "input model: by size (non-embedding parameters, log scale), or in the dataset's order where "
        "sizes are unknown",
        fontsize=10,
    )
    figure.tight_layout()
    save(figure, path)
    return (
        "Each input model against its size, one row per dataset: its top-1 agreement with the target, alpha = "
        "sum_x min(p, q) = 1 - TV (the chance the target accepts a token drafted from it) and KL(target || model) "
        f"in nats (probabilities floored at 2^-24), each with its 95% bootstrap interval (seed {seed}). Top-1 only "
        "asks whether the argmax matches; alpha and KL score the whole distribution, so they can keep improving "
        "with size where top-1 is flat: a discontinuous metric hides (or makes) emergence that continuous ones "
        'show as a smooth trend (Schaeffer et al. 2023, "Are emergent abilities of large language models a '
        'mirage?"). Smallest to largest model:\n\n' + "\n".join(f"- {note}" for note in notes)
    )


GAMMAS = tuple(range(1, 9))  # draft lengths of the speculative-decoding picture


def drafting_curve(alpha: float, gammas: tuple[int, ...] = GAMMAS) -> np.ndarray:
    """Expected tokens per target forward pass at each draft length in `gammas`, for a drafter whose
    mean acceptance rate is `alpha` (`harness.scoring.metrics.tokens_per_pass`)."""
    return np.array([tokens_per_pass(alpha, gamma) for gamma in gammas])


def best_drafter(rows: list) -> StrategyScore | None:
    """The scored strategy with the highest mean alpha of those that returned distributions (the first listed
    on a tie), or None if none did."""
    drafters = [row for row in rows if isinstance(row, StrategyScore) and row.summary is not None]
    return max(drafters, key=lambda row: row.summary["alpha"]["mean"], default=None)


def speculative_picture(data: list[Drawn], path: Path) -> str:
    """Per dataset, two panels: the expected tokens per target pass against gamma (each input model as
    the drafter, and the strategy with the highest alpha), and the wall-time speedup once drafting is
    priced (`harness.drafting.pricing`, sampling), where the sidecar gives costs."""
    import matplotlib.pyplot as plt

    figure, all_axes = plt.subplots(len(data), 2, figsize=(12.4, 0.6 + 4.2 * len(data)), squeeze=False)
    gammas = np.array(GAMMAS)
    notes = []
    for d, (axes, priced_axes) in zip(data, all_axes):
        order, _ = input_models_by_size(d.result)
        colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, len(order)))  # dark = small, light = large
        axes.plot(
            gammas, gammas + 1.0, color="gray", linestyle=":", linewidth=1, label="every draft accepted (gamma + 1)"
        )
        drafting = d.result.drafting
        at_gamma = []
        for j, color in zip(order, colors):
            alpha = d.result.model_summaries[j]["alpha"]["mean"]
            name = short_name(d.result.inputs[j])
            axes.plot(
                gammas,
                drafting_curve(alpha),
                marker="o",
                markersize=3,
                color=color,
                label=f"{name} (alpha {alpha:.3f})",
            )
            at_gamma.append(f"{name} {tokens_per_pass(alpha, GAMMA):.2f}")
            if drafting is not None:
                cost = drafting["models"][str(d.result.inputs[j])]["cost"]
                priced_axes.plot(
                    gammas,
                    [speedup(alpha, g, cost) for g in gammas],
                    marker="o",
                    markersize=3,
                    color=color,
                    label=f"{name} (c {cost:.2f})",
                )
        drafter = best_drafter(d.result.strategies)
        if drafter is not None:
            alpha = drafter.summary["alpha"]["mean"]
            axes.plot(
                gammas,
                drafting_curve(alpha),
                color="black",
                linestyle="--",
                linewidth=2.2,
                label=f"strategy {drafter.name} (alpha {alpha:.3f})",
            )
            at_gamma.append(f"strategy {drafter.name} {tokens_per_pass(alpha, GAMMA):.2f}")
            entry = drafting["strategies"].get(drafter.name) if drafting is not None else None
            if entry is not None:
                priced_axes.plot(
                    gammas,
                    [speedup(alpha, g, entry["cost"]) for g in gammas],
                    color="black",
                    linestyle="--",
                    linewidth=2.2,
                    label=f"strategy {drafter.name} (c {entry['cost']:.2f}: {len(entry['reads'])} models)",
                )
        for ax in (axes, priced_axes):
            ax.set_xticks(gammas)
            ax.set_xlabel("gamma: tokens drafted per target forward pass")
            ax.grid(True, alpha=0.3)
        axes.set_ylim(1, None)
        axes.legend(fontsize=7, loc="upper left")
        axes.set_ylabel("expected tokens per target forward pass")
        axes.set_title(f"{d.name}: n = {d.result.n}, target {short_name(d.result.target)}", fontsize=10)
        if drafting is None:
            priced_axes.text(
                0.5,
                0.5,
                "no costs: the sidecar has neither\nmeasured speeds nor sizes",
                ha="center",
                va="center",
                transform=priced_axes.transAxes,
            )
        else:
            priced_axes.axhline(1, color="gray", linestyle=":", linewidth=1)
            priced_axes.legend(fontsize=7, loc="upper right")
            priced_axes.set_ylabel("wall-time speedup, sampling (drafting priced)")
            source = "measured speeds" if drafting["cost_source"] == "measured" else "parameter counts"
            priced_axes.set_title(f"{d.name}: priced by cost c from {source}", fontsize=10)
        notes.append(
            f"{d.name}: "
            + ", ".join(at_gamma)
            + ("" if drafter is not None else " (no strategy returned distributions)")
        )
    figure.tight_layout()
    save(figure, path)
    return (
        "Speculative decoding (Leviathan et al. 2023): a drafter proposes gamma tokens and one forward pass of "
        "the target checks them all; with acceptance rate alpha (the mean over the prefixes of sum_x min(p, q)), "
        "the expected number of tokens per target pass is (1 - alpha^(gamma+1)) / (1 - alpha) (left). One line "
        "per input model as the drafter, and (dashed) the strategy with the highest alpha of those that returned "
        "distributions, which drafts from every input model it reads. Right: the wall-time speedup once drafting "
        "is paid for, (1 - alpha^(gamma+1)) / ((1 - alpha)(gamma c + 1)), c a drafter's cost per token in target "
        "passes (a strategy's: the sum of the models it reads). "
        f"At gamma = {GAMMA}:\n\n" + "\n".join(f"- {note}" for note in notes)
    )


def task_picture(data: list[Drawn], path: Path, seed: int) -> str:
    """Wei et al.'s picture: each model's task accuracy, and its answer log-likelihood, against size."""
    import matplotlib.pyplot as plt

    figure, all_axes = plt.subplots(len(data), 2, figsize=(11, 0.6 + 3.0 * len(data)), squeeze=False)
    notes = []
    for (left, right), d in zip(all_axes, data):
        task, pictures = d.result.task, d.pictures
        sizes = pictures.sizes
        order = sorted(range(len(task.models)), key=lambda j: sizes[j] if sizes else j)
        x = np.array([sizes[j] for j in order], dtype=float) if sizes else np.arange(1, len(order) + 1, dtype=float)
        target = task.models.index(d.result.target)
        for axes, values, intervals, scale, title in (
            (left, task.accuracy, task.accuracy_ci95, 100, "task accuracy (%)"),
            (right, task.loglik, task.loglik_ci95, 1, "answer log-likelihood (nats)"),
        ):
            mean = np.array([values[j] for j in order]) * scale
            low, high = (np.array([intervals[j][i] for j in order]) * scale for i in (0, 1))
            axes.errorbar(x, mean, yerr=[mean - low, high - mean], marker="o", capsize=3, color="tab:purple")
            at = order.index(target)
            axes.plot(x[at], mean[at], marker="*", markersize=14, color="tab:red", linestyle="none", label="target")
            if scale == 100:
                axes.set_ylim(-3, 103)
                if task.chance is not None:
                    axes.axhline(task.chance * 100, color="grey", linestyle="--", label=f"chance {task.chance:.0%}")
            axes.set_title(f"{d.name}: {title}", fontsize=9)
            axes.grid(True, which="major", alpha=0.3)
            axes.legend(fontsize=8, loc="best")
            if sizes:
                size_axis(axes)
            else:
                axes.set_xticks(x, [short_name(task.models[j]) for j in order], rotation=20, fontsize=8)
        rule = "the likelier choice" if task.rule == "choice" else "greedy decoding writes the answer"
        notes.append(
            f"{d.name} (n = {d.result.n}, right when {rule}): "
            + ", ".join(f"{short_name(task.models[j])} {task.accuracy[j]:.1%}" for j in order)
        )
    figure.supxlabel("model size (non-embedding parameters, log scale)", fontsize=10)
    figure.tight_layout()
    save(figure, path)
    return (
        "Task accuracy against scale, as Wei et al. (2022) draw emergence: every model of the suite (the target "
        "starred), each dataset with answers in its row; left, the share of prefixes each model answers right "
        "(a choice task: its likelier choice; otherwise greedy decoding writes the whole answer, "
        "lm-evaluation-harness's is_greedy), the chance level dashed; right, the answer's teacher-forced "
        "log-likelihood, the continuous measure of Schaeffer et al. (2023) and Snell et al. (2024). 95% bootstrap "
        f"intervals (seed {seed}). Smallest to largest:\n\n" + "\n".join(f"- {note}" for note in notes)
    )


def harder_picture(rows: list[dict], names: list[str], path: Path) -> str:
    """ "Is prediction harder here?": per dataset, the best heuristic's top-1 and the target's task accuracy."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(5.0, 1.6 * len(rows)), 3.6))
    x = np.arange(len(rows))
    for offset, label, color, get in (
        (
            -0.2,
            "best heuristic's top-1 agreement with the target",
            "tab:blue",
            lambda row: (row["reference_top1"], row["reference_top1_ci95"]),
        ),
        (
            0.2,
            "the target's task accuracy",
            "tab:purple",
            lambda row: (
                (row["task"]["target_accuracy"], row["task"]["target_accuracy_ci95"]) if row["task"] else (None, None)
            ),
        ),
    ):
        values = [get(row) for row in rows]
        shown = [(k, v, ci) for k, (v, ci) in enumerate(values) if v is not None]
        if not shown:
            continue
        where = np.array([k for k, _, _ in shown]) + offset
        mean = np.array([v for _, v, _ in shown]) * 100
        low, high = (np.array([ci[i] for _, _, ci in shown]) * 100 for i in (0, 1))
        axes.bar(where, mean, width=0.4, color=color, label=label, yerr=[mean - low, high - mean], capsize=3)
    axes.set_xticks(x, names, rotation=15, fontsize=8)
    axes.set_ylim(0, 105)
    axes.set_ylabel("%")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.grid(True, axis="y", alpha=0.3)
    save(figure, path)
    lines = []
    for name, row in zip(names, rows):
        test = row.get("vs_baseline", {}).get("top1")
        against = (
            " (the baseline)"
            if row["baseline"]
            else ""
            if test is None
            else (f"; against the baseline: {test['difference'] * 100:+.1f} points, p = {test['p_value']:.2g}")
        )
        lines.append(f"{name}: best heuristic ({row['reference']}) {row['reference_top1']:.1%}{against}")
    return (
        "Is prediction harder on a task? Per dataset, the best built-in heuristic's top-1 agreement with the target "
        "(lower: harder to predict) and, where the prefixes carry answers, the target's task accuracy, with 95% "
        "bootstrap intervals; each dataset is tested against the baseline (plain text: the first Wikipedia set "
        "without answers, or --baseline) with an unpaired permutation test:\n\n"
        + "\n".join(f"- {line}" for line in lines)
    )


def interval_cell(entry: dict | None, scale: float = 1.0, digits: int = 3) -> str:
    """`mean [low, high]` of a `harness.scoring.metrics.summary` entry, times `scale`; an em dash for None."""
    if entry is None:
        return "\u2014"
    low, high = entry["ci95"]
    return f"{entry['mean'] * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


# The metrics table's columns: (metric, header, scale, digits).
TABLE_COLUMNS = (
    ("top1", "top-1 (%)", 100, 1),
    ("top5", "top-5 (%)", 100, 1),
    ("log_loss", "log-loss", 1, 3),
    ("kl", "KL (nats)", 1, 3),
    ("alpha", "alpha", 1, 3),
    ("tokens_per_pass", f"tokens/pass (gamma = {GAMMA})", 1, 2),
)


def metrics_table(result: DatasetResult) -> str:
    """Every metric of each input model (smallest first) and each scored strategy, with 95% intervals, in
    markdown; where the dataset has a KL floor, the share of the reference's KL above it each one removes."""
    removed = result.kl_floor["removed"] if result.kl_floor else {}
    columns = TABLE_COLUMNS + ((("removed", "KL above the floor removed (%)", 100, 0),) if removed else ())

    def line(label: str, name: str, summary: dict) -> str:
        summary = (
            {**summary, "removed": {"mean": removed[name]["share"], **removed[name]}} if name in removed else summary
        )
        cells = [label.replace("|", "\\|")] + [
            interval_cell(summary.get(metric), scale, digits) for metric, _, scale, digits in columns
        ]
        return "| " + " | ".join(cells) + " |"

    lines = ["| | " + " | ".join(header for _, header, _, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    order, sizes = input_models_by_size(result)
    for k, j in enumerate(order):
        label = short_name(result.inputs[j]) + (f" ({int(sizes[k]):,})" if sizes is not None else "")
        lines.append(line(label, str(result.inputs[j]), result.model_summaries[j]))
    for row in result.strategies:
        if isinstance(row, StrategyScore):  # ids only: top-1 alone
            lines.append(
                line(
                    f"strategy {row.name}",
                    row.name,
                    row.summary or {"top1": {"mean": row.accuracy, "ci95": list(row.ci95)}},
                )
            )
    floor = result.kl_floor
    if floor is not None:
        low, high = floor["ci95"]
        lines += [
            "",
            f"KL floor: {floor['mean']:.3f} [{low:.3f}, {high:.3f}], {floor['method']} "
            f"({short_name(floor['model'])}); the reference, {floor['reference']}, is "
            f"{floor['above_floor']:.3f} above it"
            + ("" if removed else ": the two seeds differ too much here for the approximation"),
        ]
    return "\n".join(lines)


def drafting_table(result: DatasetResult) -> str:
    """Each input model (smallest first) and each strategy that reads a model as the target's drafter:
    its cost and, greedy and sampling, the best gamma and the priced speedup, in markdown."""
    drafting = result.drafting
    lines = [
        "| drafter | cost c | greedy: alpha | gamma | speedup | sampling: alpha | gamma | speedup |",
        "|---" * 8 + "|",
    ]

    def line(label: str, entry: dict) -> str:
        cells = [label, f"{entry['cost']:.3f}"]
        for mode in ("greedy", "sampling"):
            e = entry.get(mode)
            cells += ["\u2014"] * 3 if e is None else [f"{e['alpha']:.3f}", str(e["gamma"]), f"{e['speedup']:.2f}x"]
        return "| " + " | ".join(cells) + " |"

    order, _ = input_models_by_size(result)
    lines += [line(short_name(result.inputs[j]), drafting["models"][str(result.inputs[j])]) for j in order]
    lines += [
        line(f"strategy {name} (reads {len(entry['reads'])})", entry) for name, entry in drafting["strategies"].items()
    ]
    source = "measured speeds (the sidecar's tokens/s)" if drafting["cost_source"] == "measured" else "parameter counts"
    return (
        f"Speculative decoding priced: cost c per drafted token in target passes, from {source}; the speedup "
        "(1 - alpha^(gamma+1)) / ((1 - alpha)(gamma c + 1)) at the best gamma (1-16); greedy accepts at the "
        "top-1 agreement, sampling at alpha = 1 - TV.\n\n" + "\n".join(lines)
    )


def unique_names(results: list) -> list[str]:
    """Each dataset's file stem, numbered where two files share one."""
    stems = [Path(r.path).stem for r in results]
    return [stem if stems.count(stem) == 1 else f"{stem}-{k + 1}" for k, stem in enumerate(stems)]


def write_report(results: list, directory: str | os.PathLike, seed: int = 0, harder: list[dict] | None = None) -> Path:
    """Draw the pictures of `harness.scoring.evaluate.score_dataset`'s results (scored with
    `Settings.pictures`) into `directory` and write its index.md (last, so a page is only there
    with its pictures); returns the page's path.

    A dataset that could not be scored (`DatasetFailure`) is left out, and the page says so.
    `harder`: `harness.scoring.tasks.harder_here` of the scored datasets, drawn when given.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    directory = Path(directory)
    scored = [r for r in results if getattr(r, "pictures", None) is not None]
    skipped = [r.path for r in results if getattr(r, "pictures", None) is None]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        data = [Drawn(name, r) for r, name in zip(scored, unique_names(scored))]
        sections = []
        if data:
            sections.append(
                ("Emergence curve", "emergence.png", emergence_picture(data, directory / "emergence.png", seed))
            )
            sections.append(("Strategies", "accuracy.png", accuracy_picture(data, directory / "accuracy.png")))
            sections.append(
                ("Beyond top-1: the mirage", "mirage.png", mirage_picture(data, directory / "mirage.png", seed))
            )
            sections.append(
                ("Speculative decoding", "speculative.png", speculative_picture(data, directory / "speculative.png"))
            )
            tasks = [d for d in data if d.result.task is not None]
            if tasks:
                sections.append(
                    ("Task accuracy against scale", "tasks.png", task_picture(tasks, directory / "tasks.png", seed))
                )
            if harder and len(harder) == len(data):
                sections.append(
                    (
                        "Is prediction harder here?",
                        "harder.png",
                        harder_picture(harder, [d.name for d in data], directory / "harder.png"),
                    )
                )
        for d in data:
            sections.append(
                (
                    f"{d.name}: every metric",
                    None,
                    f"Each input model (smallest first, with its size) and each strategy against the target "
                    f"on {d.result.n} prefixes: the mean and its 95% bootstrap interval (seed {seed}); "
                    f"tokens per target pass from alpha at gamma = {GAMMA}; \u2014 where a strategy returned "
                    "token ids.\n\n" + metrics_table(d.result),
                )
            )
            if d.result.drafting is not None:
                sections.append((f"{d.name}: drafting, priced", None, drafting_table(d.result)))
            if len(d.pictures.emergent_tokens):
                sections.append(
                    (
                        f"{d.name}: emergent prefixes",
                        f"{d.name}-emergent.png",
                        emergent_picture(d, directory / f"{d.name}-emergent.png", seed),
                    )
                )
            else:
                sections.append(
                    (
                        f"{d.name}: emergent prefixes",
                        None,
                        f"No prefix is emergent (of {d.result.n}): "
                        "every target top-1 is some input model's top-1, so there is nothing to draw.",
                    )
                )
            sections.append(
                (
                    f"{d.name}: rank of the target's top-1",
                    f"{d.name}-rank.png",
                    rank_picture(d, directory / f"{d.name}-rank.png"),
                )
            )
        listed = ", ".join(f"`{r.path}`" for r in scored) or "none scored"
        lines = ["# Challenge report", "", f"Datasets: {listed}; seed {seed}."]
        if skipped:
            listed = ", ".join(f"`{path}`" for path in skipped)
            lines.append(f"Not drawn (the dataset could not be scored): {listed}.")
        for title, file, caption in sections:
            lines += ["", f"## {title}", ""] + ([f"![{title}](<{file}>)", ""] if file else []) + [caption]
        page = directory / "index.md"
        atomic_write(page, lambda f: f.write("\n".join(lines) + "\n"), mode="w")
    except OSError as e:
        raise InputError(f"{directory}: the report cannot be written ({e.strerror or type(e).__name__})") from None
    return page
