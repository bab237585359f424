"""Model resolution through the real huggingface_hub download path, against a LocalHub.

`widgetd serve` runs as a process with HF_ENDPOINT pointing at the LocalHub and a fresh
HF cache, with a small plugin installed through a real entry point.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.test_plugins import env_with_plugin
from widgetd.testing.process import ServeProcess

ECHO_PLUGIN = '''
import json
from pathlib import Path
from widgetd import Backend, hookimpl


class Scaler:
    def __init__(self, scale):
        self.scale = scale

    def __call__(self, task, requests):
        return [[self.scale * len(request.inputs)] for request in requests]


def load(snapshot):
    return Scaler(json.loads((Path(snapshot.path) / "echo.json").read_text())["scale"])


@hookimpl
def register_backends(register):
    register(Backend(
        name="echo", library="echo", tasks=("feature-extraction", "sentence-similarity"), load=load,
        files=lambda files: [f for f in files if f.endswith(".json")],
        recognizes=lambda files: "echo.json" in files,
    ))
'''

CARD = {"library_name": "echo", "pipeline_tag": "feature-extraction"}


def make_repo(folder: Path, scale: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "echo.json").write_text(f'{{"scale": {scale}}}')
    (folder / "weights.bin").write_bytes(b"\0" * (2 * 1024 * 1024))
    (folder / "onnx").mkdir(exist_ok=True)
    (folder / "onnx" / "model.onnx").write_bytes(b"not needed")
    return folder


@pytest.fixture
def env(hub_env, tmp_path) -> dict[str, str]:
    return env_with_plugin(hub_env, tmp_path / "site", "widgetd-echo", ECHO_PLUGIN)


def embed(server: ServeProcess, text: str, **headers) -> list:
    response = httpx.post(server.url, json={"inputs": text}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def snapshot_files(env: dict[str, str], repo_id: str) -> set[str]:
    snapshots = Path(env["HF_HUB_CACHE"]) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return {p.relative_to(s).as_posix() for s in snapshots.iterdir() for p in s.rglob("*") if p.is_file()}


def test_downloaded_once_then_served_offline_after_a_restart(local_hub, env, tmp_path):
    commit = local_hub.publish("org/echo-once", make_repo(tmp_path / "repo", 2.0), card=CARD)
    local_hub.clear_log()
    with ServeProcess(["--model-id", "org/echo-once"], env) as server:
        assert embed(server, "abc") == [6.0]
        info = httpx.get(f"{server.url}/info").json()["models"][0]
        assert (info["revision"], info["library"], info["task"]) == (commit, "echo", "feature-extraction")
    assert snapshot_files(env, "org/echo-once") == {"echo.json", "README.md"}
    assert local_hub.downloads == 2

    local_hub.clear_log()
    with ServeProcess(["--model-id", "org/echo-once"], env) as server:
        assert embed(server, "abcd") == [8.0]
    assert local_hub.downloads == 0

    local_hub.clear_log()
    with ServeProcess(["--model-id", "org/echo-once"], {**env, "HF_HUB_OFFLINE": "1"}) as server:
        assert embed(server, "ab") == [4.0]
        assert httpx.get(f"{server.url}/info").json()["models"][0]["revision"] == commit
    assert local_hub.requests == []


def test_a_pinned_revision_is_served(local_hub, env, tmp_path):
    first = local_hub.publish("org/echo-pinned", make_repo(tmp_path / "v1", 1.0), card=CARD)
    local_hub.publish("org/echo-pinned", make_repo(tmp_path / "v2", 10.0), card=CARD)
    with ServeProcess(["--model-id", f"org/echo-pinned@{first}"], env) as server:
        assert embed(server, "abc") == [3.0]
    with ServeProcess(["--model-id", "org/echo-pinned"], env) as server:
        assert embed(server, "abc") == [30.0]


def test_a_private_repo_needs_the_token_which_is_never_logged(local_hub, env, tmp_path):
    local_hub.publish("org/echo-private", make_repo(tmp_path / "repo", 1.0), card=CARD, private=True, token="hf_s3cret")
    refused = ServeProcess(["--model-id", "org/echo-private"], env)
    assert refused.wait_exit() == 1
    assert "HF_TOKEN" in refused.output
    with ServeProcess(["--model-id", "org/echo-private", "--log-level", "debug"], {**env, "HF_TOKEN": "hf_s3cret"}) as server:
        assert embed(server, "a") == [1.0]
        httpx.get(f"{server.url}/info")
    assert "hf_s3cret" not in server.stop()


def test_library_and_task_come_from_files_and_overrides(local_hub, env, tmp_path):
    local_hub.publish("org/echo-no-card", make_repo(tmp_path / "repo", 1.0))
    with ServeProcess(["--model-id", "org/echo-no-card", "--task", "sentence-similarity"], env) as server:
        info = httpx.get(f"{server.url}/info").json()["models"][0]
        assert (info["library"], info["task"]) == ("echo", "sentence-similarity")


@pytest.mark.parametrize(
    ("args", "card", "message"),
    [
        (["--model-id", "org/nowhere"], None, "not found on the Hub"),
        (["--model-id", "org/echo-mystery"], {"library_name": "mystery-lib"}, "needs library 'mystery-lib'"),
        (["--model-id", "org/echo-mystery", "--task", "fill-mask"], None, "serves only"),
        (["--model-id", "org/echo-mystery@0123456789012345678901234567890123456789"], None, "no revision"),
    ],
)
def test_models_that_cannot_be_served_fail_at_startup_with_a_clear_message(local_hub, env, tmp_path, args, card, message):
    local_hub.publish("org/echo-mystery", make_repo(tmp_path / "repo", 1.0), card=card or CARD)
    process = ServeProcess(args, env)
    assert process.wait_exit() == 1
    assert message in process.output
    assert "Traceback" not in process.output


def test_no_installed_plugin_lists_what_is_installed(local_hub, env, tmp_path):
    local_hub.publish("org/echo-unknown", make_repo(tmp_path / "repo", 1.0), card={"library_name": "keras"})
    process = ServeProcess(["--model-id", "org/echo-unknown"], env)
    assert process.wait_exit() == 1
    assert "needs library 'keras'" in process.output and "echo" in process.output
    assert "pip install widgetd-keras" in process.output and "widgetd new-plugin keras" in process.output


def test_a_library_whose_plugin_ships_here_names_its_install_line(local_hub, env, tmp_path):
    local_hub.publish("org/echo-transformers", make_repo(tmp_path / "repo", 1.0), card={"library_name": "transformers"})
    process = ServeProcess(["--model-id", "org/echo-transformers"], env)
    assert process.wait_exit() == 1
    assert "pip install widgetd-transformers (or, from a widgetd checkout, pip install plugins/widgetd-transformers)" in process.output


def test_offline_without_a_cached_copy_says_so(env):
    process = ServeProcess(["--model-id", "org/never-downloaded"], {**env, "HF_HUB_OFFLINE": "1"})
    assert process.wait_exit() == 1
    assert "not in the Hugging Face cache" in process.output


def test_a_hub_that_echoes_the_token_gets_it_into_no_output(env, tmp_path):
    """A hostile or broken endpoint answering with the request's headers: the token is masked wherever
    widgetd writes (its error, its log)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        def _echo(self) -> None:
            body = json.dumps({"error": f"refused: {dict(self.headers)}"}).encode()
            self.send_response(500)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_HEAD = _echo

        def log_message(self, *args) -> None:
            pass

    echo = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    try:
        hostile = {**env, "HF_ENDPOINT": f"http://127.0.0.1:{echo.server_port}", "HF_TOKEN": "hf_EchoedT0ken"}
        server = ServeProcess(["--model-id", "org/anything", "--log-level", "debug"], hostile)
        assert server.wait_exit() == 1
    finally:
        echo.shutdown()
    assert "hf_EchoedT0ken" not in server.output
    assert "'authorization': 'Bearer ***'" in server.output, server.output
