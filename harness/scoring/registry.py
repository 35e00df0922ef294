"""The strategy registry: what a strategy is, how it registers, and loading one from a user's file.

A strategy has the original challenge's signature and returns one token id per sentence:

    strategy(sentences, model_names, target_model_name, probs_per_sentences) -> list[int]

Strategies register with `@register("name")` (the modules of `strategies/`, the block at the top
of `challenge.py`) or are named as `path/to/file.py:function`. Two marks change how the engine
(`harness.scoring.evaluate`) calls one, each set on the function itself, so they count above or below
`@register`:
- `@learned`: the function is a fit step, `fit(train: harness.scoring.learned.TrainingSplit) -> strategy`;
- `@whole_array`: the strategy is called once with every prefix instead of chunk by chunk (its
  memory then grows with the dataset: N x input models x vocabulary x 2 bytes).
A strategy may also name packages beyond numpy that it needs (`requires=("torch",)`): where one is
not installed, the default run leaves it out (challenge.py notes it), and naming it is a one-line error.
numpy only; this module imports no strategy (`strategies.load_builtin` does).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from harness import InputError
from harness.scoring.top1 import short_path

StrategyFn = Callable[[Sequence[str], Sequence[str], str, np.ndarray], Sequence[int]]


@dataclass(frozen=True)
class Strategy:
    name: str
    fn: StrategyFn  # for a learned strategy, its fit function: fit(TrainingSplit) -> StrategyFn
    description: str

    @property
    def is_learned(self) -> bool:
        """Read from the function when scored, so `@learned` counts above or below `@register`."""
        return getattr(self.fn, "learned", False) is True

    @property
    def needs_whole_array(self) -> bool:
        return getattr(self.fn, "whole_array", False) is True

    @property
    def missing(self) -> tuple[str, ...]:
        """The packages it `requires` that are not installed (found without importing them)."""
        return tuple(name for name in getattr(self.fn, "requires", ()) if importlib.util.find_spec(name) is None)


REGISTRY: dict[str, Strategy] = {}


def learned(fit: Callable) -> Callable:
    """Mark `fit(train) -> strategy` as a learned strategy's fit step (in your own file, or under `@register`)."""
    fit.learned = True
    return fit


def whole_array(fn: Callable) -> Callable:
    """Mark a strategy (or a learned strategy's fit step, whose predictions then get every prefix
    at once) as needing the whole (N, M-1, V) array in one call: memory grows with N."""
    fn.whole_array = True
    return fn


class ModelName(str):
    """An input model's name as strategies receive it: a plain `str`, as in the original API, that
    also carries the model's size from the dataset's sidecar (None where the sidecar does not say):

        [name.non_embedding_params for name in model_names]
    """

    non_embedding_params: int | None
    total_params: int | None

    def __new__(cls, name: str, non_embedding_params: int | None = None, total_params: int | None = None):
        self = super().__new__(cls, name)
        self.non_embedding_params, self.total_params = non_embedding_params, total_params
        return self


def where(fn: Callable) -> str:
    """`file:line` of a function's definition, the file relative to the working directory when under it."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return getattr(fn, "__module__", None) or repr(fn)
    return f"{short_path(code.co_filename)}:{code.co_firstlineno}"


def register(
    name: str,
    description: str | None = None,
    learned: bool = False,
    whole_array: bool = False,
    requires: Sequence[str] = (),
    reads: Sequence[int] | None = None,
) -> Callable[[StrategyFn], StrategyFn]:
    """Decorator adding a strategy to the registry; the description defaults to its docstring's first line.

    `learned=True` (or `@learned` below it) marks a fit function,
    `fit(train: harness.scoring.learned.TrainingSplit) -> strategy`: see `strategies/template.py`.
    `whole_array=True` (or `@whole_array`): called once with every prefix, not chunk by chunk.
    `requires=("torch",)`: packages it imports beyond numpy (inside the function, so that registering
    it imports nothing); where one is missing it is skipped (`resolve`).
    `reads=(-2, -1)`: the input models it reads (indices, negative from the largest), so that drafting
    with it costs theirs alone (`harness.drafting.pricing`); every input model where it does not say.

    A name registered by two different definitions is an error (`InputError`, like every problem
    finding a strategy) naming both: silently keeping one would score a strategy other than the
    one its author thinks.
    """

    def decorate(fn: StrategyFn) -> StrategyFn:
        if learned:
            fn.learned = True  # the function's own mark is the one record, as `@learned` sets it
        if whole_array:
            fn.whole_array = True
        if requires:
            fn.requires = tuple(requires)
        if reads is not None:
            fn.reads = tuple(reads)
        old = REGISTRY.get(name)
        if old is not None and where(old.fn) != where(fn):  # the same definition run again is no clash
            raise InputError(f"strategy {name!r} is registered twice: {where(old.fn)} and {where(fn)}; rename one")
        doc = (fn.__doc__ or "").strip().splitlines()
        REGISTRY[name] = Strategy(name, fn, description or (doc[0] if doc else ""))
        return fn

    return decorate


@functools.cache
def import_file(path: Path) -> ModuleType:
    """A user's strategy file as a module, run once however many of its functions are named (they
    share its module state), and in `sys.modules` while it runs, as an import would be (dataclasses
    need that)."""
    name = f"user_strategy_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise InputError(f"{path}: failed to import ({type(e).__name__}: {e})") from None
    return module


def load_from_file(spec: str) -> Strategy:
    """`path/to/file.py:function`: a user's strategy in their own file, no edit to the project.

    A bad spec, a missing file or function, or a file that fails to import is an `InputError`."""
    path_str, _, function_name = spec.rpartition(":")
    path = Path(path_str)
    if not path_str.endswith(".py") or not function_name:
        raise InputError(f"{spec}: expected path/to/file.py:function_name")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    fn = getattr(import_file(path.resolve()), function_name, None)
    if not callable(fn):
        raise InputError(f"{path}: has no function {function_name!r}")
    doc = (fn.__doc__ or "").strip().splitlines()
    return Strategy(spec, fn, doc[0] if doc else f"{function_name} from {path}")


def unavailable() -> list[str]:
    """What each registered strategy whose `requires` are not installed needs, one line each."""
    return [needs(strategy) for strategy in REGISTRY.values() if strategy.missing]


def needs(strategy: Strategy) -> str:
    return f"{strategy.name} needs {' and '.join(strategy.missing)} (pip install -r requirements-dev.txt)"


def resolve(requested: list[str] | None) -> list[Strategy]:
    """The strategies named (registered names or file.py:function specs), or every registered one,
    each once, in the order given. Register the built-in ones first (`strategies.load_builtin`).

    Of every registered one, those whose `requires` are not installed are left out (`unavailable`
    says which); one named is an `InputError`."""
    if not requested:
        return [strategy for strategy in REGISTRY.values() if not strategy.missing]
    chosen = []
    for name in requested:
        if name.endswith(".py") or ".py:" in name:
            chosen.append(load_from_file(name))
        elif name in REGISTRY:
            if REGISTRY[name].missing:
                raise InputError(needs(REGISTRY[name]))
            chosen.append(REGISTRY[name])
        else:
            raise InputError(
                f"unknown strategy {name!r} (registered: {', '.join(REGISTRY)}; or give path/to/file.py:function)"
            )
    return list({strategy.name: strategy for strategy in chosen}.values())
