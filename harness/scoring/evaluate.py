"""The scoring engine: open a dataset, run strategies on it a chunk of prefixes at a time, score them.

    settings = Settings(seed=0, references=...)
    result = score_dataset(path, strategies, settings)       # a DatasetResult: .to_json(), harness.scoring.leaderboard
    guesses = predict_dataset(path, strategies, settings)    # DatasetPredictions: the target is never read
    shown = show_prefix(path, 3, strategies, settings)       # one prefix, every model and every guess

How a dataset is read. The loaded (N, M, V) array is never written and never copied whole. The
target view (`harness.scoring.top1.target_view`: every model's top-1, the emergent prefixes, the float16
ties) is one chunked pass over it; the strategies are a second: per chunk of prefixes
(`harness.scoring.learned.chunk_prefixes`, about 128 MB; `Settings.chunk_size` overrides it), ONE read-only
copy of the input models' columns is handed to every strategy in turn. That copy holds no target
column, so nothing a strategy gets reaches the target, and its memory is a `bytes` object, so no
strategy can unlock it and change what the next one sees. A chunk is just fewer sentences: a
strategy is called as in the original challenge, with the chunk's sentences, and its guesses are
concatenated. A strategy registered `whole_array` gets every prefix in one call instead (a copy of
N x (M-1) x V float16: 6 GB for 10,000 prefixes of 7 models at Pythia's vocabulary).

A strategy returns N token ids, or an (N, V) array of distributions whose argmaxes are its guesses
(`harness.scoring.top1.check_output`). When the target is read, each chunk's distributions are scored
right away against the target's rows of that chunk (`harness.scoring.metrics.distribution_metrics`: top-5,
log-loss, KL, alpha), as is every input model's distribution, and only those per-prefix numbers are
kept: memory stays bounded by the chunk. Intervals and paired tests come from one set of bootstrap
resamples of the prefixes, shared by every strategy and model (`harness.scoring.metrics.resample_metrics`).

Each strategy is seeded (`random`, `numpy.random`) with `Settings.seed` once, and its generators'
state is kept across its chunks, so its guesses do not depend on the chunk size or on the other
strategies. A failure on any chunk is that strategy's one-line error, and it is not called again;
the others are still scored.

Learned strategies (`@learned`) fit before any prediction: on `Settings.train` (another file, no
prefix in common), else on K-1 of `Settings.folds` folds of this dataset for each fold they
predict, so never on a prefix they guess; each chunk's prefixes then go to their fold's predictor.
"""

from __future__ import annotations

import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import InputError, plural
from harness.cli import progress
from harness.data.dataset import (
    AnswerScores,
    NoiseCeiling,
    find_model,
    load_dataset,
    model_sizes,
    read_sidecar,
    sidecar_answer_scores,
    sidecar_noise_ceiling,
)
from harness.drafting.pricing import model_costs, priced, strategy_cost
from harness.scoring.learned import TrainingSplit, check_disjoint, fit_strategy, fold_indices, read_only, sealed
from harness.scoring.metrics import (
    FLOOR,
    GAMMA,
    NEAR_TIE,
    PER_PREFIX,
    TargetRows,
    compare,
    distribution_metrics,
    near_tied,
    removed_share,
    resample_metrics,
    summary,
    target_rows,
    twin_floor,
)
from harness.scoring.registry import ModelName, Strategy
from harness.scoring.stats import bootstrap_ci, bootstrap_means, paired_comparison, percentile_ci
from harness.scoring.tasks import TaskCurve, strategy_task_accuracy, task_curve
from harness.scoring.top1 import (
    StrategyError,
    StrategyFailure,
    StrategyScore,
    TargetView,
    check_output,
    chunk_prefixes,
    describe_exception,
    input_model_reach,
    orderable,
    score_guesses,
    short_path,
    target_view,
)

HIDDEN_TARGET = "hidden"  # the target's name in a blind test's public file, as strategies receive it
REFERENCE_HEURISTICS = ("largest", "average", "top2-average")  # built-in, not learned; dummy and random are baselines
DEFAULT_FOLDS = 5


def folds_for(settings: Settings, n: int) -> int:
    """The K of K-fold cross-validation on a dataset of `n` prefixes: --folds as given, else the
    default, shrunk to `n` (a 3-prefix dataset is cross-validated 3 ways, not refused)."""
    if settings.folds is not None:
        return settings.folds
    if n < 2:
        raise InputError(
            f"a learned strategy needs at least 2 prefixes to cross-validate on (this dataset has {n}); or pass --train"
        )
    return min(DEFAULT_FOLDS, n)


@dataclass(frozen=True)
class Settings:
    """How to score: everything `challenge.py`'s flags say, in one place."""

    target: str | None = None  # the model whose top-1 is predicted (default: the last)
    num_samples: int | None = None  # the first N prefixes only
    seed: int = 0  # seeds each strategy's random/numpy.random, the folds, the bootstrap
    folds: int | None = None  # K of learned strategies' cross-validation, without `train` (None: the
    # default, DEFAULT_FOLDS, shrunk to the dataset's prefixes where it has fewer)
    train: Path | None = None  # learned strategies fit on this file instead
    references: tuple[Strategy, ...] = ()  # the heuristics the reference is the best of
    comparisons: tuple[tuple[str, str], ...] = ()  # pairs of strategy names to compare
    chunk_size: int | None = None  # prefixes per strategy call (default: `chunk_prefixes`, ~128 MB)
    pictures: bool = False  # also compute what `--report` draws (`PictureData`)
    progress: bool = True  # a progress bar on stderr, when it is a terminal
    debug: bool = False  # print a failing strategy's full traceback


