"""--runtime onnx, openvino and int8 for the encoder tasks: the same answers as torch, through the
pipelines' own pre- and post-processing, and refusals for what cannot run on a graph."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import numpy as np
import pytest
from transformers import AutoConfig, AutoModel, AutoTokenizer

import widgetd_transformers
from widgetd import ModelResolutionError, ModelSnapshot
from widgetd.fusion import fused_graph
from widgetd.graphs import export_onnx
from widgetd.models import ModelRequest, plan_models
from widgetd.plugins import add_plugin, collect, create_plugin_manager
from widgetd.tasks import BUILTIN_TASKS
from widgetd_transformers.backend import load
from widgetd_transformers.testing import build_model

onnx = pytest.importorskip("onnx")

TASKS = {task.name: task for task in BUILTIN_TASKS}
EXAMPLES = {
    "text-classification": [{"inputs": "a good movie"}, {"inputs": "the worst film ever made, really bad"}, {"inputs": "ok"}],
    "token-classification": [{"inputs": "Ada Lovelace lived in London"}, {"inputs": "no names here at all"}],
    "zero-shot-classification": [{"inputs": "the cat sat", "parameters": {"candidate_labels": ["animals", "cars", "food"]}}],
    "fill-mask": [{"inputs": "the cat [MASK] on the mat"}],
    "question-answering": [{"inputs": {"question": "where did ada live", "context": "Ada Lovelace lived in London for years."}}],
    "feature-extraction": [{"inputs": ["a good movie", "ok"]}],
}
SCORE_TOLERANCE = {"onnx": 1e-4, "openvino": 3e-2, "int8": 3e-2}
"""OpenVINO computes in bfloat16 on CPUs that have it (its default, and most of its speed here)."""
COSINE = {"onnx": 0.999, "openvino": 0.999, "int8": 0.99}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runtime-models")
    return {task: build_model(task, root) for task in EXAMPLES}


def answers(path: Path, task: str, runtime: str) -> tuple[list, str]:
    pipeline = load(ModelSnapshot(model_id=f"tiny/{task}", path=path, task=task, device="cpu", runtime=runtime))
    requests = [msgspec.convert(example, TASKS[task].input) for example in EXAMPLES[task]]
    return msgspec.to_builtins(pipeline(task, requests)), pipeline.runtime


def flatten(answer) -> tuple[list, list[float]]:
    """The labels (or words, tokens, spans) an answer names, in order, and its numbers."""
    labels, numbers = [], []

    def walk(value) -> None:
        if isinstance(value, dict):
            for key, item in sorted(value.items()):
                (labels.append(item) if isinstance(item, str) else walk(item))
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, (int, float)):
            numbers.append(float(value))

    walk(answer)
    return labels, numbers


@pytest.mark.parametrize("runtime", ["onnx", "openvino", "int8"])
@pytest.mark.parametrize("task", sorted(EXAMPLES))
def test_encoder_tasks_answer_as_on_torch(task, runtime, models):
    expected, _ = answers(models[task], task, "torch")
    got, described = answers(models[task], task, runtime)
    assert described.startswith(f"{runtime} (exported ")
    if task == "feature-extraction":  # vectors: held to the cosine sentence embeddings are held to
        for got_vectors, expected_vectors in zip(sum(got, []), sum(expected, [])):
            got_flat, expected_flat = np.ravel(got_vectors), np.ravel(expected_vectors)
            cosine = got_flat @ expected_flat / np.linalg.norm(got_flat) / np.linalg.norm(expected_flat)
            assert cosine >= COSINE[runtime], cosine
        return
    expected_labels, expected_numbers = flatten(expected)
    got_labels, got_numbers = flatten(got)
    assert got_labels == expected_labels, (task, runtime)
    np.testing.assert_allclose(got_numbers, expected_numbers, atol=SCORE_TOLERANCE[runtime], rtol=0)


def plan(model: Path, task: str, runtime: str):
    manager = create_plugin_manager(load_entry_points=False)
    add_plugin(manager, widgetd_transformers, "transformers")
    return plan_models([ModelRequest(str(model), task=task, runtime=runtime)], collect(manager))


def test_tasks_that_do_not_run_on_graphs_are_refused_at_startup(tmp_path):
    speech = build_model("automatic-speech-recognition", tmp_path)
    with pytest.raises(ModelResolutionError, match="served as automatic-speech-recognition.*every other task on torch"):
        plan(speech, "automatic-speech-recognition", "onnx")
    with pytest.raises(ModelResolutionError, match="backend 'transformers' runs torch, onnx, openvino, int8"):
        plan(speech, "automatic-speech-recognition", "auto")


def test_the_export_traces_eager_attention_and_gives_the_model_its_own_back(models, tmp_path):
    """ONNX Runtime fuses the eager attention's pattern, not torch's SDPA operator."""
    path = models["feature-extraction"]
    model = AutoModel.from_pretrained(path, attn_implementation="sdpa").eval()
    sample = AutoTokenizer.from_pretrained(path)(["a b", "a b c d e f"], padding=True, return_tensors="pt")
    export_onnx(model, {name: sample[name] for name in ("input_ids", "attention_mask")}, ["last_hidden_state"], tmp_path / "model.onnx")
    assert model.config._attn_implementation == "sdpa"
    fused = fused_graph(tmp_path / "model.onnx", tmp_path / "exports", AutoConfig.from_pretrained(path))
    operators = Counter(node.op_type for node in onnx.load(str(fused)).graph.node)
    assert operators["Attention"] == model.config.num_hidden_layers, operators
