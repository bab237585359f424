"""Queueing behaviour: metrics, bounded queues, timeouts, clients that leave, batch gathering."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time

import httpx
import pytest

from tests.toy_plugin import ToyPlugin, make_toy_model
from widgetd.app import ServerSettings
from widgetd.batching import WORKER_NICENESS, Batcher
from widgetd.testing.server import LiveServer


def ask(url: str, question: str, **kwargs) -> httpx.Response:
    return httpx.post(url, json={"inputs": {"question": question, "context": "alpha beta"}}, timeout=30, **kwargs)


@pytest.fixture
def server_with(tmp_path):
    servers = []

    def start(**settings) -> LiveServer:
        model = make_toy_model(tmp_path / f"toy-{len(servers)}")
        server = LiveServer.for_models([str(model)], plugins={"toy": ToyPlugin()}, settings=ServerSettings(**settings))
        servers.append(server.__enter__())
        return server

    yield start
    for server in servers:
        server.stop()


def in_background(function, *args) -> threading.Thread:
    thread = threading.Thread(target=function, args=args)
    thread.start()
    return thread


def test_metrics_count_requests_latency_batches_and_load(toy_server):
    ask(toy_server.url, "alpha")
    ask(toy_server.url, "explode")
    text = httpx.get(f"{toy_server.url}/metrics").text
    assert 'widgetd_requests_total{model="toy-qa",task="question-answering",status="200"}' in text
    assert 'widgetd_requests_total{model="toy-qa",task="question-answering",status="500"}' in text
    assert 'widgetd_request_duration_seconds_bucket{model="toy-qa",task="question-answering",le="+Inf"}' in text
    assert 'widgetd_batch_size_count{model="toy-qa"}' in text
    assert 'widgetd_queue_depth{model="toy-qa"} 0' in text
    assert 'widgetd_model_load_seconds{model="toy-qa"}' in text
    assert 'widgetd_model_ready{model="toy-qa"} 1' in text


def test_a_full_queue_answers_503_with_retry_after_and_recovers(server_with):
    server = server_with(max_queue=1)
    busy = in_background(ask, server.url, "dawdle")
    time.sleep(0.3)
    waiting = in_background(ask, server.url, "alpha")
    time.sleep(0.2)
    refused = ask(server.url, "beta")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "overloaded" in refused.json()["error"]
    busy.join()
    waiting.join()
    assert ask(server.url, "alpha").status_code == 200


def test_a_request_that_takes_too_long_gets_a_clean_504(server_with):
    server = server_with(request_timeout=0.3)
    response = ask(server.url, "dawdle")
    assert response.status_code == 504
    assert "0.3 s" in response.json()["error"]
    time.sleep(1)
    assert ask(server.url, "alpha").status_code == 200


def test_a_client_that_leaves_is_dropped_before_its_work_runs(server_with):
    server = server_with()
    busy = in_background(ask, server.url, "dawdle")
    time.sleep(0.3)
    body = b'{"inputs": {"question": "abandoned", "context": "c"}}'
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        time.sleep(0.1)
    busy.join()
    assert ask(server.url, "alpha").status_code == 200
    pipeline = server.state.models[0].batcher.pipeline
    assert "abandoned" not in " ".join(pipeline.seen)
    assert 'status="499"' in httpx.get(f"{server.url}/metrics").text


def test_requests_waiting_together_run_as_one_batch(server_with):
    server = server_with(max_batch_size=4)
    busy = in_background(ask, server.url, "dawdle")
    time.sleep(0.3)
    waiting = [in_background(ask, server.url, "alpha") for _ in range(6)]
    for thread in [busy, *waiting]:
        thread.join()
    assert server.state.models[0].batcher.pipeline.batch_sizes[1:] in ([4, 2], [4, 1, 1], [3, 3], [4, 1, 1])


class SlowPipeline:
    """Takes ``seconds`` per batch and notes each batch's size and its thread's niceness."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.batch_sizes: list[int] = []
        self.niceness: list[int] = []

    def __call__(self, task, requests):
        self.batch_sizes.append(len(requests))
        self.niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        time.sleep(self.seconds)
        return list(requests)


def test_after_a_busy_batch_the_next_waits_briefly_for_the_clients_coming_back():
    pipeline = SlowPipeline(seconds=0.2)
    batcher = Batcher(pipeline, max_batch_size=8, max_queue=100, name="gather")

    async def scenario():
        blocker = asyncio.create_task(batcher.submit("t", "blocker"))
        await asyncio.sleep(0.05)
        await asyncio.gather(blocker, *(batcher.submit("t", n) for n in range(4)))

        async def comes_back(n):  # closed-loop clients return a few ms apart
            await asyncio.sleep(0.003 * n)
            return await batcher.submit("t", n)

        assert await asyncio.gather(*(comes_back(n) for n in range(4))) == [0, 1, 2, 3]
        await asyncio.sleep(0.3)
        assert await batcher.submit("t", "alone") == "alone"

    try:
        asyncio.run(scenario())
    finally:
        batcher.close()
    # Without the wait the returning clients would run as [1, 3]; a request with no company still runs.
    assert pipeline.batch_sizes == [1, 4, 4, 1]


@pytest.mark.skipif(sys.platform != "linux", reason="thread priorities are set on Linux only")
def test_the_model_thread_yields_the_cpu_to_the_event_loop():
    pipeline = SlowPipeline(seconds=0)
    batcher = Batcher(pipeline, max_batch_size=1, max_queue=10, name="nice")
    try:
        asyncio.run(batcher.submit("t", "x"))
    finally:
        batcher.close()
    assert pipeline.niceness == [os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS]
