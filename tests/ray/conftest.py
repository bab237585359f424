"""A real Ray cluster for these tests: a head node started with ``ray start --head`` in a temporary folder,
stopped at the end, and on demand a second node in its own network namespace (a veth pair: its traffic
crosses a real network interface). widgetd is deployed on it with ``widgetd serve --ray``, as users do."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from tests.toy_plugin import make_toy_model
from widgetd.testing.hub import LocalHub
from widgetd.testing.ray_cluster import Cluster, local_cluster, network_namespace
from widgetd_sentence_transformers.testing import build_tiny_sentence_transformer
from widgetd_transformers.testing import save_byte_level_bpe, save_chat_llama

ROOT = Path(__file__).resolve().parents[2]

TOY_ENTRY_POINT = '''
import time
from pathlib import Path

from tests.toy_plugin import ToyPlugin


class SlowToy(ToyPlugin):
    """The toy plugin; a model folder with a ``load-seconds`` file takes that long to load."""

    def load(self, snapshot):
        delay = Path(snapshot.path) / "load-seconds"
        if delay.exists():
            time.sleep(float(delay.read_text()))
        return super().load(snapshot)


plugin = SlowToy()
'''


def plugin_site(folder: Path) -> Path:
    """The toy plugin as an installed distribution, for every Ray worker (they load plugins by entry point)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "widgetd_toy_for_ray.py").write_text(textwrap.dedent(TOY_ENTRY_POINT))
    dist_info = folder / "widgetd_toy_for_ray-1.0.dist-info"
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: widgetd-toy-for-ray\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[widgetd]\ntoy = widgetd_toy_for_ray:plugin\n")
    return folder


def slow_toy(folder: Path, load_seconds: float) -> Path:
    make_toy_model(folder, pipeline_tag="text-classification")
    (folder / "load-seconds").write_text(str(load_seconds))
    return folder


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ray-models")
    # A local folder's model id is its name.
    return {
        "embedder": build_tiny_sentence_transformer(folder / "build-1").rename(folder / "embedder"),
        "scaled": build_tiny_sentence_transformer(folder / "build-2").rename(folder / "scaled"),
        "toy": make_toy_model(folder / "toy", pipeline_tag="text-classification"),
        "slow": slow_toy(folder / "slow", load_seconds=4),
        "chat": save_chat_llama(folder / "chat", save_byte_level_bpe(folder / "bpe")),
    }


@pytest.fixture(scope="session")
def hub(models, tmp_path_factory) -> Iterator[LocalHub]:
    """The Hub models load from on demand: ``org/tiny``, and ``org/broken`` whose weights are not weights."""
    card = {"library_name": "sentence-transformers", "pipeline_tag": "sentence-similarity"}
    broken = tmp_path_factory.mktemp("broken") / "model"
    shutil.copytree(models["embedder"], broken, ignore=shutil.ignore_patterns("onnx", "pytorch_model.bin"))
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with LocalHub() as local:
        local.publish("org/tiny", models["embedder"], card=card)
        local.publish("org/broken", broken, card=card)
        yield local


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, hub) -> Iterator[Cluster]:
    site = plugin_site(tmp_path_factory.mktemp("site"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "WIDGETD_LOAD_PLUGINS": "sentence-transformers,transformers,toy",
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path_factory.mktemp("hf-home")),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    # Logical CPUs: every replica reserves one, and these tests run 8 replicas at once at most.
    with network_namespace() as namespaced, local_cluster(env, namespaced=namespaced, cpus=12) as cluster:
        yield cluster
