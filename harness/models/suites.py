"""Which models a command names: Pythia, the bundled suite (`suite`, or its members' short names),
hub ids and local directories, with per-model revisions; and whether they can be reached, checked
in seconds before torch loads. Shared by preprocess_train.py and predict_emergence.py; no torch.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from harness import InputError
from harness.data.prefixes import FROM_SOURCE
from harness.data.tokenizer import SUITE_MODELS

HUB_PROBE_SECONDS = 5  # how long to wait for the hub before deciding there is no network

PYTHIA = [f"EleutherAI/pythia-{size}" for size in ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "12b")]


@dataclass(frozen=True)
class ModelSpec:
    """One model a command names: where it loads from, its revision, and the name datasets store."""
    name: str  # a hub id or a local directory: where the model loads from
    revision: str | None = None  # e.g. Pythia's "step143000"
    label: str | None = None  # the name datasets store, if not `name` (the bundled suite's short names)

    @property
    def stored_name(self) -> str:
        return self.label or self.name



def bundled_suite(models: list[str]) -> tuple[list[str], list[str | None]]:
    """`--models suite` is every model of the bundled suite, smallest first, and a short name like
    `suite-1.5m` (not a directory here) is one of them: their directories, and the short names the
    dataset stores so that it reads the same on every machine. Other names pass through."""
    members = sorted((d for d in SUITE_MODELS.glob("*/") if (d / "model.safetensors").is_file()),
                     key=lambda d: (d / "model.safetensors").stat().st_size)  # one vocabulary: bytes order by size
    if models == ["suite"] and not (Path("suite") / "config.json").exists():  # (not a model directory named suite)
        if not members:
            raise InputError(f"--models suite: no models in {SUITE_MODELS} (see README.md, 'The bundled suite')")
        return [str(d) for d in members], [d.name for d in members]
    by_name = {d.name: d for d in members}
    paths, labels = [], []
    for name in models:
        short = name in by_name and not Path(name).exists()
        paths.append(str(by_name[name]) if short else name)
        labels.append(name if short else None)
    return paths, labels


def bundled_ceiling(models: list[str], labels: list[str | None]) -> tuple[str | None, str | None]:
    """With the bundled suite's largest model as the target, its other seed in suite/seeds/ (the
    noise ceiling), if the checkout has one: its directory and short name; else (None, None)."""
    target = labels[-1]
    if target is None:
        return None, None
    seeds = sorted(d for d in (SUITE_MODELS.parent / "seeds").glob(f"{target}-seed*/") if (d / "config.json").is_file())
    return (str(seeds[0]), seeds[0].name) if seeds else (None, None)


def model_revisions(models: list[str], revisions: list[str]) -> list[str | None]:
    default, per_model = None, {}
    for revision in revisions:
        name, sep, rev = revision.rpartition("=")
        if sep:
            if name not in models:
                raise InputError(f"--revision {revision}: {name} is not one of --models")
            per_model[name] = rev
        else:
            default = rev
    return [per_model.get(name, default) for name in models]


def model_specs(models: list[str], revisions: list[str], labels: list[str | None] | None = None) -> list:
    labels = labels or [None] * len(models)
    return [ModelSpec(name, rev, label) for name, rev, label in zip(models, model_revisions(models, revisions), labels)]


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable() -> bool:
    """Whether the hub answers within HUB_PROBE_SECONDS (any HTTP status counts; proxies are honoured).
    Without this, a machine with no network spends about a minute in download retries."""
    answered = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(hub_endpoint(), method="HEAD"), timeout=HUB_PROBE_SECONDS)
            answered.append(True)
        except urllib.error.HTTPError:
            answered.append(True)
        except (OSError, ValueError):
            pass

    # In a thread: a name lookup has no timeout of its own.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(HUB_PROBE_SECONDS + 1)
    return bool(answered)


def check_sources(models: list[str], revisions: list[str | None], dataset: str, dataset_path: str | None,
                  option: str = "--models", dataset_option: str = "--dataset") -> None:
    """Fail in seconds, before torch loads: local model directories must exist, and hub models and
    datasets need the network or, offline, the local Hugging Face cache."""
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    hub_models = []
    for name, revision in zip(models, revisions):
        path = Path(name)
        if path.is_dir():
            continue
        if path.exists():
            raise InputError(f"{name}: not a directory (--models takes model directories or hub ids)")
        try:
            validate_repo_id(name)
        except HFValidationError:
            raise InputError(f"{name}: no such directory") from None
        if name.startswith((".", "~")) or name.endswith(os.sep):
            raise InputError(f"{name}: no such directory")
        hub_models.append((name, revision))
    if not hub_models and (dataset not in FROM_SOURCE or dataset_path is not None):
        return
    if constants.is_offline_mode():
        reason = "offline mode is set"
    elif hub_reachable():
        return
    else:
        reason = f"cannot reach {hub_endpoint()}"
        # Cached models still load, without a minute of retries (datasets reads the variable on import).
        os.environ["HF_HUB_OFFLINE"] = "1"
        constants.HF_HUB_OFFLINE = True
    for name, revision in hub_models:
        if not isinstance(try_to_load_from_cache(name, "config.json", revision=revision), str):
            raise InputError(f"{name}: no such directory, and not in the local Hugging Face cache ({reason}): "
                             f"connect to the network, or pass {option} with local model directories")
    if dataset in FROM_SOURCE and dataset_path is None:
        raise InputError(f"{dataset_option} {dataset} streams from the hub ({reason}): connect to the network, "
                         "or pass --dataset-path with a local copy")
