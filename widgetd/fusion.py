"""``--runtime onnx`` tries a transformer's graph fused by ONNX Runtime's transformer optimizer: attention,
embedding and skip layer norms, GELU and its bias as single kernels, as Infinity and optimum do. The fused
graph is made once beside the export and kept only where it answers as the graph it came from (otherwise
why is written down, so the next load does not try again); then, at each load, whichever of the two runs
faster on this device serves. Fusing pays most on GPUs; on a small CPU it measured no faster.

``onnxruntime.transformers`` ships with onnxruntime: nothing more to install.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from widgetd.graphs import Graph, companions, load_graph, made_once

log = logging.getLogger("widgetd")

FUSED_MODEL = "model_fused.onnx"
NOT_FUSED = "model_fused.txt"
"""Beside where the fused graph would be: why the plain graph runs instead."""
FIDELITY = 0.9999
"""Least cosine, per text, between the fused graph's outputs and the plain graph's (both fp32: only the
order of additions changes)."""
OPTIMIZERS = {"gpt2": "gpt2", "bart": "bart", "t5": "t5", "mt5": "t5", "vit": "vit", "clip": "clip", "swin": "swin"}
"""ONNX Runtime's optimizer for each model type it knows apart; every other encoder takes BERT's."""
EXTERNAL_DATA_BYTES = 2 * 1024**3
"""ONNX's protobuf limit: a larger graph keeps its weights in a file beside it."""
SAMPLE_IDS = (7, 12, 19, 23, 31, 42, 57, 64, 71, 88, 93, 101)
TIMING_SHAPE = (8, 64)
"""The batch (texts × tokens) both graphs are timed on: a busy server's batch of sentences."""
FASTER = 0.95
"""The fused graph serves only when it takes at most this share of the plain graph's time: closer is noise."""
TIMING_ROUNDS = 5


def fastest_graph(plain: Path, folder: Path, config: Any, device: str) -> tuple[Graph, bool]:
    """The plain graph or its fused copy (``fused_graph``), loaded on ``device``: whichever runs a batch
    faster here; and whether it is the fused one."""
    fused = fused_graph(plain, folder, config)
    plain_graph = load_graph(plain, "onnx", device)
    if fused == plain:
        return plain_graph, False
    feeds = _timing_feeds(plain_graph.input_names, config)
    try:
        fused_graph_ = load_graph(fused, "onnx", device)
        plain_seconds, fused_seconds = _best_times([plain_graph, fused_graph_], feeds)
    except Exception as error:  # a provider without the fused kernels, a model shorter than the batch
        log.warning("%s on %s: the plain graph serves, the fused one failed: %s: %s", plain, device, type(error).__name__, error)
        return plain_graph, False
    keep_fused = fused_seconds <= FASTER * plain_seconds
    log.info(
        "%s on %s: the fused graph takes %.1f ms a batch of %d × %d tokens, the plain one %.1f ms: the %s one serves",
        plain, device, fused_seconds * 1000, *feeds["input_ids"].shape, plain_seconds * 1000, "fused" if keep_fused else "plain",
    )
    return (fused_graph_, True) if keep_fused else (plain_graph, False)


def _timing_feeds(names: tuple[str, ...], config: Any) -> dict[str, np.ndarray]:
    rows, tokens = TIMING_SHAPE
    tokens = min(tokens, getattr(config, "max_position_embeddings", tokens) or tokens)
    ids = np.arange(rows * tokens, dtype=np.int64).reshape(rows, tokens) * 7 + 5
    return _feeds(names, ids, np.ones_like(ids), getattr(config, "vocab_size", 0) or 0)


