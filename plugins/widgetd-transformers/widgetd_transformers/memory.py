"""Admission by memory: sequences start while the key/value cache they may grow to fits the engine's budget,
rather than up to a fixed count. Rows share a cache padded to the longest, so a batch of n rows may hold
n times its longest sequence (prompt and every token it may add): the engine admits against that, and
never has to evict a running sequence."""

from __future__ import annotations

import os
from typing import Any, Iterable

from widgetd_transformers.rows_cache import cache_keyword

CPU_SHARE = 0.25
"""Of the machine's memory, what the running sequences' caches may take on a CPU by default."""
GPU_SHARE = 0.9
"""Of a GPU's memory left free once the model is loaded, what they may take by default (vLLM's 0.9)."""


def kv_bytes_per_token(model: Any) -> int | None:
    """The key/value bytes one token adds to a sequence's cache, measured by reading one token (None: the
    model's cache is not made of key/value tensors)."""
    import torch
    from transformers import DynamicCache

    try:
        cache = DynamicCache(config=model.config)
        start = getattr(model.config, "bos_token_id", None) or 0
        with torch.inference_mode():
            model(input_ids=torch.tensor([[start]], device=model.device), use_cache=True, **{cache_keyword(model): cache})
        tensors = [tensor for layer in cache.layers for tensor in (layer.keys, layer.values)]
    except Exception:  # noqa: BLE001 - a cache of another kind: no measure, no admission by memory
        return None
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors) or None


def default_budget(device: Any, prefix_cache_bytes: int) -> int:
    """The caches' budget when the operator sets none: a share of the GPU's free memory or the machine's,
    less what the prefix cache may keep."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        available = int(GPU_SHARE * free)
    else:
        available = int(CPU_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return max(0, available - prefix_cache_bytes)


class KvAdmission:
    def __init__(self, bytes_per_token: int | None, budget_bytes: int) -> None:
        self.bytes_per_token = bytes_per_token
        self.budget_bytes = budget_bytes

    def fits(self, started: Iterable[Any], candidate: Any) -> bool:
        """Whether ``candidate`` may start beside the ``started`` sequences (each with ``prompt_tokens`` and
        ``room``); a sequence alone always may (the model's context bounds it)."""
        started = list(started)
        if not started or self.bytes_per_token is None:
            return True
        longest = max(sequence.prompt_tokens + sequence.room for sequence in (*started, candidate))
        return (len(started) + 1) * longest * self.bytes_per_token <= self.budget_bytes

    def describe(self) -> dict[str, Any]:
        return {"admission": "memory" if self.bytes_per_token else "count", "kv_bytes_per_token": self.bytes_per_token, "kv_budget_bytes": self.budget_bytes}
