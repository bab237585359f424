"""A repo's own modelling code runs only with --trust-remote-code, and the setting reaches transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import widgetd_transformers
from widgetd import ModelResolutionError
from widgetd.models import ModelRequest, plan_models
from widgetd.plugins import add_plugin, collect, create_plugin_manager

CUSTOM_CONFIG = {"model_type": "widgetd-made-up", "architectures": ["MadeUpModel"], "auto_map": {"AutoConfig": "configuration_made_up.MadeUpConfig", "AutoModel": "modeling_made_up.MadeUpModel"}}


def registry():
    manager = create_plugin_manager(load_entry_points=False)
    add_plugin(manager, widgetd_transformers, "transformers")
    return collect(manager)


def folder_with(tmp_path: Path, config: dict) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "README.md").write_text("---\nlibrary_name: transformers\npipeline_tag: feature-extraction\n---\n")
    return tmp_path


def test_an_architecture_from_the_repos_code_needs_trust_remote_code(tmp_path):
    folder = folder_with(tmp_path, CUSTOM_CONFIG)
    with pytest.raises(ModelResolutionError, match=r"modeling_made_up\.py.*--trust-remote-code"):
        plan_models([ModelRequest(str(folder))], registry())
    [model] = plan_models([ModelRequest(str(folder), trust_remote_code=True)], registry())
    assert model.trust_remote_code


def test_an_auto_map_beside_an_architecture_transformers_has_needs_no_trust(tmp_path):
    folder = folder_with(tmp_path, {**CUSTOM_CONFIG, "model_type": "bert"})
    [model] = plan_models([ModelRequest(str(folder))], registry())
    assert not model.trust_remote_code


CONFIGURATION = """
from transformers import BertConfig


class MadeUpConfig(BertConfig):
    model_type = "widgetd-made-up"
"""

MODELING = """
from transformers import BertModel

from .configuration_made_up import MadeUpConfig


class MadeUpModel(BertModel):
    config_class = MadeUpConfig
"""


def save_made_up_model(folder: Path) -> Path:
    """A tiny BERT whose config and class come from the repo's own files, as custom architectures on the Hub do."""
    from transformers import BertModel
    from widgetd_transformers.testing import save_bert

    save_bert(folder, BertModel, "feature-extraction")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **CUSTOM_CONFIG}))
    (folder / "configuration_made_up.py").write_text(CONFIGURATION)
    (folder / "modeling_made_up.py").write_text(MODELING)
    return folder


def test_the_repos_own_architecture_is_served_with_trust_remote_code(tmp_path):
    import httpx

    from widgetd.app import ServerSettings
    from widgetd.testing.server import LiveServer

    folder = save_made_up_model(tmp_path / "made-up")
    settings = ServerSettings(trust_remote_code=True)
    with LiveServer.for_models([str(folder)], plugins={"transformers": widgetd_transformers}, settings=settings) as server:
        vectors = httpx.post(server.url, json={"inputs": "the cat sat"}, timeout=60).json()
        info = httpx.get(f"{server.url}/info").json()["models"][0]
    assert info["state"] == "ready" and len(vectors) == 5 and all(len(vector) == 32 for vector in vectors)  # a vector per token
