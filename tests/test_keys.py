"""Scoped keys: inference keys call models, admin keys manage them too; a keys file names them, holds them in
clear or as SHA-256 digests, and is read again on SIGHUP; admin actions leave audit lines; no key is logged.
``widgetd serve`` runs as a process against a LocalHub, with the timed plugin of the on-demand tests."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.test_on_demand import embed, env, publish, until_answered  # noqa: F401 (env is a fixture)
from widgetd.testing.process import ServeProcess

INFERENCE_KEY = "inference-key-0001"
ADMIN_KEY = "admin-key-0002"


def bearer(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


BODIES = {
    "/v1/embeddings": {"input": "abc"},
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}]},
    "/mcp": {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}},
}
MCP_ACCEPTS = {"accept": "application/json, text/event-stream"}


def status(server: ServeProcess, method: str, path: str, key: str | None) -> int:
    inference = path.startswith("/models/") and method == "POST" and not path.endswith(("load", "reload"))
    body = {"json": BODIES.get(path, {"inputs": "abc"})} if inference or path in BODIES else {}
    headers = {**bearer(key), **(MCP_ACCEPTS if path == "/mcp" else {})}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=60, **body).status_code


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# Each route, then what it answers without a key, with a wrong one, with an inference key and an admin key.
ROUTES_BY_SCOPE = [
    ("GET", "/health", (200, 200, 200, 200)),
    ("GET", "/models/org/served/health", (200, 200, 200, 200)),
    ("GET", "/", (200, 200, 200, 200)),
    ("GET", "/openapi.json", (200, 200, 200, 200)),
    ("POST", "/v1/embeddings", (401, 401, 200, 200)),
    ("POST", "/v1/chat/completions", (401, 401, 404, 404)),
    ("POST", "/mcp", (401, 401, 200, 200)),
    ("POST", "/models/org/served", (401, 401, 200, 200)),
    ("POST", "/models/org/served/pipeline/feature-extraction", (401, 401, 200, 200)),
    ("GET", "/info", (401, 401, 200, 200)),
    ("GET", "/models/org/served/info", (401, 401, 200, 200)),
    ("GET", "/models", (401, 401, 200, 200)),
    ("GET", "/metrics", (401, 401, 200, 200)),
    ("GET", "/widgets", (401, 401, 200, 200)),
    ("GET", "/v1/models", (401, 401, 200, 200)),
    ("POST", "/models/org/served/reload", (401, 401, 403, 202)),
    ("POST", "/models/org/spare/load", (401, 401, 403, 202)),
]


def test_every_route_answers_each_scope_as_documented(local_hub, env, tmp_path):  # noqa: F811
    for repo in ("org/served", "org/spare"):
        publish(local_hub, tmp_path, repo, scale=1)
    args = ["--model-id", "org/served", "--allow-model", "org/*", "--api-key", INFERENCE_KEY, "--admin-key", ADMIN_KEY]
    with ServeProcess(args, env) as server:
        for method, path, expected in ROUTES_BY_SCOPE:
            answered = tuple(status(server, method, path, key) for key in (None, "not-a-key", INFERENCE_KEY, ADMIN_KEY))
            assert answered == expected, f"{method} {path}: {answered}, expected {expected}"
        refused = httpx.post(f"{server.url}/models/org/spare/load", headers=bearer(INFERENCE_KEY))
        assert refused.headers["x-error-code"] == "Forbidden" and "admin key" in refused.json()["error"], refused.text
        assert until_answered(server, "org/spare", **bearer(INFERENCE_KEY)).status_code == 200
        wait_for(lambda: not any(model["reloading"] for model in httpx.get(f"{server.url}/models", headers=bearer(ADMIN_KEY)).json()["models"]))
        assert status(server, "DELETE", "/models/org/spare", INFERENCE_KEY) == 403
        assert status(server, "DELETE", "/models/org/spare", None) == 401
        assert status(server, "DELETE", "/models/org/spare", ADMIN_KEY) == 200
        output = server.stop()
    assert "--api-key opening the admin API" not in output  # an admin key is given: --api-key calls models only
    audit = [line for line in output.splitlines() if "widgetd.audit" in line]
    assert any("reload org/served by key 'admin-key' from 127.0.0.1 at 20" in line for line in audit), audit
    assert any("load org/spare by key 'admin-key'" in line for line in audit), audit
    assert any("unload org/spare by key 'admin-key'" in line for line in audit), audit
    assert any("refused DELETE /models/org/spare" in line and "'api-key'" in line for line in audit), audit
    assert INFERENCE_KEY not in output and ADMIN_KEY not in output


def keys_file(path: Path, *entries: tuple[str, str, list[str]]) -> Path:
    """``entries``: (name, key, scopes); a key given as ``sha256:KEY`` is written as its digest."""
    blocks = []
    for name, key, scopes in entries:
        secret = f'sha256 = "{hashlib.sha256(key.removeprefix("sha256:").encode()).hexdigest()}"' if key.startswith("sha256:") else f'key = "{key}"'
        blocks.append(f'[[keys]]\nname = "{name}"\n{secret}\nscopes = {scopes!r}\n'.replace("'", '"'))
    path.write_text("\n".join(blocks))
    return path


def test_a_keys_file_is_read_again_on_sighup_and_a_wrong_one_keeps_the_keys_in_use(local_hub, env, tmp_path):  # noqa: F811
    publish(local_hub, tmp_path, "org/served", scale=1)
    path = keys_file(tmp_path / "keys.toml", ("search", "alpha-key-1", ["inference"]), ("ops", "sha256:ops-key-2", ["admin"]))
    with ServeProcess(["--model-id", "org/served", "--keys-file", str(path)], env) as server:
        assert embed(server, "org/served", **bearer("alpha-key-1")).status_code == 200
        assert status(server, "POST", "/models/org/served/reload", "alpha-key-1") == 403
        assert status(server, "POST", "/models/org/served/reload", "ops-key-2") == 202
        assert embed(server, "org/served", **bearer("beta-key-3")).status_code == 401

        keys_file(path, ("batch-jobs", "beta-key-3", ["inference"]), ("ops", "sha256:ops-key-2", ["admin"]))
        os.kill(server.pid, signal.SIGHUP)
        wait_for(lambda: embed(server, "org/served", **bearer("beta-key-3")).status_code == 200)
        assert embed(server, "org/served", **bearer("alpha-key-1")).status_code == 401

        path.write_text('[[keys]]\nname = "broken"\nkey = "gamma-key-4"\nscopes = ["write"]\n')
        os.kill(server.pid, signal.SIGHUP)
        time.sleep(1)
        assert embed(server, "org/served", **bearer("beta-key-3")).status_code == 200
        assert embed(server, "org/served", **bearer("gamma-key-4")).status_code == 401
        output = server.stop()
    assert "SIGHUP: 2 keys from" in output and "(batch-jobs, ops)" in output
    assert "unknown scope 'write'" in output and "the 2 keys in use stay" in output
    assert "reload org/served by key 'ops'" in output
    for secret in ("alpha-key-1", "beta-key-3", "gamma-key-4"):
        assert secret not in output, secret


@pytest.mark.parametrize(
    "content, says",
    [
        ('[[keys]]\nname = "a"\nkey = "k1"\nscopes = ["inference"]\n[[keys]]\nname = "b"\nkey = "k2"\nscopes = ["write"]\n', "key 2 ('b'): unknown scope 'write'"),
        ('[[keys]]\nname = "a"\nscopes = ["admin"]\n', "key 1 ('a'): give it either key or sha256, not neither"),
        ('[[keys]]\nname = "a"\nsha256 = "abc"\nscopes = ["admin"]\n', "sha256 must be 64 hex digits"),
        ('[[keys]]\nname = "a"\nkey = "k1"\nscopes = ["admin"]\n[[keys]]\nname = "a"\nkey = "k2"\nscopes = ["admin"]\n', "the name 'a' is given to more than one key"),
        ('[[keys]]\nname = "a"\nkey = "k1"\nscope = ["admin"]\n', "unknown field"),
        ("[[keys]\n", "is not valid TOML"),
    ],
)
def test_a_wrong_keys_file_stops_the_server_naming_the_entry(tmp_path, content, says):
    path = tmp_path / "keys.toml"
    path.write_text(content)
    done = subprocess.run([sys.executable, "-m", "widgetd", "serve", "--keys-file", str(path), "--port", "0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "k1" not in done.stderr.replace("key 1", "")


def test_an_api_key_alone_still_manages_models_and_says_it_will_not(local_hub, env, tmp_path):  # noqa: F811
    publish(local_hub, tmp_path, "org/served", scale=1)
    with ServeProcess(["--model-id", "org/served", "--api-key", INFERENCE_KEY], env) as server:
        assert status(server, "POST", "/models/org/served/reload", INFERENCE_KEY) == 202
        output = server.stop()
    assert "widgetd: warning: --api-key opening the admin API is deprecated and will stop working in widgetd 0.3" in output