@dataclass
class DatasetView:
    """One dataset as the engine reads it: which models are inputs, which is the target, and the
    whole (N, M, V) array, read chunk by chunk and never written."""

    path: Path
    sentences: list[str]  # the first n prefixes (`num_samples`)
    probs: np.ndarray  # every prefix of the file: read-only to the engine
    input_names: list[ModelName]  # each with its size from the sidecar
    input_columns: np.ndarray
    target_column: int | None  # None in a blind test's public file: every model is an input
    target: str  # the target's name as strategies receive it (HIDDEN_TARGET if hidden)
    model_names: list[str]  # every model, in the file's order
    model_sizes: list[int | None]  # each one's non-embedding parameters (the sidecar's; None: unknown)
    answers: AnswerScores | None = None  # the answer pass's scores of a prefix set with answers (to score)
    ceiling: NoiseCeiling | None = None  # another seed of the target, scored against it (to score the last model)
    costs: tuple[dict[str, float], str] | None = None  # each input model's drafting cost (`model_costs`)

    @property
    def n(self) -> int:
        return len(self.sentences)

    @property
    def vocab_size(self) -> int:
        return self.probs.shape[2]

    def inputs(self, start: int, stop: int) -> np.ndarray:
        """Prefixes [start, stop) of the input models: a sealed copy (`harness.scoring.learned.sealed`)."""
        return sealed(self.probs[start:stop][:, self.input_columns])


def is_public(metadata: dict | None) -> bool:
    """Whether a sidecar is a blind test's public file's (`"public": true`): every model in it is an input."""
    return isinstance(metadata, dict) and metadata.get("public") is True


def open_dataset(path: Path, settings: Settings, purpose: str = "score") -> DatasetView:
    """Load a dataset to `score`, `predict` (the target is never read) or `train` on, reading its
    sidecar once (a stale one warns once)."""
    dataset = load_dataset(path)
    names = dataset.model_names
    metadata = read_sidecar(path, verify_hash=False)
    public = is_public(metadata)
    if public and purpose == "score":
        raise InputError(
            f"{path}: a blind test's public file (its target is hidden): nothing to score; "
            "run it with --predict-only --predictions FILE"
        )
    if public and purpose == "train":
        raise InputError(f"{path}: a blind test's public file has no target: it cannot be a --train file")
    t = None if public else len(names) - 1 if settings.target is None else find_model(names, settings.target, path)
    if purpose == "predict" and metadata is None and settings.target is None:  # a --target leaves no doubt
        print(
            f"warning: {path}: no valid sidecar, so it is not known to be a blind test's public file: its model "
            f"{names[t]} is taken as the target and left out",
            file=sys.stderr,
        )
    num_samples = settings.num_samples if purpose != "train" else None
    n = min(num_samples or len(dataset.sentences), len(dataset.sentences))
    if num_samples is not None and num_samples > n:
        print(
            f"warning: {path}: --num-prefixes {num_samples}, but it has only {n} {plural(n, 'prefix', 'prefixes')}; "
            f"scoring {n}",
            file=sys.stderr,
        )
    sizes = model_sizes(names, metadata)
    columns = np.array([j for j in range(len(names)) if j != t])
    return DatasetView(
        path,
        dataset.sentences[:n],
        dataset.probs,
        [ModelName(names[j], **sizes.get(names[j], {})) for j in columns],
        columns,
        t,
        HIDDEN_TARGET if t is None else names[t],
        names,
        [sizes.get(name, {}).get("non_embedding_params") for name in names],
        sidecar_answer_scores(dataset, metadata) if purpose == "score" else None,
        sidecar_noise_ceiling(dataset, metadata) if purpose == "score" and t == len(names) - 1 else None,
        model_costs([names[j] for j in columns], names[t], metadata.get("models"))
        if purpose == "score" and t is not None and isinstance(metadata, dict)
        else None,
    )


def open_training(data: DatasetView, settings: Settings) -> TrainingSplit:
    """`settings.train`, the file learned strategies fit on when they predict `data`: the same input
    models and vocabulary, and not one prefix in common. The fit is told `data`'s target name
    (HIDDEN_TARGET for a public file), as its predictions will be."""
    path = settings.train
    train = open_dataset(path, settings, purpose="train")
    if list(train.input_names) != list(data.input_names) or train.vocab_size != data.vocab_size:
        raise InputError(
            f"{path}: its models ({', '.join(train.input_names)} -> {train.target}, vocabulary "
            f"{train.vocab_size}) differ from {data.path}'s ({', '.join(data.input_names)} -> "
            f"{data.target}, vocabulary {data.vocab_size})"
        )
    check_disjoint(path, train.sentences, data.path, data.sentences)
    view = target_view(train.probs, train.target_column, settings.chunk_size)
    return TrainingSplit(
        train.sentences,
        data.input_names,
        data.target,
        train.probs,
        np.arange(train.n),
        train.input_columns,
        train.target_column,
        view.target_top1,
        settings.chunk_size,
    )


