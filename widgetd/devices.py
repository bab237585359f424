"""Choosing where a model runs: the CUDA device with the most free memory, else the CPU."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from widgetd.errors import ModelResolutionError

_DEVICE_PATTERN = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Accelerator:
    name: str
    free_memory: int
    total_memory: int


def cuda_inventory() -> list[Accelerator]:
    """The visible CUDA devices (CUDA_VISIBLE_DEVICES is honoured by torch) with their free memory."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    inventory = []
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        inventory.append(Accelerator(f"cuda:{index}", free, total))
    return inventory


def choose_device(requested: str | None, inventory: Sequence[Accelerator]) -> str:
    """``requested`` if valid and present; otherwise the accelerator with the most free memory."""
    if requested and requested != "auto":
        return _checked(requested, inventory)
    if not inventory:
        return "cpu"
    return max(inventory, key=lambda accelerator: accelerator.free_memory).name


SPLIT_HEADROOM = 1.2
"""Memory a model needs on its GPU beyond its weights: activations and the key/value cache."""
SPLIT_SHARE = 0.9
"""Of each GPU's free memory, what a split model may take."""


def split_plan(weights_bytes: int, device: str, inventory: Sequence[Accelerator]) -> dict[str, int] | None:
    """Where a model too large for ``device`` goes: the memory each visible GPU may hold of it (for
    ``device_map``), when its weights (with headroom) do not fit ``device`` but fit them all; None when
    it fits, or when there is nothing to split over."""
    gpus = [accelerator for accelerator in inventory if accelerator.name.startswith("cuda")]
    chosen = next((accelerator for accelerator in gpus if accelerator.name == device), None)
    needed = weights_bytes * SPLIT_HEADROOM
    if chosen is None or len(gpus) < 2 or chosen.free_memory >= needed:
        return None
    if sum(accelerator.free_memory for accelerator in gpus) * SPLIT_SHARE < needed:
        return None  # it fits nowhere: loading says so
    return {accelerator.name: int(accelerator.free_memory * SPLIT_SHARE) for accelerator in gpus}


def check_device_name(requested: str | None) -> None:
    """Refuse a malformed --device at startup, before anything loads."""
    if requested and requested != "auto" and not _DEVICE_PATTERN.match(requested):
        raise ModelResolutionError(f"--device {requested!r}: expected auto, cpu, mps, cuda or cuda:N")


def _checked(requested: str, inventory: Sequence[Accelerator]) -> str:
    check_device_name(requested)
    if requested == "cuda":
        requested = "cuda:0"
    if requested.startswith("cuda") and requested not in {a.name for a in inventory}:
        visible = [a.name for a in inventory] or "none"
        raise ModelResolutionError(f"--device {requested!r} is not visible (CUDA devices: {visible})")
    return requested


def memory_in_use(device: str) -> int | None:
    """Bytes this process holds on ``device`` now: resident memory for the CPU (Linux), allocated memory
    for a CUDA device; None where it cannot be told."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.memory_allocated(torch.device(device)))
    if device != "cpu":
        return None
    try:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    import os

    return resident_pages * os.sysconf("SC_PAGE_SIZE")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``12GiB``, ``500MB``, ``1.5G`` or bytes; ValueError otherwise."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (e.g. 12GiB, 500MB)")
    number, unit, binary = match.groups()
    base = 1024 if binary or not unit else 1000
    return int(float(number) * base ** "_kmgt".index(unit.lower() or "_"))