def _feeds(names: Sequence[str], ids: np.ndarray, mask: np.ndarray, vocab_size: int) -> dict[str, np.ndarray]:
    """A transformer's inputs, by the graph's names: ``ids`` folded into its vocabulary."""
    feeds = {"input_ids": ids % max(vocab_size or 1000, 2), "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {name: feeds[name] for name in names if name in feeds}


def _best_times(graphs: list[Graph], feeds: Mapping[str, np.ndarray]) -> list[float]:
    """Each graph's best time over a few rounds, taken in turn so a passing load slows both alike."""
    best = [float("inf")] * len(graphs)
    for graph in graphs:
        graph.run(feeds)  # the first run allocates
    for _ in range(TIMING_ROUNDS):
        for index, graph in enumerate(graphs):
            started = time.perf_counter()
            graph.run(feeds)
            best[index] = min(best[index], time.perf_counter() - started)
    return best


def fused_graph(graph: Path, folder: Path, config: Any) -> Path:
    """``graph`` fused for ``config``'s model (``num_attention_heads``, ``hidden_size``), made once into
    ``folder``; ``graph`` itself where nothing fuses or the fused answers drift."""
    fused, skipped = folder / FUSED_MODEL, folder / NOT_FUSED
    if fused.exists():
        return fused
    if skipped.exists():
        return graph
    folder.mkdir(parents=True, exist_ok=True)
    try:
        made_once(fused, lambda target: _fuse(graph, target, config), "fusing its ONNX graph (onnxruntime's transformer optimizer)")
    except NotFused as reason:
        log.warning("%s runs unfused: %s", graph, reason)
        skipped.write_text(f"{graph} runs unfused: {reason}\n")
        return graph
    return fused


def fuses(runtime: str) -> bool:
    """``onnx`` (and ``auto`` trying it) fuse; a repo file named by ``--runtime`` runs as it is."""
    return runtime in ("onnx", "auto")


class NotFused(Exception):
    """The optimizer fused nothing, failed, or its graph answers otherwise than the plain one."""


def _fuse(graph: Path, target: Path, config: Any) -> None:
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.optimizer import optimize_model

    _quiet(Path(optimizer.__file__).parent)

    kind = OPTIMIZERS.get(getattr(config, "model_type", ""), "bert")
    heads, hidden = getattr(config, "num_attention_heads", 0) or 0, getattr(config, "hidden_size", 0) or 0
    try:
        # Level 0: only the transformer fusions; ONNX Runtime's own graph optimizations run at session start.
        optimized = optimize_model(str(graph), model_type=kind, num_heads=heads, hidden_size=hidden, opt_level=0)
    except Exception as error:  # an architecture the optimizer cannot walk keeps its plain graph
        raise NotFused(f"the optimizer failed: {type(error).__name__}: {error}") from error
    fusions = {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}
    if not fusions:
        raise NotFused(f"ONNX Runtime's {kind} optimizer found nothing to fuse")
    optimized.save_model_to_file(str(target), use_external_data_format=_graph_bytes(graph) >= EXTERNAL_DATA_BYTES)
    agreement = _agreement(graph, target, getattr(config, "vocab_size", 0) or 0)
    if agreement < FIDELITY:
        raise NotFused(f"the fused graph's outputs reach only cosine {agreement:.5f} to the plain graph's")
    log.info("%s fused: %s", graph, ", ".join(f"{count} {name}" for name, count in sorted(fusions.items())))


def _quiet(package: Path) -> None:
    """The optimizer's modules log each fusion at INFO under their bare names (``fusion_base``): widgetd says
    what fused in one line instead."""
    for module in package.rglob("*.py"):
        logging.getLogger(module.stem).setLevel(logging.WARNING)


def _graph_bytes(graph: Path) -> int:
    beside = companions(graph.name, [path.name for path in graph.parent.iterdir()])
    return sum((graph.parent / name).stat().st_size for name in [graph.name, *beside])


def _agreement(plain: Path, fused: Path, vocab_size: int) -> float:
    """The least cosine between the two graphs' outputs, per text and output, on two texts of different
    lengths (the shorter padded, so the attention mask is exercised); padded positions are left out."""
    plain_graph, fused_graph_ = load_graph(plain, "onnx", "cpu"), load_graph(fused, "onnx", "cpu")
    feeds = _sample_feeds(plain_graph.input_names, vocab_size)
    plain_outputs, fused_outputs = plain_graph.run(feeds), fused_graph_.run(feeds)
    if set(plain_outputs) != set(fused_outputs):
        raise NotFused(f"the fused graph answers {sorted(fused_outputs)}, the plain one {sorted(plain_outputs)}")
    mask = feeds["attention_mask"]
    return min(_least_cosine(plain_outputs[name], fused_outputs[name], mask) for name in plain_outputs)


def _sample_feeds(names: Sequence[str], vocab_size: int) -> dict[str, np.ndarray]:
    unknown = set(names) - {"input_ids", "attention_mask", "token_type_ids"}
    if unknown or "input_ids" not in names or "attention_mask" not in names:
        raise NotFused(f"no sample to check it with: the graph takes {list(names)}")
    ids = np.array([SAMPLE_IDS, SAMPLE_IDS[:8] + (0,) * 4], dtype=np.int64)
    mask = np.array([[1] * 12, [1] * 8 + [0] * 4], dtype=np.int64)
    return _feeds(names, ids, mask, vocab_size)


def _least_cosine(plain: np.ndarray, fused: np.ndarray, mask: np.ndarray) -> float:
    if plain.shape != fused.shape:
        return -1.0
    plain, fused = plain.astype(np.float64), fused.astype(np.float64)
    if plain.ndim >= 2 and plain.shape[:2] == mask.shape:  # per token: padded positions hold no answer
        keep = mask.reshape(mask.shape + (1,) * (plain.ndim - 2)).astype(bool)
        plain, fused = np.where(keep, plain, 0.0), np.where(keep, fused, 0.0)
    plain, fused = plain.reshape(len(plain), -1), fused.reshape(len(fused), -1)
    norms = np.linalg.norm(plain, axis=1) * np.linalg.norm(fused, axis=1)
    same = np.all(np.isclose(plain, fused, rtol=1e-5, atol=1e-6), axis=1)
    cosines = np.where(norms > 0, np.sum(plain * fused, axis=1) / np.maximum(norms, 1e-30), 0.0)
    return float(np.min(np.where(same, 1.0, cosines)))
