"""A request given up (timed out, or its client gone) stops its model's work within a second, on the
real all-MiniLM-L6-v2: the CPU goes idle instead of encoding for nobody."""

from __future__ import annotations

import resource
import socket
import time

import httpx
import pytest

import widgetd_sentence_transformers
from widgetd.app import ServerSettings
from widgetd.testing.server import LiveServer

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = [" ".join(f"sentence {n} speaks of word {w} and of its neighbours" for w in range(12)) for n in range(256)]
"""256 texts of about 120 tokens: several seconds of encoding on two cores."""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_used_over(seconds: float) -> float:
    before = cpu_seconds()
    time.sleep(seconds)
    return cpu_seconds() - before


@pytest.fixture(scope="module")
def impatient_server():
    settings = ServerSettings(request_timeout=0.4)
    with LiveServer.for_models([MODEL], plugins={"sentence-transformers": widgetd_sentence_transformers}, settings=settings) as server:
        yield server


def test_the_cpu_is_idle_within_a_second_of_a_504(impatient_server):
    url = f"{impatient_server.url}/models/{MODEL}/pipeline/feature-extraction"
    busy_before = cpu_seconds()
    response = httpx.post(url, json={"inputs": TEXTS}, timeout=30)
    assert response.status_code == 504, response.text
    assert cpu_seconds() - busy_before > 0.3, "the model was not busy: the test proves nothing"
    time.sleep(1.0)
    assert cpu_used_over(1.0) < 0.5  # of two cores; encoding for nobody uses about 2
    assert httpx.post(url, json={"inputs": "still serving"}).status_code == 200


def test_a_client_that_leaves_mid_batch_stops_its_work(impatient_server):
    body = httpx.Request("POST", f"{impatient_server.url}/models/{MODEL}/pipeline/feature-extraction", json={"inputs": TEXTS})
    with socket.create_connection(("127.0.0.1", impatient_server.port)) as client:
        head = f"POST {body.url.raw_path.decode()} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(body.content)}\r\n\r\n"
        client.sendall(head.encode() + body.content)
        time.sleep(0.2)
    time.sleep(1.0)
    assert cpu_used_over(1.0) < 0.5  # of two cores; encoding for nobody uses about 2
