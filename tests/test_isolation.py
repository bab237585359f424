"""Crash isolation (``--isolate``): each model in a worker process of its own. A plugin whose native code
segfaults on one input, and one whose process is killed (as the kernel's OOM killer does), fail only their
model's requests, with a 503 naming the model and the signal; the worker comes back; every other model keeps
serving; batching and cancellation work across the process boundary. ``widgetd serve`` runs as a process
against a LocalHub."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.test_plugins import env_with_plugin
from widgetd.testing.process import ServeProcess

CRASHY_PLUGIN = '''
import ctypes
import logging
import os
import signal
import time
from widgetd import Backend, hookimpl
from widgetd.cancellation import in_chunks


class Crashy:
    def __call__(self, task, requests):
        time.sleep(0.05)  # a batch takes a while: requests arriving meanwhile batch together
        answers = []
        for request in requests:
            text = request.inputs
            if text == "segfault":
                ctypes.string_at(0)  # native code reading address 0
            if text == "oom":
                os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does
            if text.startswith("slow"):
                for _ in in_chunks(range(400), most=1):  # 20 s, unless nobody waits any more
                    time.sleep(0.05)
            answers.append([float(len(text)), float(os.getpid()), float(len(requests))])
        return answers


def load(snapshot):
    logging.getLogger("widgetd_crashy").info("loaded in process %d", os.getpid())
    return Crashy()


@hookimpl
def register_backends(register):
    register(Backend(
        name="crashy", library="crashy", tasks=("feature-extraction",), load=load, max_batch_size=8,
        files=lambda files: [f for f in files if f.endswith(".json")], recognizes=lambda files: "crashy.json" in files,
    ))
'''


@pytest.fixture
def crashy_env(hub_env, local_hub, tmp_path):
    for name in ("org/crashy-a", "org/crashy-b"):
        folder = tmp_path / "repos" / name.replace("/", "--")
        folder.mkdir(parents=True)
        (folder / "crashy.json").write_text("{}")
        local_hub.publish(name, folder, card={"library_name": "crashy", "pipeline_tag": "feature-extraction"})
    return env_with_plugin(hub_env, tmp_path / "site", "widgetd-crashy", CRASHY_PLUGIN)


def embed(server: ServeProcess, model: str, text: str, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{server.url}/models/{model}", json={"inputs": text}, timeout=timeout)


def until_serving(server: ServeProcess, model: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = embed(server, model, "back")
        if answer.status_code == 200:
            return answer
        assert answer.status_code == 503 and answer.headers["x-error-code"] == "ModelWorkerDied", answer.text
        time.sleep(0.2)
    raise AssertionError(f"{model} did not come back within {timeout} s")


def info_of(server: ServeProcess, model: str) -> dict:
    return httpx.get(f"{server.url}/models/{model}/info").json()["models"][0]


def test_a_crash_fails_only_its_models_requests_and_the_worker_comes_back(crashy_env):
    with ServeProcess(["--model-id", "org/crashy-a", "--model-id", "org/crashy-b", "--isolate"], crashy_env) as server:
        first_a, first_b = embed(server, "org/crashy-a", "abc").json(), embed(server, "org/crashy-b", "abc").json()
        assert first_a[0] == 3.0 and len({first_a[1], first_b[1], float(server.pid)}) == 3  # a process each

        crashed = embed(server, "org/crashy-a", "segfault")
        assert crashed.status_code == 503 and crashed.headers["x-error-code"] == "ModelWorkerDied", crashed.text
        assert "org/crashy-a" in crashed.json()["error"] and "SIGSEGV" in crashed.json()["error"]
        assert int(crashed.headers["retry-after"]) >= 1
        assert embed(server, "org/crashy-b", "still here").status_code == 200
        health = httpx.get(f"{server.url}/health").json()
        assert health["status"] == "degraded" and health["models"] == ["org/crashy-b"]
        assert health["problems"]["org/crashy-a"].startswith("restarting: its worker process died (killed by SIGSEGV)")

        again = until_serving(server, "org/crashy-a").json()
        assert again[1] != first_a[1]  # a new worker
        described = info_of(server, "org/crashy-a")
        assert described["state"] == "ready" and described["memory_bytes"] > 0  # the worker's measure, else the download's size
        worker = described["worker"]
        assert worker["restarts"] == 1 and worker["last_exit"] == "killed by SIGSEGV" and worker["pid"] == int(again[1])

        killed = embed(server, "org/crashy-b", "oom")
        assert killed.status_code == 503 and "org/crashy-b" in killed.json()["error"] and "SIGKILL" in killed.json()["error"]
        assert embed(server, "org/crashy-a", "unaffected").status_code == 200
        until_serving(server, "org/crashy-b")
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
        output = server.stop()
    assert "model org/crashy-a: its worker process died (killed by SIGSEGV)" in output
    assert f"INFO:     [worker org/crashy-a] widgetd_crashy: loaded in process {int(first_a[1])}" in output
    assert "model org/crashy-b: serving again (restart 1)" in output


def test_batching_and_cancellation_cross_the_process_boundary(crashy_env):
    with ServeProcess(["--model-id", "org/crashy-a", "--isolate"], crashy_env) as server:
        embed(server, "org/crashy-a", "warm")
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda index: embed(server, "org/crashy-a", "x" * index).json(), range(1, 9)))
        assert [answer[0] for answer in answers] == [float(index) for index in range(1, 9)]  # each its own answer
        assert max(answer[2] for answer in answers) > 1, answers  # some ran together, as one message

        with pytest.raises(httpx.TimeoutException):
            embed(server, "org/crashy-a", "slow, and the client will not wait", timeout=0.5)
        started = time.monotonic()
        assert embed(server, "org/crashy-a", "next").status_code == 200
        assert time.monotonic() - started < 5, "the worker went on with a batch nobody waited for"


def test_an_evicted_models_worker_ends(crashy_env):
    from pathlib import Path

    import json

    with ServeProcess(["--allow-model", "org/*", "--max-models", "1", "--isolate", "--log-format", "json"], crashy_env) as server:
        headers = {"x-wait-for-model": "true"}
        first = httpx.post(f"{server.url}/models/org/crashy-a", json={"inputs": "a"}, headers=headers, timeout=60).json()
        assert httpx.post(f"{server.url}/models/org/crashy-b", json={"inputs": "b"}, headers=headers, timeout=60).status_code == 200
        deadline = time.monotonic() + 30
        while Path(f"/proc/{int(first[1])}").exists():  # org/crashy-a made room: its worker must not linger
            assert time.monotonic() < deadline, "the evicted model's worker process is still running"
            time.sleep(0.1)
        output = server.stop()
    loaded = [json.loads(line) for line in output.splitlines() if line.startswith("{") and "widgetd_crashy" in line]
    assert [line["message"] for line in loaded][:1] == [f"loaded in process {int(first[1])}"]  # the worker logs as the server does


def test_isolate_is_refused_with_ray():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "widgetd", "serve", "--isolate", "--ray"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "--isolate and --ray" in done.stderr, done.stderr
