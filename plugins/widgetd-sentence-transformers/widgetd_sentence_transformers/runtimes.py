"""Running a model's transformer on ONNX Runtime or OpenVINO instead of torch (``--runtime``).

sentence-transformers' documented way is ``backend="onnx"`` / ``"openvino"``, with the repo's exported file
chosen by ``model_kwargs={"file_name": ...}``. Its loaders build the graph through optimum, which does not
install beside transformers 5 (optimum-onnx pins transformers < 4.58), so this module gives
sentence-transformers the graph itself: sentence-transformers still reads the repo, tokenizes, pools and
normalizes with its own modules; only the transformer's forward pass runs in the exported graph
(``widgetd.graphs``). A repo without the graph is exported once, at its first load.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from widgetd.backends import PlannedModel, runtime_family
from widgetd.fusion import fastest_graph, fuses
from widgetd.graphs import (
    LIBRARY_OF,
    Graph,
    check_installed,
    export_folder,
    export_onnx,
    exported_graph,
    files_of,
    graph_files,
    load_graph,
    shipped_graph,
)

RUNTIMES = ("torch", "onnx", "openvino", "int8", "auto")
EXTRAS = {
    "onnx": "widgetd-sentence-transformers[onnx]",
    "openvino": "widgetd-sentence-transformers[openvino]",
    "int8": "widgetd-sentence-transformers[openvino]",
}


def check_runtime(model: PlannedModel) -> None:
    check_installed(model, EXTRAS)


def runtime_files(repo_files: Sequence[str], runtime: str) -> list[str]:
    return graph_files(repo_files, runtime)


class ExportedGraph:
    """The transformer's forward pass on a graph, in the shape sentence-transformers reads
    (``{"last_hidden_state": tensor}``)."""

    def __init__(self, graph: Graph, config: Any = None) -> None:
        self.graph = graph
        self.config = config
        self.output = next((name for name in ("last_hidden_state", "token_embeddings") if name in graph.output_names), graph.output_names[0])

    def forward(self, **features: Any) -> dict:
        import torch

        hidden = torch.from_numpy(np.ascontiguousarray(self.graph.run(self.graph.feeds(features))[self.output]))
        return {"last_hidden_state": hidden.to(features["input_ids"].device)}

    __call__ = forward


def export_transformer(torch_model: Any, target: Path) -> None:
    """The first module's transformer (the HF model), traced on two texts of different lengths."""
    transformer = torch_model[0]
    sample = transformer.tokenizer(["a b", "a b c d e f"], padding=True, return_tensors="pt")
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    export_onnx(transformer.model.to("cpu").float(), {name: sample[name] for name in names}, ["last_hidden_state"], target)


def transformer_config(snapshot: Any) -> Any:
    """The transformer's config (heads, width, vocabulary), for the graph's fusions: the first module's own
    folder's config.json (modules.json names it), or the repo's; None leaves the optimizer to guess."""
    from transformers import AutoConfig

    modules = snapshot.path / "modules.json"
    folders = [entry.get("path", "") for entry in json.loads(modules.read_text())] if modules.exists() else []
    for folder in [*folders[:1], ""]:
        if (snapshot.path / folder / "config.json").exists():
            try:
                return AutoConfig.from_pretrained(str(snapshot.path / folder), local_files_only=True, trust_remote_code=snapshot.trust_remote_code)
            except (ValueError, OSError):  # a model type this transformers does not know
                return None
    return None


# Loading: sentence-transformers reads the repo; the graph comes from here.

CALIBRATION = tuple(
    " ".join(words)
    for words in (
        "a man is eating a piece of bread in the kitchen".split(),
        "the new movie is awesome and everyone should go and see it this weekend".split(),
        "cats".split(),
        "a child plays the guitar by the river while the evening train passes over the old bridge".split(),
        "how many people live in berlin".split(),
        "the quick brown fox jumps over the lazy dog".split(),
        "quarterly revenue grew by twelve percent despite higher costs of shipping".split(),
        "she reads a book".split(),
    )
) * 4
AUTO_MARGIN = 0.9
"""auto picks another runtime only when it takes at most this share of torch's time: closer is noise."""
AUTO_FIDELITY = 0.999
"""...and only when its embeddings of the calibration texts are within this cosine of torch's."""

_PREPARED: dict[str, ExportedGraph] = {}


def load_sentence_transformer(snapshot: Any) -> tuple[Any, str]:
    """The model ``snapshot.runtime`` asks for, and what runs it, in words (for /info)."""
    if snapshot.runtime == "torch":
        return torch_model(snapshot), "torch"
    if snapshot.runtime == "auto":
        return fastest(snapshot)
    return graph_model(snapshot, runtime_family(snapshot.runtime))


def torch_model(snapshot: Any, device: str | None = None) -> Any:
    from sentence_transformers import SentenceTransformer

    device = device or snapshot.device
    model = SentenceTransformer(
        str(snapshot.path), device=device, local_files_only=True, trust_remote_code=snapshot.trust_remote_code
    )
    if device.startswith("cuda"):
        model.half()
    return model.eval()


