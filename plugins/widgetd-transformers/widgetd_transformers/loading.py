"""Loading models and processors from a snapshot, on the chosen device, never running remote code."""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any, Callable, Iterator, Sequence

from widgetd import InvalidInput, ModelSnapshot
from widgetd import cancellation
from widgetd.devices import split_plan
from widgetd_transformers.runtimes import run_on_graph


def dtype_for(device: str) -> Any:
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32


def hf_pipeline(task: str, snapshot: ModelSnapshot, **kwargs: Any) -> Any:
    """A transformers pipeline for ``task`` on the snapshot's files and device."""
    from transformers import pipeline

    pipe = pipeline(
        task,
        model=str(snapshot.path),
        device=snapshot.device,
        dtype=dtype_for(snapshot.device),
        trust_remote_code=snapshot.trust_remote_code,
        **kwargs,
    )
    if getattr(pipe, "tokenizer", None) is not None:
        fit_tokenizer(pipe.tokenizer, pipe.model)
        run_on_graph(pipe.model, pipe.tokenizer, snapshot)
    return pipe


def tokenizer_and_model(snapshot: ModelSnapshot, model_class: str) -> tuple[Any, Any]:
    """The snapshot's tokenizer and ``transformers.<model_class>``, on the snapshot's device, for inference;
    split across the visible GPUs when it does not fit one (``model.hf_device_map`` says where)."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(snapshot.path), trust_remote_code=snapshot.trust_remote_code)
    model = model_for(snapshot, model_class)
    fit_tokenizer(tokenizer, model)
    run_on_graph(model, tokenizer, snapshot)
    return tokenizer, model


def model_for(snapshot: ModelSnapshot, model_class: str) -> Any:
    """``transformers.<model_class>`` from the snapshot, on its device, for inference; split across the
    visible GPUs when it does not fit one."""
    import transformers

    placement = placement_options(snapshot)
    model = getattr(transformers, model_class).from_pretrained(
        str(snapshot.path), dtype=dtype_for(snapshot.device), trust_remote_code=snapshot.trust_remote_code, **placement
    )
    return (model if placement else model.to(snapshot.device)).eval()


WEIGHT_FILES = (".safetensors", ".bin")


def placement_options(snapshot: ModelSnapshot) -> dict[str, Any]:
    """``from_pretrained`` options that split the model across the visible GPUs when its weights do not
    fit the chosen one (accelerate's ``device_map``); none when it fits."""
    weights = sum(path.stat().st_size for path in snapshot.path.rglob("*") if path.suffix in WEIGHT_FILES and path.is_file())
    plan = split_plan(weights, snapshot.device, snapshot.accelerators)
    if plan is None:
        return {}
    if importlib.util.find_spec("accelerate") is None:  # device_map needs it
        raise RuntimeError(
            f"the model's weights ({weights / 2**30:.1f} GiB) do not fit {snapshot.device}; splitting it across "
            "the GPUs needs accelerate: pip install 'widgetd-transformers[multi-gpu]'"
        )
    return {"device_map": "auto", "max_memory": {int(name.split(":")[1]): memory for name, memory in plan.items()}}


POSITIONS_OFFSET_BY_TWO = ("roberta", "xlm-roberta", "camembert", "mpnet", "longformer")
"""Model types whose first two position embeddings are reserved (padding), not readable positions."""


def token_limit(tokenizer: Any, model: Any) -> int:
    """How many tokens the model reads: its tokenizer's and its position embeddings' limit."""
    positions = getattr(model.config, "max_position_embeddings", None) or 10**6
    if getattr(model.config, "model_type", "") in POSITIONS_OFFSET_BY_TWO:
        positions -= 2
    return min(tokenizer.model_max_length, positions)


def fit_tokenizer(tokenizer: Any, model: Any) -> Any:
    """Truncation stops at what the model reads, even where the tokenizer's config claims more."""
    tokenizer.model_max_length = token_limit(tokenizer, model)
    return tokenizer


def grouped(requests, key) -> dict[Any, list[int]]:
    """Indexes of the requests that share ``key(request)``: one batch per parameter set."""
    groups: dict[Any, list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(key(request), []).append(index)
    return groups


def by_candidates(requests) -> dict[tuple[tuple[str, ...], str], list[int]]:
    """Zero-shot requests by their (candidate labels, hypothesis template); InvalidInput for a label given twice."""
    for request in requests:
        labels = request.parameters.candidate_labels
        if len(set(labels)) != len(labels):
            raise InvalidInput("parameters.candidate_labels: each label once; a label given twice has no score of its own", field="parameters.candidate_labels")
    return grouped(requests, lambda r: (tuple(r.parameters.candidate_labels), r.parameters.hypothesis_template))


@contextlib.contextmanager
def seeded(seed: int | None, device: Any) -> Iterator[None]:
    """Random draws inside come from ``seed`` (none: the global generator), leaving the global state as it was."""
    if seed is None:
        yield
        return
    import torch

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


CHUNK = 32
"""Texts, images, clips or QA windows run at a time at most; texts and windows also by their length
(``widgetd.cancellation.in_chunks``): between two chunks, work nobody waits for stops."""


def in_chunks(
    run: Callable[[list], Sequence[Any]], items: Sequence[Any], size: int = CHUNK, weight: Callable[[Any], int] | None = None
) -> list[Any]:
    """``run`` over ``items`` a chunk at a time, the heaviest first where they have a ``weight`` (texts of near
    lengths pad less together); the results in the items' order. ``Abandoned`` once every request of the batch
    was given up."""
    if weight is not None:
        return cancellation.longest_first(run, items, weight=weight, most=size)
    return [result for chunk in cancellation.in_chunks(items, most=size) for result in run(chunk)]


def in_groups(run: Callable[[list], Sequence[Any]], items: Sequence[Any], key: Callable[[Any], Any]) -> list[Any]:
    """``run`` over ``items`` a chunk at a time, only items with the same ``key`` sharing a chunk (for models
    whose answers a padded batch would change); the results in the items' order."""
    results: list[Any] = [None] * len(items)
    for positions in grouped(items, key).values():
        for position, result in zip(positions, in_chunks(run, [items[position] for position in positions])):
            results[position] = result
    return results
