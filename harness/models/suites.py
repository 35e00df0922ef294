"""Which models a command names: Pythia, the bundled suite (`suite`, `ladder`, or its members' short
names, a checkpoint as `suite-1.5m@step2880`), hub ids and local directories, with per-model
revisions; and whether they can be reached, checked in seconds before torch loads. Shared by
preprocess_train.py and predict_emergence.py; no torch.
"""

from __future__ import annotations

import json
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


def suite_sizes() -> list[Path]:
    """The bundled suite's sizes (suite/models), smallest first."""
    # one vocabulary: bytes order by size
    return sorted(
        (d for d in SUITE_MODELS.glob("*/") if (d / "model.safetensors").is_file()),
        key=lambda d: (d / "model.safetensors").stat().st_size,
    )


def suite_seeds() -> list[Path]:
    """The other seeds of the bundled suite's sizes (suite/seeds), by name."""
    return sorted(d for d in (SUITE_MODELS.parent / "seeds").glob("*/") if (d / "model.safetensors").is_file())


def suite_checkpoints() -> dict[str, Path]:
    """The committed checkpoints (suite/checkpoints/<model>/step<N>), by the name a command gives them:
    `suite-1.5m@step2880`."""
    root = SUITE_MODELS.parent / "checkpoints"
    return {
        f"{d.parent.name}@{d.name}": d for d in sorted(root.glob("*/step*/")) if (d / "model.safetensors").is_file()
    }


def ladder_losses() -> dict[str, float]:
    """Each bundled model's and checkpoint's validation loss, as training recorded it in suite/suite.json."""
    path = SUITE_MODELS.parent / "suite.json"
    if not path.is_file():
        return {}
    suite = json.loads(path.read_text())
    losses = {}
    for record in suite["models"] + suite.get("seed_variants", []):
        losses[record["name"]] = record["val_loss"]
        for checkpoint in record.get("checkpoints", []):
            losses[f"{record['name']}@step{checkpoint['step']}"] = checkpoint["val_loss"]
    return losses


def ladder(ceiling_apart: bool = True) -> tuple[list[str], list[str]]:
    """`--models ladder`: every point of the bundled suite on the loss axis (its sizes, the committed
    checkpoints, the other seeds), by validation loss, highest first: the last is the largest model,
    the target. With `ceiling_apart`, the target's other seeds are left out: preprocess_train.py
    makes them the noise ceiling, not inputs."""
    sizes = suite_sizes()
    if not sizes:
        raise InputError(f"--models ladder: no models in {SUITE_MODELS} (see README.md, 'The bundled suite')")
    target = sizes[-1].name
    seeds = [d for d in suite_seeds() if not (ceiling_apart and d.name.startswith(f"{target}-seed"))]
    points = {d.name: d for d in sizes + seeds} | suite_checkpoints()
    losses = ladder_losses()
    unknown = sorted(set(points) - set(losses))
    if unknown:
        raise InputError(
            f"--models ladder: {SUITE_MODELS.parent / 'suite.json'} has no validation loss for {', '.join(unknown)}"
        )
    names = sorted(points, key=lambda name: (-losses[name], name))
    return [str(points[name]) for name in names], names


def bundled_suite(models: list[str], ceiling_apart: bool = True) -> tuple[list[str], list[str | None]]:
    """`--models suite` is every size of the bundled suite, smallest first, `--models ladder` every
    point on its loss axis (`ladder`), and a short name like `suite-1.5m` (not a directory here) is
    one of them, `suite-1.5m@step2880` one of its committed checkpoints: their directories, and the
    short names the dataset stores so that it reads the same on every machine. Other names pass
    through."""
    members = suite_sizes()
    if models == ["suite"] and not (Path("suite") / "config.json").exists():  # (not a model directory named suite)
        if not members:
            raise InputError(f"--models suite: no models in {SUITE_MODELS} (see README.md, 'The bundled suite')")
        return [str(d) for d in members], [d.name for d in members]
    if models == ["ladder"] and not (Path("ladder") / "config.json").exists():
        return ladder(ceiling_apart)
    by_name = {d.name: d for d in members + suite_seeds()} | suite_checkpoints()
    paths, labels = [], []
    for name in models:
        short = name in by_name and not Path(name).exists()
        base = name.partition("@")[0]
        if not short and "@" in name and base in by_name and not Path(name).exists():
            steps = sorted((n.partition("@")[2] for n in by_name if n.startswith(base + "@")), key=lambda s: int(s[4:]))
            raise InputError(
                f"{name}: no such checkpoint of {base} in {SUITE_MODELS.parent / 'checkpoints'} "
                f"(committed: {', '.join(steps) or 'none'})"
            )
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


def check_sources(
    models: list[str],
    revisions: list[str | None],
    dataset: str,
    dataset_path: str | None,
    option: str = "--models",
    dataset_option: str = "--dataset",
) -> None:
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
            raise InputError(
                f"{name}: no such directory, and not in the local Hugging Face cache ({reason}): "
                f"connect to the network, or pass {option} with local model directories"
            )
    if dataset in FROM_SOURCE and dataset_path is None:
        raise InputError(
            f"{dataset_option} {dataset} streams from the hub ({reason}): connect to the network, "
            "or pass --dataset-path with a local copy"
        )
