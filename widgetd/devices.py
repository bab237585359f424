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