@dataclass
class Fitted:
    """A learned strategy's fits: a predictor per fold, and the fold predicting each prefix."""

    predictors: list[Callable]
    fold: np.ndarray  # (n,) index into predictors
    how: str  # how it was fitted, for the leaderboard

    def __call__(
        self, data: DatasetView, start: int, stop: int, inputs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(guesses, distributions or None) for prefixes [start, stop), each from its fold's predictor."""
        folds = self.fold[start:stop]
        outputs = []
        for k in np.unique(folds):
            mine = np.flatnonzero(folds == k)
            chunk = inputs.view() if len(mine) == len(folds) else read_only(inputs[mine])
            returned = self.predictors[k](
                [data.sentences[start + i] for i in mine], list(data.input_names), data.target, chunk
            )
            outputs.append((mine, *check_output(returned, len(mine), data.vocab_size, rows=start + mine)))
        if len({distribution is None for _, _, distribution in outputs}) > 1:
            raise StrategyError("returned token ids for some folds and distributions for others")
        if len(outputs) == 1:
            return outputs[0][1], outputs[0][2]
        guesses = np.empty(stop - start, dtype=np.int64)
        distributions = None if outputs[0][2] is None else np.empty((stop - start, data.vocab_size), np.float32)
        for mine, fold_guesses, distribution in outputs:
            guesses[mine] = fold_guesses
            if distributions is not None:
                distributions[mine] = distribution
        return guesses, distributions


def fit_learned(
    strategy: Strategy, data: DatasetView, settings: Settings, view: TargetView | None, train: TrainingSplit | None
) -> Fitted:
    """Every fit a learned strategy needs before predicting `data` (see the module's docstring)."""
    if train is not None:
        return Fitted(
            [fit_strategy(strategy.fn, train)],
            np.zeros(data.n, dtype=np.int64),
            f"fit on {short_path(str(settings.train))}",
        )
    if view is None:  # predicting only: this file's target is never read
        raise InputError(
            "a learned strategy needs --train under --predict-only (a file with the target and the same input models)"
        )
    fold, predictors = np.empty(data.n, dtype=np.int64), []
    folds = folds_for(settings, data.n)
    for k, held_out in enumerate(fold_indices(data.n, folds, settings.seed)):
        fold[held_out] = k
        rows = np.setdiff1d(np.arange(data.n), held_out, assume_unique=True)
        split = TrainingSplit(
            [data.sentences[i] for i in rows],
            data.input_names,
            data.target,
            data.probs,
            rows,
            data.input_columns,
            data.target_column,
            view.target_top1[rows],
            settings.chunk_size,
        )
        predictors.append(fit_strategy(strategy.fn, split))
    shrunk = (
        f", the default {DEFAULT_FOLDS} shrunk to the {data.n} prefixes"
        if folds < DEFAULT_FOLDS and settings.folds is None
        else ""
    )
    return Fitted(predictors, fold, f"{folds}-fold cross-validation by prefix{shrunk}")


@dataclass
class StrategyRun:
    """One strategy's guesses on one dataset, or the one-line error in its row."""

    name: str
    guesses: np.ndarray | None = None
    error: str | None = None
    seconds: float = 0.0
    fit: str | None = None  # how a learned strategy was fitted
    returns: str | None = None  # "ids" or "distribution": what it returned (the same for every chunk)
    metrics: dict[str, np.ndarray] | None = None  # per prefix, when it returned distributions and the target is read
    shown: np.ndarray | None = None  # its distribution at `run_strategies`' `keep` prefix (float32)


def progress_bar(settings: Settings, data: DatasetView):
    """Prefixes per second on stderr (tqdm), when it is a terminal and `settings.progress`."""
    return progress(
        total=data.n,
        unit="prefix",
        desc=data.path.name,
        leave=False,
        file=sys.stderr,
        disable=not (settings.progress and sys.stderr.isatty()),
    )


def new_metrics(n: int) -> dict[str, np.ndarray]:
    return {name: np.empty(n, dtype=bool if name == "top5" else np.float64) for name in PER_PREFIX}


class StrategyRunner:
    """The state of one `run_strategies` pass: each strategy's run, its fitted predictors, its random
    state and its last returned distribution, and the target's rows of the chunk being scored."""

    def __init__(
        self,
        data: DatasetView,
        strategies: list[Strategy],
        settings: Settings,
        view: TargetView | None,
        keep: int | None,
    ):
        self.data, self.strategies, self.settings, self.view, self.keep = data, strategies, settings, view, keep
        self.runs = [StrategyRun(s.name, np.empty(data.n, dtype=np.int64)) for s in strategies]
        self.calls, self.states, self.outputs = {}, {}, {}
        self.model_metrics = None if view is None else [new_metrics(data.n) for _ in data.input_names]
        self.targets = {}  # the target's rows of the current chunk, read once for every distribution scored on them
        self.size = settings.chunk_size or chunk_prefixes(
            data.probs.shape[1], data.vocab_size, data.probs.dtype.itemsize
        )

    def target_at(self, start: int, stop: int) -> TargetRows:
        if (start, stop) not in self.targets:
            self.targets.clear()
            self.targets[start, stop] = target_rows(
                self.data.probs[start:stop, self.data.target_column], self.view.target_top1[start:stop]
            )
        return self.targets[start, stop]

    def fail(self, run: StrategyRun, strategy: Strategy, error: Exception) -> None:
        run.guesses = run.metrics = None
        # InputError: e.g. too few prefixes for --folds
        run.error = (
            str(error) if isinstance(error, (StrategyError, InputError)) else describe_exception(error, strategy.fn)
        )
        if self.settings.debug and not isinstance(error, (StrategyError, InputError)):
            print(f"{strategy.name} on {self.data.path}:", file=sys.stderr)
            traceback.print_exception(error)

    def timed(self, run: StrategyRun, strategy: Strategy, step: Callable[[], None]) -> None:
        """`step`, in the strategy's own random state and clock; an exception fails the strategy."""
        random.setstate(self.states[run.name][0])
        np.random.set_state(self.states[run.name][1])
        start = time.perf_counter()
        try:
            step()
        except Exception as e:  # a researcher's strategy may fail in any way: report it, score the rest
            self.fail(run, strategy, e)
        run.seconds += time.perf_counter() - start
        self.states[run.name] = random.getstate(), np.random.get_state()

    def predict(self, run: StrategyRun, strategy: Strategy, start: int, stop: int, inputs: np.ndarray) -> None:
        data = self.data
        if strategy.is_learned:
            guesses, distribution = self.calls[run.name](data, start, stop, inputs)
        else:
            # Each call gets its own lists and its own view: nothing a strategy changes reaches the next.
            returned = strategy.fn(list(data.sentences[start:stop]), list(data.input_names), data.target, inputs.view())
            guesses, distribution = check_output(returned, stop - start, data.vocab_size, rows=range(start, stop))
        returns = "ids" if distribution is None else "distribution"
        if run.returns not in (None, returns):
            kinds = {"ids": "token ids", "distribution": "distributions"}
            raise StrategyError(
                f"returned {kinds[returns]} for prefixes {start}-{stop - 1} but {kinds[run.returns]} before them"
            )
        run.returns = returns
        run.guesses[start:stop] = guesses
        self.outputs[run.name] = distribution

    def score(self, run: StrategyRun, start: int, stop: int) -> None:
        """The metrics of the distributions `run` just returned for [start, stop) (outside its clock)."""
        distribution = self.outputs.pop(run.name, None)
        if distribution is None or run.error is not None:
            return
        if self.keep is not None and start <= self.keep < stop:
            run.shown = np.array(distribution[self.keep - start], dtype=np.float32)
        if self.view is None:
            return
        if run.metrics is None:
            run.metrics = new_metrics(self.data.n)
        step = min(stop - start, self.size)  # a whole-array strategy's: chunk by chunk
        for begin in range(start, stop, step):
            end = min(stop, begin + step)
            for name, values in distribution_metrics(
                distribution[begin - start : end - start], self.target_at(begin, end)
            ).items():
                run.metrics[name][begin:end] = values

    def fit(self, train: TrainingSplit | None, bar) -> None:
        """Seed every strategy's random state, and fit the learned ones (their fits are timed as theirs)."""
        for run, strategy in zip(self.runs, self.strategies):
            random.seed(self.settings.seed)
            np.random.seed(self.settings.seed)
            self.states[run.name] = random.getstate(), np.random.get_state()
            if strategy.is_learned:
                bar.set_postfix_str(f"fitting {strategy.name}")
                fitted = lambda run=run, strategy=strategy: self.calls.update(
                    {run.name: fit_learned(strategy, self.data, self.settings, self.view, train)}
                )
                self.timed(run, strategy, fitted)
                run.fit = self.calls[run.name].how if run.name in self.calls else None
        bar.set_postfix_str("")

    def run_chunks(self, bar, on_chunk: Callable[[int, int, np.ndarray], None] | None) -> None:
        """One pass over the prefixes, a chunk at a time: every live chunked strategy predicts and is
        scored, then every input model, then `on_chunk`, all on one input copy."""
        data = self.data
        chunked = [(run, s) for run, s in zip(self.runs, self.strategies) if not s.needs_whole_array]
        for start in range(0, data.n, self.size):
            stop = min(data.n, start + self.size)
            live = [(run, s) for run, s in chunked if run.error is None]
            if not (live or self.model_metrics or on_chunk):
                continue
            inputs = data.inputs(start, stop)
            for run, strategy in live:
                self.timed(run, strategy, lambda: self.predict(run, strategy, start, stop, inputs))
                self.score(run, start, stop)
            if self.model_metrics is not None:
                for j, metrics in enumerate(self.model_metrics):
                    for name, values in distribution_metrics(inputs[:, j], self.target_at(start, stop)).items():
                        metrics[name][start:stop] = values
            if on_chunk:
                on_chunk(start, stop, inputs)
            bar.update(stop - start)

    def run_whole_arrays(self) -> None:
        """The strategies registered `whole_array`: every prefix in one call."""
        for run, strategy in zip(self.runs, self.strategies):
            if strategy.needs_whole_array and run.error is None:
                self.timed(
                    run, strategy, lambda: self.predict(run, strategy, 0, self.data.n, self.data.inputs(0, self.data.n))
                )
                self.score(run, 0, self.data.n)


def run_strategies(
    data: DatasetView,
    strategies: list[Strategy],
    settings: Settings,
    view: TargetView | None,
    train: TrainingSplit | None,
    on_chunk: Callable[[int, int, np.ndarray], None] | None = None,
    keep: int | None = None,
) -> tuple[list[StrategyRun], list[dict[str, np.ndarray]] | None]:
    """Every strategy's guesses on `data`, chunk by chunk (see the module's docstring), and with a
    target `view`, the metrics of every distribution returned and of every input model (`harness.scoring.metrics`),
    per prefix. `on_chunk` sees each chunk's input copy too, in the same pass; `keep`: the prefix whose
    returned distributions are kept (`StrategyRun.shown`)."""
    runner = StrategyRunner(data, strategies, settings, view, keep)
    with progress_bar(settings, data) as bar:
        runner.fit(train, bar)
        runner.run_chunks(bar, on_chunk)
    runner.run_whole_arrays()
    return runner.runs, runner.model_metrics


@dataclass
class DatasetResult:
    """One scored dataset: what the leaderboard, --json and --report show."""

    path: Path
    target: str
    inputs: list[ModelName]
    vocab_size: int
    train: Path | None  # the file learned strategies fitted on
    folds: int | None  # else their K-fold cross-validation
    strategies: list[StrategyScore | StrategyFailure]  # as asked for, in order
    reference: StrategyScore | None  # the best built-in heuristic (`REFERENCE_HEURISTICS`) here
    comparisons: list[dict]  # `Settings.comparisons`: a `paired_comparison` (a, b) or its error
    input_model_reach: dict
    model_summaries: list[dict]  # each input model's metrics against the target (`harness.scoring.metrics.summary`)
    model_names: list[str]  # every model, in the file's order
    task: TaskCurve | None  # task accuracy against scale, for a prefix set with answers
    noise_ceiling: dict | None  # another seed of the target against it: top-1 agreement, KL and alpha
    kl_floor: dict | None  # the KL no prediction can go below, and each predictor's share above it removed
    drafting: dict | None  # priced speculative-decoding speedups (`drafting`)
    # Not in the JSON: per prefix.
    sentences: list[str] = field(repr=False)
    view: TargetView = field(repr=False)
    guesses: dict[str, np.ndarray] = field(repr=False)  # by strategy name: the predictions CSV
    model_metrics: list[dict[str, np.ndarray]] = field(repr=False)  # each input model's `PER_PREFIX` metrics
    pictures: PictureData | None = field(default=None, repr=False)  # with `Settings.pictures`

    @property
    def n(self) -> int:
        return len(self.sentences)

    @property
    def emergent(self) -> int:
        return int(self.view.emergent.sum())

    @property
    def failed(self) -> bool:
        """Whether a strategy failed (its row holds the error)."""
        return any(isinstance(row, StrategyFailure) for row in self.strategies)

    @property
    def difficulty(self) -> np.ndarray | None:
        """(n,) each prefix's difficulty: KL(target || the reference's distribution), in nats (None: the
        reference returned token ids)."""
        reference = self.reference
        return None if reference is None or reference.per_prefix is None else reference.per_prefix["kl"]

    def by_size(self) -> list[int]:
        """The input models' indices, smallest first (unknown sizes: as listed, after the known)."""
        sizes = [name.non_embedding_params for name in self.inputs]
        return sorted(range(len(sizes)), key=lambda j: (sizes[j] is None, sizes[j] or 0, j))

    def emergence_curve(self) -> list[dict]:
        """Each input model's top-1 agreement with the target, and its other metrics, smallest first."""
        agreement = self.input_model_reach["per_input_model"]
        return [
            {
                "model": self.inputs[j],
                "non_embedding_params": self.inputs[j].non_embedding_params,
                "agreement": agreement[j],
                "metrics": self.model_summaries[j],
            }
            for j in self.by_size()
        ]

    def near_ties(self) -> dict:
        """How many prefixes have a near-tied target (`harness.scoring.metrics.near_tied`), and how many of the
        reference's misses fall on them: misses there are rounding in the target, not emergence."""
        tied = near_tied(self.view.second_ratio)
        out = {"threshold": NEAR_TIE, "prefixes": int(tied.sum())}
        if self.reference is not None:
            misses = ~self.reference.hits
            out.update(
                reference=self.reference.name,
                reference_misses=int(misses.sum()),
                misses_on_near_tied=int((misses & tied).sum()),
                reference_top1_near_tied=float(self.reference.hits[tied].mean()) if tied.any() else None,
                reference_top1_rest=float(self.reference.hits[~tied].mean()) if (~tied).any() else None,
            )
        return out

    def hardest(self, count: int = 10) -> list[dict]:
        """The `count` prefixes of highest difficulty, hardest first."""
        difficulty = self.difficulty
        if difficulty is None:
            return []
        order = np.argsort(-difficulty, kind="stable")[:count]
        return [
            {
                "index": int(i),
                "sentence": self.sentences[i],
                "kl": float(difficulty[i]),
                "target_top1": int(self.view.target_top1[i]),
                "second_ratio": float(self.view.second_ratio[i]),
            }
            for i in order
        ]

    def to_json(self) -> dict:
        reference = self.reference
        return {
            "path": str(self.path),
            "target": self.target,
            "inputs": list(self.inputs),
            "n": self.n,
            "vocab_size": self.vocab_size,
            "input_model_sizes": [name.non_embedding_params for name in self.inputs],
            "train": None if self.train is None else str(self.train),
            "folds": self.folds,
            "input_model_reach": self.input_model_reach,
            "tied_targets": self.view.tied_targets,
            "emergence_curve": self.emergence_curve(),
            "emergent": self.emergent,
            "near_ties": self.near_ties(),
            "floor": FLOOR,
            "gamma": GAMMA,
            "reference": None
            if reference is None
            else {"name": reference.name, "accuracy": reference.accuracy, "correct": reference.correct},
            "hardest": self.hardest(),
            "task": None if self.task is None else self.task.to_json(),
            "noise_ceiling": self.noise_ceiling,
            "kl_floor": self.kl_floor,
            "drafting": self.drafting,
            "comparisons": self.comparisons,
            "strategies": [row.to_json() for row in self.strategies],
        }


@dataclass
class DatasetPredictions:
    """One dataset's guesses under --predict-only: nothing scored, the target never read."""

    path: Path
    target: str
    inputs: list[ModelName]
    vocab_size: int
    train: Path | None
    runs: list[StrategyRun]
    sentences: list[str] = field(repr=False)

    @property
    def n(self) -> int:
        return len(self.sentences)

    @property
    def failed(self) -> bool:
        return any(run.error is not None for run in self.runs)

    def to_json(self) -> dict:
        return {
            "path": str(self.path),
            "target": self.target,
            "inputs": list(self.inputs),
            "n": self.n,
            "vocab_size": self.vocab_size,
            "input_model_sizes": [name.non_embedding_params for name in self.inputs],
            "train": None if self.train is None else str(self.train),
            "folds": None,
            "predict_only": True,
            "strategies": [
                {"name": run.name, "error": run.error}
                if run.error
                else {"name": run.name, "guesses": self.n, "fit": run.fit}
                for run in self.runs
            ],
        }


@dataclass
class DatasetFailure:
    """A dataset that could not be scored (or predicted): its one-line error."""

    path: Path
    error: str
    failed = True

    def to_json(self) -> dict:
        return {"path": str(self.path), "error": self.error}


def best_reference(correct: dict[str, int]) -> str | None:
    """The most accurate built-in heuristic on this dataset (`correct`: top-1 hits by strategy name;
    the first listed on a tie), or None."""
    scored = [(correct[name], -i, name) for i, name in enumerate(REFERENCE_HEURISTICS) if name in correct]
    return max(scored)[2] if scored else None


def score_dataset(path: Path, strategies: list[Strategy], settings: Settings) -> DatasetResult:
    """Every strategy's top-1 agreement with the target on one dataset (and the other metrics of
    `harness.scoring.metrics` where it returned distributions), each compared (paired, on the same prefixes)
    with the best of `settings.references`, which are run for that even when not in `strategies`;
    `settings.comparisons` are pairs of strategy names compared the same way."""
    data = open_dataset(path, settings)
    view = target_view(data.probs[: data.n], data.target_column, settings.chunk_size)
    any_learned = any(strategy.is_learned for strategy in strategies)
    train = open_training(data, settings) if any_learned and settings.train is not None else None
    listed = {strategy.name for strategy in strategies}
    references_only = [r for r in settings.references if r.name not in listed]
    ranks = np.empty((data.n, len(data.input_names)), dtype=np.int64) if settings.pictures else None

    def rank_targets(start: int, stop: int, inputs: np.ndarray) -> None:
        ranks[start:stop] = target_ranks(inputs, view.target_top1[start:stop])

    runs, model_metrics = run_strategies(
        data, strategies + references_only, settings, view, train, rank_targets if settings.pictures else None
    )
    scored = [run for run in runs if run.error is None]
    # Every metric of every predictor over the same bootstrap resamples: any two compare paired.
    resampled = resample_metrics(
        {
            **{run.name: run.metrics for run in scored if run.metrics is not None},
            **{j: metrics for j, metrics in enumerate(model_metrics)},
        },
        settings.seed,
    )
    scores = strategy_scores(scored, view, resampled, settings.seed)
    reference = scores.get(best_reference({name: score.correct for name, score in scores.items()}))
    listed_runs = runs[: len(strategies)]
    comparisons = [comparison(scores, resampled, a, b) for a, b in settings.comparisons]
    model_summaries = input_model_summaries(view, model_metrics, resampled, settings.seed)
    return DatasetResult(
        path,
        data.target,
        data.input_names,
        data.vocab_size,
        settings.train if train else None,
        folds_for(settings, data.n) if any_learned and train is None and data.n >= 2 else None,
        leaderboard_rows(listed_runs, scores, resampled, reference),
        reference,
        comparisons,
        input_model_reach(view.input_top1, view.target_top1),
        model_summaries,
        data.model_names,
        dataset_task(data, listed_runs, settings.seed),
        noise_ceiling(data.ceiling, view.target_top1, settings.seed),
        kl_floor(data.ceiling, reference, scores, data.input_names, model_metrics, resampled, settings.seed),
        drafting(data, scores, strategies + references_only, model_summaries),
        data.sentences,
        view,
        {run.name: run.guesses for run in listed_runs if run.error is None},
        model_metrics,
        picture_data(data, view, ranks) if settings.pictures else None,
    )


def strategy_scores(
    scored: list[StrategyRun], view: TargetView, resampled: dict, seed: int
) -> dict[str, StrategyScore]:
    """Each run's top-1 score, and where it returned distributions, its other metrics' summaries."""
    scores = {}
    for run in scored:
        score = score_guesses(run.name, run.guesses, view, seed, seconds=run.seconds, fit=run.fit)
        if run.metrics is not None:
            score.per_prefix = run.metrics
            score.summary = summary(run.metrics, resampled[run.name], (score.accuracy, score.ci95))
        scores[run.name] = score
    return scores


def versus(scores: dict[str, StrategyScore], resampled: dict, a: str, b: str) -> dict:
    """A against B, paired: top-1 (exact McNemar), and every other metric where both returned distributions."""
    out = paired_comparison(scores[a].hits, scores[b].hits)
    if scores[a].per_prefix is not None and scores[b].per_prefix is not None:
        out.update(compare(scores[a].per_prefix, resampled[a], scores[b].per_prefix, resampled[b]))
    return out


def comparison(scores: dict[str, StrategyScore], resampled: dict, a: str, b: str) -> dict:
    """--compare A B: `versus`, or which of them failed."""
    failed = [name for name in (a, b) if name not in scores]
    return (
        {"a": a, "b": b, "error": f"{' and '.join(failed)} failed"}
        if failed
        else {"a": a, "b": b, **versus(scores, resampled, a, b)}
    )


def leaderboard_rows(
    runs: list[StrategyRun], scores: dict[str, StrategyScore], resampled: dict, reference: StrategyScore | None
) -> list[StrategyScore | StrategyFailure]:
    """The listed strategies' rows, in order: each score compared with the reference, or its failure."""
    rows = []
    for run in runs:
        if run.error is not None:
            rows.append(StrategyFailure(run.name, run.error))
            continue
        score = scores[run.name]
        if reference is not None:
            score.versus = {"reference": reference.name, **versus(scores, resampled, run.name, reference.name)}
        rows.append(score)
    return rows


def input_model_summaries(
    view: TargetView, model_metrics: list[dict[str, np.ndarray]], resampled: dict, seed: int
) -> list[dict]:
    """Each input model's top-1 agreement with the target and the summaries of its other metrics."""
    agreement = view.input_top1 == view.target_top1[:, None]
    return [
        summary(metrics, resampled[j], (float(agreement[:, j].mean()), bootstrap_ci(agreement[:, j], seed=seed)))
        for j, metrics in enumerate(model_metrics)
    ]


def dataset_task(data: DatasetView, runs: list[StrategyRun], seed: int) -> TaskCurve | None:
    """Where the dataset has answers: the models' task curve, and each listed strategy's task accuracy."""
    if data.answers is None:
        return None
    task = task_curve(data.answers, data.model_names, data.n, seed)
    task.strategies = {
        run.name: strategy_task_accuracy(run.guesses, data.answers, seed) for run in runs if run.error is None
    }
    return task


def noise_ceiling(ceiling: NoiseCeiling | None, target_top1: np.ndarray, seed: int) -> dict | None:
    """Another seed of the target against it on the scored prefixes: its top-1 agreement, KL and alpha,
    each with its 95% bootstrap interval."""
    if ceiling is None:
        return None
    n = len(target_top1)
    agree = ceiling.top1[:n] == target_top1
    resampled = bootstrap_means(np.stack([ceiling.kl[:n], ceiling.alpha[:n]], axis=1), seed)
    return {
        "model": ceiling.model,
        "top1": float(agree.mean()),
        "ci95": list(bootstrap_ci(agree, seed=seed)),
        "kl": {"mean": float(ceiling.kl[:n].mean()), "ci95": list(percentile_ci(resampled[:, 0]))},
        "alpha": {"mean": float(ceiling.alpha[:n].mean()), "ci95": list(percentile_ci(resampled[:, 1]))},
    }


def kl_floor(
    ceiling: NoiseCeiling | None,
    reference: StrategyScore | None,
    scores: dict[str, StrategyScore],
    input_names: list[str],
    model_metrics: list[dict],
    resampled: dict,
    seed: int,
) -> dict | None:
    """The KL floor (`harness.scoring.metrics.twin_floor`, from another seed of the target) with its 95%
    interval, and for every strategy that returned distributions and every input model, the share of
    the reference's KL above the floor that it removes (`removed_share`), with its interval.

    The floor's resamples are `bootstrap_means`' with the same seed over the same prefixes, so they
    are the very resamples of `resampled`: every share's interval is paired. None without a twin, or
    where the reference returned ids."""
    if ceiling is None or reference is None or reference.per_prefix is None:
        return None
    n = reference.n
    floor = twin_floor(ceiling.kl[:n])
    floor_resampled = bootstrap_means(floor[:, None], seed)[:, 0]
    floor_mean, reference_kl = float(floor.mean()), float(reference.per_prefix["kl"].mean())
    reference_resampled = resampled[reference.name]["kl"]
    out = {
        "method": "half of KL(target || another seed of the target), per prefix: the quadratic approximation",
        "model": ceiling.model,
        "mean": floor_mean,
        "ci95": list(percentile_ci(floor_resampled)),
        "reference": reference.name,
        "reference_kl": reference_kl,
        "above_floor": reference_kl - floor_mean,
        "removed": {},
    }
    if reference_kl <= floor_mean:  # nothing left to remove: no share is defined
        return out
    predictors = [
        (name, score.per_prefix["kl"], resampled[name]["kl"])
        for name, score in scores.items()
        if score.per_prefix is not None
    ]
    predictors += [
        (str(model), metrics["kl"], resampled[j]["kl"])
        for j, (model, metrics) in enumerate(zip(input_names, model_metrics))
    ]
    for name, kl, kl_resampled in predictors:
        share = removed_share(float(kl.mean()), reference_kl, floor_mean)
        with np.errstate(divide="ignore", invalid="ignore"):
            shares = removed_share(kl_resampled, reference_resampled, floor_resampled)
        out["removed"][name] = {"share": float(share), "ci95": list(percentile_ci(shares[np.isfinite(shares)]))}
    return out


def drafting(
    data: DatasetView, scores: dict[str, StrategyScore], strategies: list[Strategy], model_summaries: list[dict]
) -> dict | None:
    """Each input model's and each scored strategy's priced speculative-decoding speedup
    (`harness.drafting.pricing`), greedy from top-1 agreement and sampling from alpha, and the best
    of each kind; None where the sidecar gives neither speeds nor sizes."""
    if data.costs is None:
        return None
    costs, source = data.costs
    names = [str(name) for name in data.input_names]
    models = {
        name: priced(summary["top1"]["mean"], summary["alpha"]["mean"], costs[name])
        for name, summary in zip(names, model_summaries)
    }
    by_name = {strategy.name: strategy for strategy in strategies}
    scored = {}
    for name, score in scores.items():
        read, cost = strategy_cost(by_name[name].fn, names, costs)
        if not read:  # it reads no model (dummy, train-mean): no drafter, and at cost 0 the formula runs away
            continue
        alpha = None if score.summary is None else score.summary["alpha"]["mean"]
        scored[name] = {"reads": read, **priced(score.accuracy, alpha, cost)}
    best = {}
    for mode in ("greedy", "sampling"):
        candidates = [(entry[mode]["speedup"], name) for name, entry in scored.items() if mode in entry]
        if candidates:
            best[mode] = max(candidates)[1]
    return {"cost_source": source, "models": models, "strategies": scored, "best_strategy": best}


def target_ranks(probs: np.ndarray, tokens: np.ndarray, rows_per_chunk: int = 64) -> np.ndarray:
    """(n, models) rank of token `tokens[i]` under each model after prefix i: 1 + the number of
    tokens with a strictly higher probability (so a model whose top-1 ties it also ranks it 1).

    `probs` is (n, models, V); chunks of rows bound the (rows, models, V) comparison's memory.
    """
    values = orderable(probs)
    ranks = np.empty(probs.shape[:2], dtype=np.int64)
    for start in range(0, len(tokens), rows_per_chunk):
        chunk = values[start : start + rows_per_chunk]
        rows = np.arange(len(chunk))
        own = chunk[rows, :, tokens[start : start + rows_per_chunk]]  # (rows, models)
        ranks[start : start + len(chunk)] = (chunk > own[:, :, None]).sum(axis=2) + 1
    return ranks


@dataclass
class PictureData:
    """What the per-dataset pictures need, per prefix (computed with `Settings.pictures`)."""

    model_names: list[str]  # all models, the target included, in the dataset's order
    target_index: int
    sizes: list[int] | None  # non-embedding parameters per model, None if any is unknown
    agreement: np.ndarray  # (n, inputs) input top-1 == target top-1
    emergent_probs: np.ndarray  # (emergent prefixes, models) float32: the target's top-1 under every model
    emergent_tokens: np.ndarray  # that token's id per emergent prefix
    emergent_index: np.ndarray  # each emergent prefix's row in the dataset
    emergent_sentences: list[str]
    ranks: np.ndarray  # (n, inputs) the target's top-1's rank under each input model
    vocab_size: int

    @property
    def input_names(self) -> list[str]:
        return [m for i, m in enumerate(self.model_names) if i != self.target_index]

    @property
    def input_sizes(self) -> list[int] | None:
        return None if self.sizes is None else [s for i, s in enumerate(self.sizes) if i != self.target_index]


def picture_data(data: DatasetView, view: TargetView, ranks: np.ndarray) -> PictureData:
    """What --report draws of one dataset (`ranks`: the target's top-1's rank under each input model)."""
    emergent = np.flatnonzero(view.emergent)
    tokens = view.target_top1[emergent]
    models = np.arange(len(data.model_names))
    # The emergent prefixes' target token under every model: a small gather, not a pass over the data.
    emergent_probs = data.probs[emergent[:, None], models[None, :], tokens[:, None]].astype(np.float32)
    return PictureData(
        model_names=data.model_names,
        target_index=data.target_column,
        sizes=None if None in data.model_sizes else data.model_sizes,
        agreement=view.input_top1 == view.target_top1[:, None],
        emergent_probs=emergent_probs,
        emergent_tokens=tokens,
        emergent_index=emergent,
        emergent_sentences=[data.sentences[i] for i in emergent],
        ranks=ranks,
        vocab_size=data.vocab_size,
    )


def predict_dataset(path: Path, strategies: list[Strategy], settings: Settings) -> DatasetPredictions:
    """Every strategy's guesses on one dataset, its target never read (a blind test's public file
    has none: every model in it is an input). Learned strategies need `settings.train`."""
    data = open_dataset(path, settings, purpose="predict")
    any_learned = any(strategy.is_learned for strategy in strategies)
    train = open_training(data, settings) if any_learned and settings.train is not None else None
    runs, _ = run_strategies(data, strategies, settings, None, train)
    return DatasetPredictions(
        path, data.target, data.input_names, data.vocab_size, settings.train if train else None, runs, data.sentences
    )


@dataclass
class ShownPrefix:
    """One prefix as `--show` prints it: every model's distribution and every strategy's guess."""

    path: Path
    index: int
    n: int
    sentence: str
    target: str
    models: list[tuple[str, np.ndarray]]  # (name, float32 probabilities), the target's last if read
    answer: int | None  # the target's top-1 (None: predicting only)
    runs: list[StrategyRun]  # at this prefix: `run.guesses[index]`, `run.shown`, `run.metrics`
    difficulty: tuple[str, float] | None = (
        None  # (the reference, its KL from the target here): `DatasetResult.difficulty`
    )


def show_prefix(
    path: Path, index: int, strategies: list[Strategy], settings: Settings, predicting: bool = False
) -> ShownPrefix:
    """Prefix `index`: every model's distribution and each strategy's guess (and distribution, when it
    returned one), learned ones fitted as for the leaderboard (so every strategy runs on the whole
    dataset, as when scored, and so do the references, which give the prefix's difficulty)."""
    data = open_dataset(path, settings, purpose="predict" if predicting else "score")
    if not 0 <= index < data.n:
        raise InputError(f"{path}: --show {index}: prefixes are numbered 0 to {data.n - 1}")
    view = None if predicting else target_view(data.probs[: data.n], data.target_column, settings.chunk_size)
    any_learned = any(strategy.is_learned for strategy in strategies)
    train = open_training(data, settings) if any_learned and settings.train is not None else None
    listed = {strategy.name for strategy in strategies}
    references_only = [] if predicting else [r for r in settings.references if r.name not in listed]
    runs, _ = run_strategies(data, strategies + references_only, settings, view, train, keep=index)
    difficulty = None
    if view is not None:
        scored = {run.name: run for run in runs if run.error is None}
        best = scored.get(
            best_reference({name: int((run.guesses == view.target_top1).sum()) for name, run in scored.items()})
        )
        if best is not None and best.metrics is not None:
            difficulty = best.name, float(best.metrics["kl"][index])
    models = [(name, data.probs[index, j].astype(np.float32)) for name, j in zip(data.input_names, data.input_columns)]
    if view is not None:
        models.append((f"{data.target} (target)", data.probs[index, data.target_column].astype(np.float32)))
    return ShownPrefix(
        path,
        index,
        data.n,
        data.sentences[index],
        data.target,
        models,
        None if view is None else int(view.target_top1[index]),
        runs[: len(strategies)],
        difficulty,
    )


def default_datasets(data_dir: Path) -> list[tuple[Path, Path | None]]:
    """`data_dir`/*.pkl, each with the training file its learned strategies fit on: `X-test.pkl`
    pairs with `X-train.pkl` (built by `bash suite/build_splits.sh`); a training file is not scored itself."""
    found = [path for path in sorted(data_dir.glob("*.pkl")) if not path.stem.endswith("-train")]
    if not found:
        missing = " and ".join(str(data_dir / name) for name in ("wikipedia.pkl", "glue-rte.pkl"))
        raise InputError(
            f"no dataset: {missing} are missing. Build one with `python preprocess_train.py "
            "--dataset wikipedia --out data/wikipedia.pkl` (see README.md), or copy the original "
            "challenge's wikipedia.pkl / glue-rte.pkl into data/"
        )
    paired = lambda path: path.with_name(path.stem.removesuffix("-test") + "-train.pkl")
    return [(path, paired(path) if path.stem.endswith("-test") and paired(path).exists() else None) for path in found]
