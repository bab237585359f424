"""Loading models and processors from a snapshot, on the chosen device, never running remote code."""

from __future__ import annotations

from typing import Any

import msgspec

from widgetd import ModelSnapshot


def dtype_for(device: str) -> Any:
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32


def hf_pipeline(task: str, snapshot: ModelSnapshot, **kwargs: Any) -> Any:
    """A transformers pipeline for ``task`` on the snapshot's files and device."""
    from transformers import pipeline

    return pipeline(
        task,
        model=str(snapshot.path),
        device=snapshot.device,
        dtype=dtype_for(snapshot.device),
        trust_remote_code=False,
        **kwargs,
    )


def token_limit(tokenizer: Any, model: Any) -> int:
    """How many tokens the model reads: its tokenizer's and its position embeddings' limit."""
    return min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None) or 10**6)


def generation_settings(parameters: Any) -> tuple:
    """Generation parameters as a hashable tuple of the fields that are set."""
    if parameters is None:
        return ()
    fields = sorted(msgspec.structs.asdict(parameters).items())
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in fields if v is not None)


def grouped(requests, key) -> dict[Any, list[int]]:
    """Indexes of the requests that share ``key(request)``: one batch per parameter set."""
    groups: dict[Any, list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(key(request), []).append(index)
    return groups
