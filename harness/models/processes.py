"""This process's place under `accelerate launch` (one process per GPU of one machine), joined and
left so that no gloo thread outlives a finished run. A plain run is one process, with no group.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from harness import InputError

if TYPE_CHECKING:
    from accelerate import PartialState


def check_device(device: str | None) -> str:
    """The device a run uses: --device, or cuda where this machine has it, else cpu. --device cuda on
    a machine without CUDA is a one-line error, before any model loads."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: this machine has no CUDA GPU (try --device cpu)")
    if device == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps: this machine has no Apple GPU (try --device cpu)")
    return device


def join_process_group(device: str | None) -> PartialState:
    """This process's accelerate state: under `accelerate launch`, its place in the torch.distributed
    group; a plain run is one process, with no group.

    torch.distributed.nn is imported first, while no group exists. Its functions take the group as a
    default argument (`group=group.WORLD`, evaluated on import). Imported later (loading a
    transformers model pulls it in), they would hold the group: destroy_process_group would then
    leave gloo's threads running into interpreter shutdown (see leave_process_group)."""
    check_device(device)
    import torch.distributed

    if torch.distributed.is_available():
        import torch.distributed.nn  # noqa: F401  (the import is the point)
    from accelerate import PartialState

    return PartialState(cpu=device == "cpu")


def leave_process_group() -> None:
    """Under `accelerate launch`, tear the torch.distributed group down before exiting: a process that
    exits with its gloo threads still running can abort ("terminate called without an active
    exception"), failing a run whose work is done. Nothing to do in a plain run."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()
