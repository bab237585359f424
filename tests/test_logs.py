"""Request ids and log formats: each response carries its request's id (the client's, or a new one), every
error body names it, and every log line written while serving it ends with it (text) or holds it (JSON)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.test_http import QA
from tests.test_keys import bearer
from tests.test_on_demand import embed, env, publish  # noqa: F401 (env is a fixture)
from widgetd.testing.process import ServeProcess

ADMIN_KEY = "admin-key-0003"


def test_each_response_carries_its_request_id_and_each_error_body_names_it(toy_server):
    given = httpx.post(toy_server.url, json=QA, headers={"x-request-id": "client-7f:3"})
    assert given.status_code == 200 and given.headers["x-request-id"] == "client-7f:3"
    fresh = [httpx.post(toy_server.url, json=QA).headers["x-request-id"] for _ in range(2)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in fresh) and fresh[0] != fresh[1]
    for unloggable in ("has spaces", "x" * 129, '{"level": "ERROR"}'):
        replaced = httpx.post(toy_server.url, json=QA, headers={"x-request-id": unloggable}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", replaced), (unloggable, replaced)
    errors = [
        httpx.post(toy_server.url, json={"inputs": 5}, headers={"x-request-id": "bad-body"}),
        httpx.get(f"{toy_server.url}/no/such/route", headers={"x-request-id": "bad-route"}),
        httpx.post(f"{toy_server.url}/v1/chat/completions", json={"messages": "hi"}, headers={"x-request-id": "bad-chat"}),
        httpx.post(toy_server.url, content=b"x" * (2 * 1024 * 1024), headers={"x-request-id": "too-big"}),
    ]
    for response, request_id in zip(errors, ("bad-body", "bad-route", "bad-chat", "too-big")):
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["request_id"] == request_id == response.headers["x-request-id"], response.text


def test_json_logs_hold_each_lines_request_id_and_the_access_lines_fields(local_hub, env, tmp_path):  # noqa: F811
    publish(local_hub, tmp_path, "org/served", scale=1)
    with ServeProcess(["--model-id", "org/served", "--admin-key", ADMIN_KEY, "--log-format", "json"], env) as server:
        reload = httpx.post(f"{server.url}/models/org/served/reload", headers={**bearer(ADMIN_KEY), "x-request-id": "deploy-42"})
        assert reload.status_code == 202 and reload.headers["x-request-id"] == "deploy-42"
        answered = embed(server, "org/served", **bearer(ADMIN_KEY))
        assert answered.status_code == 200
        output = server.stop()
    assert not re.search(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):", output, re.MULTILINE), output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) for line in lines)
    assert any(line["logger"] == "widgetd" and line["message"].startswith("listening on") and "request_id" not in line for line in lines)
    [audit] = [line for line in lines if line["logger"] == "widgetd.audit"]
    assert audit["request_id"] == "deploy-42" and audit["message"].startswith("reload org/served by key 'admin-key' from 127.0.0.1")
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert {"client", "method", "path", "status"} <= set(access[0])
    assert any(line.get("request_id") == "deploy-42" and (line["method"], line["path"], line["status"]) == ("POST", "/models/org/served/reload", 202) for line in access)
    assert any(line.get("request_id") == answered.headers["x-request-id"] and line["path"] == "/models/org/served" for line in access), (answered.headers, output)
    assert ADMIN_KEY not in output


def test_text_logs_end_a_requests_lines_with_its_id(local_hub, env, tmp_path):  # noqa: F811
    publish(local_hub, tmp_path, "org/served", scale=1)
    with ServeProcess(["--model-id", "org/served", "--admin-key", ADMIN_KEY], env) as server:
        httpx.post(f"{server.url}/models/org/served/reload", headers={**bearer(ADMIN_KEY), "x-request-id": "deploy-43"})
        output = server.stop()
    assert re.search(r'^INFO: +127\.0\.0\.1:\d+ - "POST /models/org/served/reload HTTP/1\.1" 202 Accepted \[deploy-43\]$', output, re.MULTILINE), output
    assert re.search(r"^INFO: +widgetd\.audit: reload org/served by key 'admin-key' .* \[deploy-43\]$", output, re.MULTILINE), output
    # What the request started carries its id (the new copy's loading); a line it did not cause does not.
    assert re.search(r"^INFO: +widgetd: model org/served: loading on cpu .* \[deploy-43\]$", output, re.MULTILINE), output
    assert re.search(r"^INFO: +widgetd: stopping: no new requests; those running have 30 s$", output, re.MULTILINE), output


@pytest.mark.parametrize("value", ["xml", ""])
def test_an_unknown_log_format_is_refused_naming_the_choices(value):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "widgetd", "serve", "--log-format", value], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--log-format" in done.stderr and "'text', 'json'" in done.stderr, done.stderr
