"""`widgetd serve` as a process: a tiny model from the local Hub, and the README's default model."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from widgetd.testing.process import ServeProcess

PAIR = {"inputs": {"source_sentence": "the cat", "sentences": ["the cat", "a dog"]}}


@pytest.fixture
def env(hub_env):
    return {**hub_env, "WIDGETD_LOAD_PLUGINS": "sentence-transformers"}


def cached_files(env, repo_id: str) -> set[str]:
    snapshots = Path(env["HF_HUB_CACHE"]) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return {p.relative_to(s).as_posix() for s in snapshots.iterdir() for p in s.rglob("*") if p.is_file()}


def test_a_tiny_model_from_the_hub_is_downloaded_without_other_runtimes_and_served(local_hub, tiny_model_dir, env):
    local_hub.publish("org/tiny-st", tiny_model_dir)
    with ServeProcess(["--model-id", "org/tiny-st"], env) as server:
        scores = httpx.post(server.url, json=PAIR).json()
        assert scores[0] == pytest.approx(1.0, abs=1e-5) and len(scores) == 2
        embedding = httpx.post(f"{server.url}/models/org/tiny-st/pipeline/feature-extraction", json={"inputs": "hi"})
        assert len(embedding.json()) == 32
        info = httpx.get(f"{server.url}/info").json()["models"][0]
        assert (info["library"], info["task"], info["device"]) == ("sentence-transformers", "sentence-similarity", "cpu")
    files = cached_files(env, "org/tiny-st")
    assert "model.safetensors" in files and "modules.json" in files and "1_Pooling/config.json" in files
    assert not any(name.startswith("onnx/") or name == "pytorch_model.bin" for name in files)

    local_hub.clear_log()
    with ServeProcess(["--model-id", "org/tiny-st"], {**env, "HF_HUB_OFFLINE": "1"}) as server:
        assert httpx.post(server.url, json=PAIR).json() == pytest.approx(scores, abs=1e-6)
    assert local_hub.requests == []


def test_the_readme_serve_command_needs_no_network(tmp_path):
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-hf-home"), "HF_HUB_CACHE": str(tmp_path / "empty-hf-home" / "hub")}
    with ServeProcess([], offline) as server:
        body = {"inputs": {"source_sentence": "A man is eating food.", "sentences": ["A man is eating a piece of bread.", "The new movie is awesome."]}}
        close, far = httpx.post(server.url, json=body).json()
        assert close > far
        assert httpx.get(f"{server.url}/info").json()["models"][0]["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
