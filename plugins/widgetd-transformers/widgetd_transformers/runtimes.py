"""``--runtime onnx``, ``openvino`` and ``int8`` for the encoder tasks: the pipeline (or widgetd's own task
code) is built as for torch, then its model's forward pass runs on the exported graph (``widgetd.graphs``)
and the torch weights are let go.

optimum's ORTModel / OVModel classes would be the usual way; they do not install beside transformers 5
(optimum-onnx pins transformers < 4.58, optimum-intel 2.2 < 5.6). The pipelines only call the model and
read its outputs, so a graph behind the model's own ``forward`` keeps every pre- and post-processing step
the pipeline's.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from widgetd import ModelResolutionError, ModelSnapshot
from widgetd.backends import PlannedModel, runtime_family
from widgetd.fusion import fastest_graph, fuses
from widgetd.graphs import (
    check_installed,
    engine_name,
    export_folder,
    export_onnx,
    exported_graph,
    exported_name,
    files_of,
    graph_files,
    load_graph,
    shipped_graph,
)

RUNTIMES = ("torch", "onnx", "openvino", "int8")
GRAPH_TASKS = (
    "text-classification",
    "token-classification",
    "zero-shot-classification",
    "fill-mask",
    "feature-extraction",
    "question-answering",
)
"""Tasks answered by one forward pass over token ids: what an exported encoder runs."""
OUTPUTS = ("start_logits", "end_logits", "logits", "last_hidden_state")
EXTRAS = {
    "onnx": "widgetd-transformers[onnx]",
    "openvino": "widgetd-transformers[openvino]",
    "int8": "widgetd-transformers[openvino]",
}


def check_runtime(model: PlannedModel) -> None:
    if model.runtime == "torch":
        return
    if model.task not in GRAPH_TASKS:
        raise ModelResolutionError(
            f"--runtime {model.runtime}: model {model.model_id!r} is served as {model.task}; the transformers backend "
            f"runs {', '.join(GRAPH_TASKS)} on exported graphs, every other task on torch"
        )
    check_installed(model, EXTRAS)


def runtime_files(repo_files: Sequence[str], runtime: str) -> list[str]:
    # The torch weights too: the pipeline and its model are built before the graph takes over the forward pass.
    return graph_files(repo_files, runtime, needs_torch=True)


def run_on_graph(model: Any, tokenizer: Any, snapshot: ModelSnapshot) -> None:
    """Route ``model``'s forward pass to the runtime's graph (the repo's, or exported once from ``model``)."""
    if snapshot.runtime == "torch" or snapshot.task not in GRAPH_TASKS:
        return
    family = runtime_family(snapshot.runtime)
    folder = export_folder(snapshot.model_id, snapshot.path)
    path = graph_path(snapshot) or exported_graph(folder, family, lambda target: export_model(model, tokenizer, target))
    if fuses(snapshot.runtime):
        graph, fused = fastest_graph(path, folder, model.config, snapshot.device)
    else:
        graph, fused = load_graph(path, family, snapshot.device), False
    _FUSED[_loaded(snapshot)] = fused
    accepted = set(inspect.signature(model.forward).parameters)
    device = model.device

    def forward(**inputs: Any) -> Any:
        import torch

        outputs = graph.run(graph.feeds(inputs))
        return graph_output()(**{name: torch.from_numpy(np.ascontiguousarray(outputs[name])).to(device) for name in OUTPUTS if name in outputs})

    forward.__signature__ = inspect.Signature([inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in accepted if name != "self"])
    model.forward = forward
    # The graph holds its own weights: torch's copy goes (to the meta device, which keeps shapes, not data).
    model.to("meta")


_FUSED: dict[tuple[str, str, str], bool] = {}
"""Whether the graph a load just put behind a model is the fused one, until ``describe`` says so."""


def _loaded(snapshot: ModelSnapshot) -> tuple[str, str, str]:
    return snapshot.model_id, str(snapshot.path), snapshot.device


def graph_path(snapshot: ModelSnapshot):
    """The repo's graph for the snapshot's runtime, if it ships one."""
    shipped = shipped_graph(files_of(snapshot.path), snapshot.runtime)
    return snapshot.path / shipped if shipped else None


def describe(snapshot: ModelSnapshot) -> str:
    """What runs the model, for /info: ``onnx (onnx/model.onnx, fused, onnxruntime CPUExecutionProvider)``."""
    if snapshot.runtime == "torch":
        return "torch"
    family = runtime_family(snapshot.runtime)
    shipped = graph_path(snapshot)
    graph = shipped or Path(exported_name(family))
    source = shipped.relative_to(snapshot.path).as_posix() if shipped else f"exported {graph.name}"
    if _FUSED.pop(_loaded(snapshot), False):
        source += ", fused"
    return f"{family} ({source}, {engine_name(graph, family, snapshot.device)})"


def export_model(model: Any, tokenizer: Any, target) -> None:
    """The model traced on two texts of different lengths, keeping the outputs the task reads."""
    import torch

    sample = tokenizer(["a b", "a b c d e f"], padding=True, return_tensors="pt")
    accepted = set(inspect.signature(model.forward).parameters)
    inputs = {name: sample[name] for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample and name in accepted}
    with torch.no_grad():
        answer = model(**inputs, return_dict=True)
    outputs = [name for name in OUTPUTS if answer.get(name) is not None]
    export_onnx(model.to("cpu").float(), inputs, outputs, target)


@functools.cache
def graph_output() -> type:
    """What the pipelines read from a model's answer: by name, by attribute, or the first by index. Made on
    first use: transformers is imported only when a model loads."""
    from transformers.utils import ModelOutput

    @dataclass
    class GraphOutput(ModelOutput):
        start_logits: Any = None
        end_logits: Any = None
        logits: Any = None
        last_hidden_state: Any = None

    return GraphOutput