def graph_model(snapshot: Any, family: str, torch_reference: Any = None) -> tuple[Any, str]:
    """``family`` (onnx, int8, openvino) over the repo's exported file, else over the export made once."""
    from sentence_transformers import SentenceTransformer

    shipped = shipped_graph(files_of(snapshot.path), snapshot.runtime if "/" in snapshot.runtime else family)
    folder = export_folder(snapshot.model_id, snapshot.path)
    if shipped is not None:
        graph_file, source = snapshot.path / shipped, shipped
    else:
        reference = torch_reference if torch_reference is not None and snapshot.device == "cpu" else None
        exporter = reference if reference is not None else torch_model(snapshot, device="cpu")
        graph_file = exported_graph(folder, family, lambda target: export_transformer(exporter, target))
        source = f"exported {graph_file.name}"
    if family == "onnx" and fuses(snapshot.runtime):
        loaded, fused = fastest_graph(graph_file, folder, transformer_config(snapshot), snapshot.device)
        source += ", fused" if fused else ""
    else:
        loaded = load_graph(graph_file, family, snapshot.device)
    graph = ExportedGraph(loaded)
    key = f"{graph_file}#{id(graph)}"
    _PREPARED[key] = graph
    _install_graph_loaders()
    try:
        model = SentenceTransformer(
            str(snapshot.path),
            device=snapshot.device,
            backend="openvino" if family == "openvino" else "onnx",
            model_kwargs={"file_name": key},
            local_files_only=True,
            trust_remote_code=snapshot.trust_remote_code,
        )
    finally:
        _PREPARED.pop(key, None)
    return model.eval(), f"{family} ({source}, {graph.graph.description})"


def _install_graph_loaders() -> None:
    """sentence-transformers' Transformer module calls these for backend="onnx"/"openvino"."""
    from sentence_transformers.base.modules import transformer

    for name in ("load_onnx_model", "load_openvino_model"):
        if not hasattr(transformer, name):
            raise RuntimeError(
                f"this sentence-transformers has no {name}: --runtime needs sentence-transformers 6 (or use --runtime torch)"
            )
        setattr(transformer, name, _prepared_graph)


def _prepared_graph(model_name_or_path: str, config: Any, task_name: str, **model_kwargs: Any) -> ExportedGraph:
    if task_name != "feature-extraction":
        raise RuntimeError(f"--runtime runs sentence embedding models, not a {task_name} transformer")
    graph = _PREPARED[model_kwargs["file_name"]]
    graph.config = config
    return graph


def fastest(snapshot: Any) -> tuple[Any, str]:
    """auto: torch, and each installed runtime whose answers match torch's, timed on the same texts; the
    fastest wins only by a clear margin. On a GPU, torch (fp16) stays."""
    import time

    log = logging.getLogger("widgetd")
    reference = torch_model(snapshot)
    if snapshot.device != "cpu":
        return reference, "torch (auto: on a GPU)"
    expected = reference.encode(list(CALIBRATION), normalize_embeddings=True, convert_to_numpy=True)
    timings = {"torch": (_time_encode(reference, time.perf_counter), reference, "torch")}
    for family in ("onnx", "openvino"):
        if importlib.util.find_spec(LIBRARY_OF[family]) is None:
            continue
        try:
            model, description = graph_model(snapshot, family, torch_reference=reference)
        except Exception as error:  # a model the exporter cannot trace stays on torch
            log.warning("auto runtime: %s is out for %s: %s", family, snapshot.model_id, error)
            continue
        got = model.encode(list(CALIBRATION), normalize_embeddings=True, convert_to_numpy=True)
        agreement = float(np.min(np.sum(got * expected, axis=1)))
        if agreement < AUTO_FIDELITY:
            log.warning("auto runtime: %s is out for %s: cosine %.4f to torch", family, snapshot.model_id, agreement)
            continue
        timings[family] = (_time_encode(model, time.perf_counter), model, description)
    best = min(timings, key=lambda family: timings[family][0])
    if timings[best][0] > AUTO_MARGIN * timings["torch"][0]:
        best = "torch"
    measured = ", ".join(f"{family} {seconds * 1000:.1f} ms" for family, (seconds, _, _) in timings.items())
    log.info("auto runtime for %s: %s (calibration batch: %s)", snapshot.model_id, best, measured)
    return timings[best][1], f"{timings[best][2]}; auto: {measured}"


def _time_encode(model: Any, clock: Callable[[], float], rounds: int = 3) -> float:
    texts = list(CALIBRATION)
    model.encode(texts, batch_size=len(texts), convert_to_numpy=True)
    best = float("inf")
    for _ in range(rounds):
        started = clock()
        model.encode(texts, batch_size=len(texts), convert_to_numpy=True)
        best = min(best, clock() - started)
    return best
