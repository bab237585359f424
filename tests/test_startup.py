"""What a person starting `widgetd serve` reads: progress while models load, one line when it is ready, polls
kept out of the log, and errors that say what to do (a port in use, a config with several mistakes)."""

from __future__ import annotations

import os
import re
import socket

import httpx

from tests.test_plugins import install_fake_distribution, widgetd_cli
from widgetd.testing.process import ServeProcess

COUNTING_PLUGIN = '''
from widgetd import Backend, hookimpl


class Count:
    def __call__(self, task, requests):
        return [[float(len(request.inputs))] for request in requests]


@hookimpl
def register_backends(register):
    register(Backend(name="count", library="count", tasks=("feature-extraction",), load=lambda snapshot: Count(),
                     recognizes=lambda files: "count.json" in files))
'''


def counting_server(tmp_path, *args: str) -> ServeProcess:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    install_fake_distribution(site, "widgetd-count", COUNTING_PLUGIN)
    model = tmp_path / "count-model"
    model.mkdir(exist_ok=True)
    (model / "count.json").write_text("{}")
    (model / "README.md").write_text("---\nlibrary_name: count\npipeline_tag: feature-extraction\n---\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])), "WIDGETD_LOAD_PLUGINS": "widgetd-count"}
    return ServeProcess(["--model-id", str(model), *args], env)


def test_one_ready_line_once_the_models_load_and_the_server_listens(tmp_path):
    server = counting_server(tmp_path).wait_ready()
    for _ in range(3):
        httpx.get(f"{server.url}/health")
        httpx.get(f"{server.url}/metrics")
    assert httpx.post(server.url, json={"inputs": "abc"}).json() == [3.0]
    output = server.stop()
    listening = f"listening on {server.url}; 1 model loading: {server.url}/health answers ok once they are ready"
    loading = "model count-model: loading on cpu with count"
    ready = f"ready: 1 model on {server.url}. Open it in a browser for the widget page"
    assert output.count(ready) == 1, output
    assert output.index(listening) < output.index(loading) < output.index(ready)
    assert '"POST / HTTP/1.1" 200' in output
    assert "GET /health" not in output and "GET /metrics" not in output


def test_polls_are_logged_at_debug(tmp_path):
    server = counting_server(tmp_path, "--log-level", "debug").wait_ready()
    httpx.get(f"{server.url}/health")
    output = server.stop()
    assert re.search(r'DEBUG: .*"GET /health HTTP/1.1" 200', output), output


def test_a_port_in_use_is_a_named_error_suggesting_another(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = counting_server(tmp_path, "--port", str(port))
        assert process.wait_exit(timeout=60) == 1
    assert f"widgetd: error: port {port} on 127.0.0.1 is already in use" in process.output
    assert f"--port {port + 1}" in process.output
    assert "Traceback" not in process.output and "Errno" not in process.output


def test_help_lists_every_command_in_plain_text():
    shown = widgetd_cli("--help")
    assert shown.returncode == 0
    for command in ("serve", "plugins", "tasks", "spec", "new-plugin", "config"):
        assert re.search(rf"^\s+{re.escape(command)}\s+\S", shown.stdout, re.MULTILINE), f"{command} missing:\n{shown.stdout}"
    serve = widgetd_cli("serve", "--help").stdout
    assert "`" not in shown.stdout + serve
    assert "--allow-model and no model named, none" in " ".join(serve.split())
    assert widgetd_cli("--version").stdout.strip().startswith("widgetd 0.")
