"""The strategy registry: one module per strategy, each registering a function with `@register`.

A strategy has the original challenge's signature and returns one token id per sentence:

    strategy(sentences, model_names, target_model_name, probs_per_sentences) -> list[int]

`probs_per_sentences` is the (sentences, input models, vocabulary) float16 array of the input
models only; the target's slice never reaches a strategy. See `template.py` to write one.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

StrategyFn = Callable[[Sequence[str], Sequence[str], str, np.ndarray], Sequence[int]]


@dataclass(frozen=True)
class Strategy:
    name: str
    fn: StrategyFn  # for a learned strategy, its fit function: fit(TrainingSplit) -> StrategyFn
    description: str
    learned: bool = False


REGISTRY: dict[str, Strategy] = {}


def register(name: str, description: str | None = None, learned: bool = False) -> Callable[[StrategyFn], StrategyFn]:
    """Decorator adding a strategy to the registry; the description defaults to its docstring's first line.

    `learned=True` marks a fit function, `fit(train: harness.learned.TrainingSplit) -> strategy`.
    """
    def decorate(fn: StrategyFn) -> StrategyFn:
        doc = (fn.__doc__ or "").strip().splitlines()
        REGISTRY[name] = Strategy(name, fn, description or (doc[0] if doc else ""), learned)
        return fn
    return decorate


def load_builtin() -> dict[str, Strategy]:
    """Import every module of this package, which registers its strategies."""
    for module in pkgutil.iter_modules(__path__):
        if module.name != "template":
            importlib.import_module(f"{__name__}.{module.name}")
    return REGISTRY


def load_from_file(spec: str) -> Strategy:
    """`path/to/file.py:function`: a user's strategy in their own file, no edit to the project."""
    path_str, _, function_name = spec.rpartition(":")
    path = Path(path_str)
    if not path_str.endswith(".py") or not function_name:
        raise ValueError(f"{spec}: expected path/to/file.py:function_name")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    module_spec = importlib.util.spec_from_file_location(f"user_strategy_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise ValueError(f"{path}: failed to import ({type(e).__name__}: {e})") from None
    fn = getattr(module, function_name, None)
    if not callable(fn):
        raise ValueError(f"{path}: has no function {function_name!r}")
    doc = (fn.__doc__ or "").strip().splitlines()
    return Strategy(spec, fn, doc[0] if doc else f"{function_name} from {path}")


@functools.cache
def load_tokenizer(model_name: str):
    """The suite's tokenizer (a hub id or local directory), loaded on first use, for token strings.

    `load_tokenizer(target_model_name).decode([token_id])` gives a token's text. Needs transformers.
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_name)
