"""A model's tokenizer, with the `tokenizers` package alone (no torch, no transformers).

One loader serves both sides: `preprocess_train.py` encodes prefixes with it, and strategies
decode token ids with it (`from strategies import load_tokenizer`). Encoding with the
tokenizer.json that transformers itself wraps gives the same ids as `AutoTokenizer` (tested on the
real Pythia tokenizer and the bundled suite's, tests/test_preprocess.py).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from harness.data.dataset import short_name

SUITE_MODELS = Path(__file__).resolve().parents[2] / "suite" / "models"  # the bundled suite, committed


@functools.cache
def load_tokenizer(name: str, revision: str | None = None, local_only: bool = False) -> tokenizers.Tokenizer:  # noqa: F821
    """The tokenizer of model `name`, loaded once: `.encode_batch(texts)`, `.decode([k])`, `.id_to_token(k)`.

    `name` is, in this order:
    - a local directory holding tokenizer.json (absolute, or relative to the working directory);
    - a local directory with older tokenizer files only (vocab.json + merges.txt, ...): converted by
      transformers' AutoTokenizer, as transformers itself would load it (needs transformers);
    - a model of the bundled suite, by short name or by the path the datasets store
      (`build/suite/models/suite-1.5m`, not a folder here): its committed `suite/models/<name>/tokenizer.json`;
    - a hub id (`EleutherAI/pythia-12b`, at `revision`): the network or the local Hugging Face cache;
      with `local_only`, the cache alone (scoring never waits on download retries).
    Raises a one-line OSError when none of them has one.
    """
    from tokenizers import Tokenizer  # on first use: challenge.py itself needs numpy alone

    local = Path(name) / "tokenizer.json"
    if local.is_file():
        return Tokenizer.from_file(str(local))
    if Path(name).is_dir():
        return _converted(name)
    short = short_name(name)
    bundled = SUITE_MODELS / short / "tokenizer.json"
    if short and bundled.is_file():
        return Tokenizer.from_file(str(bundled))
    if local_only:
        try:
            from huggingface_hub import try_to_load_from_cache  # installed with tokenizers

            cached = try_to_load_from_cache(name, "tokenizer.json", revision=revision)
        except Exception:  # not a valid hub id, or no huggingface_hub: not in the cache either way
            cached = None
        if not isinstance(cached, str):
            raise OSError(f"no tokenizer for {name!r} in a folder, the bundled suite or the Hugging Face cache")
        return Tokenizer.from_file(cached)
    try:
        return Tokenizer.from_pretrained(name, revision=revision or "main")
    except Exception as e:  # the hub client raises many kinds (offline, no such repo, no such file)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise OSError(
            f"no tokenizer for {name!r}: not a directory with tokenizer.json, not a model of the "
            f"bundled suite, and the hub could not provide one ({reason})"
        ) from None


def _converted(directory: str) -> tokenizers.Tokenizer:  # noqa: F821
    """The `tokenizers` object that transformers builds from a folder saved without tokenizer.json."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise OSError(
            f"{directory}: no tokenizer.json; reading its older tokenizer files needs transformers "
            "(pip install -r requirements-dev.txt)"
        ) from None
    try:
        return AutoTokenizer.from_pretrained(directory).backend_tokenizer
    except Exception as e:  # transformers raises many kinds on a folder without a usable tokenizer
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise OSError(f"{directory}: no tokenizer.json, and transformers cannot build one from it ({reason})") from None


def local_tokenizer(model_name: str) -> tuple[tokenizers.Tokenizer | None, str | None]:  # noqa: F821
    """`load_tokenizer(model_name)` without the network (a folder, a bundled suite model or the Hugging
    Face cache), so decoding never waits on retries: (tokenizer, None) or (None, why not)."""
    try:
        return load_tokenizer(model_name, local_only=True), None
    except ImportError:
        return None, "the tokenizers package is not installed"
    except OSError as e:
        return None, f"{e} (scoring never downloads one)"
    except Exception as e:  # a corrupt tokenizer.json: decoding is a convenience, ids still show
        return None, f"the tokenizer of {model_name!r} does not load ({type(e).__name__}: {str(e)[:80]})"


def decode_ids(tokenizer, ids: np.ndarray) -> np.ndarray:
    """Each id's text as an array shaped like `ids` (empty strings without a tokenizer); each
    distinct id is decoded once."""
    distinct, inverse = np.unique(np.asarray(ids), return_inverse=True)
    texts = (
        [""] * len(distinct)
        if tokenizer is None
        else tokenizer.decode_batch([[int(i)] for i in distinct], skip_special_tokens=False)
    )
    return np.asarray(texts, dtype=object)[inverse.reshape(np.shape(ids))]
