"""The built-in strategies: one module per strategy, each registering a function with `@register`.

A strategy has the original challenge's signature and returns one token id per sentence, or one
distribution per sentence:

    strategy(sentences, model_names, target_model_name, probs_per_sentences) -> list[int] | (N, V) array

`probs_per_sentences` is a read-only (sentences, input models, vocabulary) float16 array of the
input models only, a chunk of the dataset's prefixes at a time; the target's slice never reaches a
strategy. A distribution (non-negative floats, rows summing to 1) is scored on its top-1 (its
argmax, the first on ties) like ids, and also on the metrics of the whole distribution (KL from
the target, alpha, ...), which show "—" for ids. See `template.py` to write one. The registry itself lives in `harness.scoring.registry`; its
decorators are re-exported here so that strategy files written for earlier versions keep working.
`load_tokenizer` gives token strings with the `tokenizers` package alone (no transformers).
"""

from __future__ import annotations

import importlib
import pkgutil

from harness.data.tokenizer import load_tokenizer  # noqa: F401 (public: token strings for strategies)
from harness.scoring.registry import REGISTRY, ModelName, Strategy, learned, register, whole_array  # noqa: F401 (public)


def load_builtin() -> dict[str, Strategy]:
    """Import every module of this package, which registers its strategies."""
    for module in pkgutil.iter_modules(__path__):
        if module.name != "template":
            importlib.import_module(f"{__name__}.{module.name}")
    return REGISTRY
