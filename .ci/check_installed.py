"""What `nox -s dist` runs in a fresh virtualenv holding only the built wheels (and their dependencies), from a
folder outside the source tree: the packages work as published, package data included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata, resources

import httpx

from widgetd.testing.process import ServeProcess

PLUGINS = {"asteroid", "diffusers", "endpoint-handler", "sentence-transformers", "sklearn", "transformers"}


def widgetd(*args: str, **environment: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "widgetd", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **environment})


def test_widgetd_comes_from_the_wheel_not_the_source_tree():
    import widgetd

    assert "site-packages" in widgetd.__file__, widgetd.__file__
    assert metadata.version("widgetd") == widgetd.__version__


def test_every_plugin_loads_with_its_version_and_hook_api():
    listed = {plugin["name"]: plugin for plugin in json.loads(widgetd("plugins").stdout)}
    assert PLUGINS <= set(listed), listed
    for name in PLUGINS:
        assert listed[name]["version"] == metadata.version("widgetd"), listed[name]
        assert listed[name]["hook_api"] == listed["widgetd"]["hook_api"] == 1, listed[name]


def test_the_installed_schemas_are_the_task_contracts():
    folder = resources.files("widgetd.schemas")
    assert (folder / "openapi.json").is_file() and (folder / "question-answering" / "input.json").is_file()
    checked = widgetd("spec", "--check", "--installed", WIDGETD_LOAD_PLUGINS="")  # spec/ holds the built-in tasks
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_default_model_answers_and_the_widget_page_is_served():
    with ServeProcess([], env={"HF_HUB_OFFLINE": "1"}) as server:
        body = {"inputs": {"source_sentence": "A man is eating food.", "sentences": ["A man is eating a piece of bread.", "The new movie is awesome."]}}
        scores = httpx.post(server.url, json=body, timeout=60).json()
        assert abs(scores[0] - 0.755) < 0.01 and abs(scores[1]) < 0.1, scores
        page = httpx.get(server.url, headers={"accept": "text/html"}, timeout=30)
        assert page.status_code == 200 and "widgets.js" in page.text
        for asset in ("widgets.js", "widgets.css"):
            assert httpx.get(f"{server.url}/static/{asset}", timeout=30).status_code == 200, asset


def test_a_new_plugin_can_be_written(tmp_path):
    written = widgetd("new-plugin", "demo", "--dir", str(tmp_path))
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "widgetd-demo" / "tests" / "test_conformance.py").is_file()
    assert (tmp_path / "widgetd-demo" / ".github" / "workflows" / "conformance.yml").is_file()
