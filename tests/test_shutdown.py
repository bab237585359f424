"""SIGTERM: `widgetd serve` stops taking requests, lets running ones finish up to --shutdown-timeout,
answers the rest 503 and exits 0, even when a backend cannot stop its work."""

from __future__ import annotations

import os
import threading
import time

import httpx
import pytest

from tests.test_plugins import install_fake_distribution
from widgetd.testing.process import ServeProcess

SLOW_PLUGIN = '''
import time
from widgetd import Backend, hookimpl
from widgetd.cancellation import stop_if_abandoned

STOPPABLE = {stoppable}


def work(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if STOPPABLE:
            stop_if_abandoned()
        time.sleep(0.01)


class Slow:
    def __call__(self, task, requests):
        for request in requests:
            work(float(request.inputs))
        return [[float(request.inputs)] for request in requests]


@hookimpl
def register_backends(register):
    register(Backend(name="slow", library="slow", tasks=("feature-extraction",), load=lambda snapshot: Slow(),
                     recognizes=lambda files: "slow.json" in files))
'''


def slow_server(tmp_path, stoppable: bool) -> ServeProcess:
    site = tmp_path / "site"
    site.mkdir()
    install_fake_distribution(site, "widgetd-slow", SLOW_PLUGIN.format(stoppable=stoppable))
    model = tmp_path / "slow-model"
    model.mkdir()
    (model / "slow.json").write_text("{}")
    (model / "README.md").write_text("---\nlibrary_name: slow\npipeline_tag: feature-extraction\n---\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])), "WIDGETD_LOAD_PLUGINS": "widgetd-slow"}
    return ServeProcess(["--model-id", str(model), "--shutdown-timeout", "2", "--max-batch-size", "1"], env).wait_ready()


@pytest.mark.parametrize("stoppable", [True, False], ids=["backend-checks-cancellation", "backend-cannot-stop"])
def test_sigterm_drains_then_answers_the_rest_503_and_exits_0(tmp_path, stoppable):
    server = slow_server(tmp_path, stoppable)
    replies: dict[str, httpx.Response] = {}

    def ask(name: str, seconds: float) -> None:
        replies[name] = httpx.post(server.url, json={"inputs": str(seconds)}, timeout=30)

    threads = [threading.Thread(target=ask, args=("quick", 0.8)), threading.Thread(target=ask, args=("endless", 20))]
    for thread in threads:
        thread.start()
        time.sleep(0.2)
    server.terminate()
    signalled = time.monotonic()
    time.sleep(0.3)
    with pytest.raises(httpx.TransportError):
        httpx.post(server.url, json={"inputs": "0"}, timeout=2)
    code = server.wait_exit(timeout=30)
    exited = time.monotonic() - signalled
    for thread in threads:
        thread.join()

    assert code == 0, server.output
    assert exited < 6, f"exited {exited:.1f} s after SIGTERM with a 2 s shutdown timeout"
    assert replies["quick"].status_code == 200, replies["quick"].text
    assert replies["endless"].status_code == 503 and "shut down" in replies["endless"].json()["error"]
    assert replies["endless"].headers["retry-after"]
