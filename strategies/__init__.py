"""The strategy registry: one module per strategy, each registering a function with `@register`.

A strategy has the original challenge's signature and returns one token id per sentence:

    strategy(sentences, model_names, target_model_name, probs_per_sentences) -> list[int]

`probs_per_sentences` is a read-only (sentences, input models, vocabulary) float16 array of the
input models only; the target's slice never reaches a strategy. See `template.py` to write one.
`load_tokenizer` gives token strings with the `tokenizers` package alone (no transformers).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Sequence

import numpy as np

from harness import InputError
from harness.scoring import short_path
from harness.tokenizer import load_tokenizer  # noqa: F401 (public: token strings for strategies)

StrategyFn = Callable[[Sequence[str], Sequence[str], str, np.ndarray], Sequence[int]]


@dataclass(frozen=True)
class Strategy:
    name: str
    fn: StrategyFn  # for a learned strategy, its fit function: fit(TrainingSplit) -> StrategyFn
    description: str

    @property
    def learned(self) -> bool:
        """Read from the function when scored, so `@learned` counts above or below `@register`."""
        return is_learned(self.fn)


REGISTRY: dict[str, Strategy] = {}


def learned(fit: Callable) -> Callable:
    """Mark `fit(train) -> strategy` as a learned strategy's fit step (in your own file, or under `@register`)."""
    fit.learned = True
    return fit


def is_learned(fn: Callable) -> bool:
    return getattr(fn, "learned", False) is True


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


def register(name: str, description: str | None = None, learned: bool = False) -> Callable[[StrategyFn], StrategyFn]:
    """Decorator adding a strategy to the registry; the description defaults to its docstring's first line.

    `learned=True` (or `@learned` below it) marks a fit function,
    `fit(train: harness.learned.TrainingSplit) -> strategy`: see `template.py`.

    A name registered by two different definitions is an error (`InputError`, like every problem
    finding a strategy) naming both: silently keeping one would score a strategy other than the
    one its author thinks.
    """
    def decorate(fn: StrategyFn) -> StrategyFn:
        if learned:
            fn.learned = True  # the function's own mark is the one record, as `@learned` sets it
        old = REGISTRY.get(name)
        if old is not None and where(old.fn) != where(fn):  # the same definition run again is no clash
            raise InputError(f"strategy {name!r} is registered twice: {where(old.fn)} and {where(fn)}; rename one")
        doc = (fn.__doc__ or "").strip().splitlines()
        REGISTRY[name] = Strategy(name, fn, description or (doc[0] if doc else ""))
        return fn
    return decorate


def load_builtin() -> dict[str, Strategy]:
    """Import every module of this package, which registers its strategies."""
    for module in pkgutil.iter_modules(__path__):
        if module.name != "template":
            importlib.import_module(f"{__name__}.{module.name}")
    return REGISTRY


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
