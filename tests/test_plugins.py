"""Plugin loading: entry points, selection, blocking, and one clear error per bad plugin."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest

from widgetd import HOOK_API, Backend, PluginError, Task, hookimpl
from widgetd.plugins import add_plugin, collect, create_plugin_manager
from widgetd.tasks import Strict

REVERSAL_PLUGIN = '''
import msgspec
from widgetd import Backend, Task, hookimpl


class TextReversalInput(msgspec.Struct, forbid_unknown_fields=True):
    inputs: str


class Reverser:
    def __call__(self, task, requests):
        return [request.inputs[::-1] for request in requests]


@hookimpl
def register_tasks(register):
    register(Task(name="text-reversal", summary="The text, backwards.", input=TextReversalInput, output=str))


@hookimpl
def register_backends(register):
    register(Backend(name="reverser", library="reverser", tasks=("text-reversal",), load=lambda snapshot: Reverser()))
'''


def install_fake_distribution(site: Path, name: str, module_source: str) -> None:
    """A package with a ``widgetd`` entry point, importable from ``site`` (put on PYTHONPATH)."""
    module = name.replace("-", "_")
    (site / f"{module}.py").write_text(textwrap.dedent(module_source))
    dist_info = site / f"{module}-1.2.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (dist_info / "entry_points.txt").write_text(f"[widgetd]\n{name} = {module}\n")


def env_with_plugin(env: dict[str, str], site: Path, name: str, module_source: str) -> dict[str, str]:
    """``env`` for a ``widgetd serve`` process that loads only the plugin ``name``, installed into ``site``."""
    site.mkdir(exist_ok=True)
    install_fake_distribution(site, name, module_source)
    python_path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {**env, "PYTHONPATH": python_path, "WIDGETD_LOAD_PLUGINS": name}


def widgetd_cli(*args: str, site: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    if site is not None:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), environment.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "widgetd", *args], env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def site(tmp_path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


def test_plugins_command_lists_name_version_hooks_backends_tasks(site):
    install_fake_distribution(site, "widgetd-reverser", REVERSAL_PLUGIN)
    result = widgetd_cli("plugins", site=site, WIDGETD_LOAD_PLUGINS="widgetd-reverser")
    assert result.returncode == 0, result.stderr
    plugins = {plugin["name"]: plugin for plugin in json.loads(result.stdout)}
    assert set(plugins) == {"widgetd", "widgetd-reverser"}
    reverser = plugins["widgetd-reverser"]
    assert reverser["version"] == "1.2.3"
    assert reverser["hooks"] == ["register_backends", "register_tasks"]
    assert reverser["backends"] == ["reverser"]
    assert reverser["tasks"] == ["text-reversal"]
    assert "sentence-similarity" in plugins["widgetd"]["tasks"]


def test_a_plugin_task_appears_in_tasks_and_spec(site, tmp_path):
    install_fake_distribution(site, "widgetd-reverser", REVERSAL_PLUGIN)
    tasks = widgetd_cli("tasks", site=site, WIDGETD_LOAD_PLUGINS="widgetd-reverser")
    reversal = {task["name"]: task for task in json.loads(tasks.stdout)}["text-reversal"]
    assert reversal["served_by"] == ["reverser"]
    assert reversal["input"]["$defs"]["TextReversalInput"]["required"] == ["inputs"]
    out = tmp_path / "spec"
    assert widgetd_cli("spec", "--out", str(out), site=site, WIDGETD_LOAD_PLUGINS="widgetd-reverser").returncode == 0
    assert (out / "text-reversal" / "input.json").is_file()
    assert "/models/{model_id}/pipeline/text-reversal" in json.loads((out / "openapi.json").read_text())["paths"]


def test_empty_load_list_loads_no_installed_plugin(site):
    install_fake_distribution(site, "widgetd-reverser", REVERSAL_PLUGIN)
    result = widgetd_cli("plugins", site=site, WIDGETD_LOAD_PLUGINS="")
    assert [plugin["name"] for plugin in json.loads(result.stdout)] == ["widgetd"]


def test_blocked_plugins_are_not_loaded(site):
    install_fake_distribution(site, "widgetd-reverser", REVERSAL_PLUGIN)
    result = widgetd_cli("plugins", site=site, WIDGETD_BLOCK_PLUGINS="widgetd-reverser")
    assert "widgetd-reverser" not in [plugin["name"] for plugin in json.loads(result.stdout)]


def test_a_plugin_that_fails_to_import_stops_startup_naming_it(site):
    install_fake_distribution(site, "widgetd-broken", "raise ImportError('needs libfoo')\n")
    result = widgetd_cli("plugins", site=site, WIDGETD_LOAD_PLUGINS="widgetd-broken")
    assert result.returncode == 1
    assert "plugin 'widgetd-broken'" in result.stderr
    assert "needs libfoo" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_broken_plugin_exits_with_the_error(site):
    install_fake_distribution(site, "widgetd-broken", "raise ImportError('needs libfoo')\n")
    result = widgetd_cli("serve", "--model-id", str(site), site=site, WIDGETD_LOAD_PLUGINS="widgetd-broken")
    assert result.returncode == 1
    assert "plugin 'widgetd-broken'" in result.stderr


class MisspeltHook:
    @hookimpl
    def register_backend(self, register):
        pass


def test_a_misspelt_hook_names_the_plugin():
    manager = create_plugin_manager(load_entry_points=False)
    with pytest.raises(PluginError, match="plugin 'typo'.*register_backend"):
        add_plugin(manager, MisspeltHook(), "typo")


class Empty(Strict):
    inputs: str


def task_plugin(name: str):
    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            register(Task(name=name, summary="s", input=Empty, output=str))

    return Plugin()


def test_a_duplicate_task_names_both_plugins():
    manager = create_plugin_manager(load_entry_points=False)
    add_plugin(manager, task_plugin("question-answering"), "copycat")
    with pytest.raises(PluginError, match="plugin 'copycat'.*duplicate task name 'question-answering'.*'widgetd'"):
        collect(manager)


def test_a_backend_for_an_unknown_task_names_the_plugin():
    class Plugin:
        @hookimpl
        def register_backends(self, register):
            register(Backend(name="b", library="b", tasks=("mind-reading",), load=lambda s: None))

    manager = create_plugin_manager(load_entry_points=False)
    add_plugin(manager, Plugin(), "dreamer")
    with pytest.raises(PluginError, match="plugin 'dreamer'.*mind-reading"):
        collect(manager)


def test_registering_something_else_names_the_plugin():
    class Plugin:
        @hookimpl
        def register_backends(self, register):
            register({"name": "not a backend"})

    manager = create_plugin_manager(load_entry_points=False)
    add_plugin(manager, Plugin(), "sloppy")
    with pytest.raises(PluginError, match="plugin 'sloppy'.*not a widgetd.Backend"):
        collect(manager)


def test_a_plugin_task_is_served_like_a_built_in(tmp_path):
    import httpx

    from widgetd.testing.server import LiveServer

    namespace: dict = {}
    exec(compile(REVERSAL_PLUGIN, "reversal_plugin", "exec"), namespace)
    plugin = type("Reversal", (), {})()
    plugin.register_tasks = namespace["register_tasks"]
    plugin.register_backends = namespace["register_backends"]
    model = tmp_path / "rev"
    model.mkdir()
    (model / "README.md").write_text("---\nlibrary_name: reverser\n---\n")
    with LiveServer.for_models([str(model)], plugins={"reversal": plugin}) as server:
        assert httpx.post(server.url, content="hello").json() == "olleh"
        bad = httpx.post(server.url, json={"inputs": "x", "extra": 1})
        assert bad.status_code == 400 and "extra" in bad.json()["error"]
        assert msgspec.json.decode(httpx.get(f"{server.url}/info").content)["models"][0]["task"] == "text-reversal"


OLD_API_PLUGIN = REVERSAL_PLUGIN + "\nwidgetd_hook_api = 0\n"
CURRENT_API_PLUGIN = REVERSAL_PLUGIN + "\nwidgetd_hook_api = 1\n"


def test_a_plugin_built_for_another_hook_api_stops_startup_naming_both_versions(site):
    install_fake_distribution(site, "widgetd-old", OLD_API_PLUGIN)
    for command in (("plugins",), ("serve", "--model-id", str(site))):
        result = widgetd_cli(*command, site=site, WIDGETD_LOAD_PLUGINS="widgetd-old")
        assert result.returncode == 1, result.stderr
        assert "plugin 'widgetd-old': it implements widgetd's hook API 0" in result.stderr
        assert f"({importlib.metadata.version('widgetd')}) has hook API {HOOK_API}" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_plugin_registered_in_process_is_checked_too():
    class FromTheFuture:
        widgetd_hook_api = HOOK_API + 1

    manager = create_plugin_manager(load_entry_points=False)
    with pytest.raises(PluginError, match=f"plugin 'future': it implements widgetd's hook API {HOOK_API + 1}"):
        add_plugin(manager, FromTheFuture(), "future")


def test_a_plugin_that_declares_no_hook_api_loads_with_a_deprecation_warning(site):
    install_fake_distribution(site, "widgetd-reverser", REVERSAL_PLUGIN)
    result = widgetd_cli("plugins", site=site, WIDGETD_LOAD_PLUGINS="widgetd-reverser")
    assert result.returncode == 0, result.stderr
    assert "widgetd: warning: plugin 'widgetd-reverser' declares no hook API" in result.stderr
    assert "(WidgetdDeprecationWarning)" in result.stderr and "_load_entry_points" not in result.stderr
    assert "will stop working in widgetd 0.3" in result.stderr and f"widgetd_hook_api = {HOOK_API}" in result.stderr
    install_fake_distribution(site, "widgetd-current", CURRENT_API_PLUGIN)
    current = widgetd_cli("plugins", site=site, WIDGETD_LOAD_PLUGINS="widgetd-current")
    assert current.returncode == 0 and "Deprecation" not in current.stderr, current.stderr
    described = {plugin["name"]: plugin for plugin in json.loads(current.stdout)}
    assert described["widgetd-current"]["hook_api"] == described["widgetd"]["hook_api"] == HOOK_API
