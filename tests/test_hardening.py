"""Hostile and unlucky traffic: idle and slow connections, malformed HTTP and bodies, random paths."""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import socket
import string
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.toy_plugin import TOY_TASKS, ToyPlugin, make_toy_model
from widgetd.app import ServerSettings
from widgetd.limits import Limits
from widgetd.logs import mask_secrets_in_logs
from widgetd.testing.audio import encode, tone
from widgetd.testing.images import render_image
from widgetd.testing.server import LiveServer


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    settings = ServerSettings(header_timeout=0.5, body_timeout=0.5, keep_alive_timeout=0.5, max_connections=40)
    model = make_toy_model(tmp_path_factory.mktemp("models") / "toy-qa")
    with LiveServer.for_models([str(model)], plugins={"toy": ToyPlugin()}, settings=settings) as server:
        yield server


def connect(server: LiveServer, send: bytes = b"") -> socket.socket:
    client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    if send:
        client.sendall(send)
    return client


def received(client: socket.socket) -> bytes:
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    return data


def json_error(raw: bytes, status: int) -> dict:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status}".encode()), raw[:200]
    assert b"content-type: application/json" in head.lower()
    return json.loads(body)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_idle_and_slow_connections_are_closed_and_their_descriptors_freed(strict_server):
    baseline = open_descriptors()
    idle = [connect(strict_server) for _ in range(10)]
    slow_headers = [connect(strict_server, b"POST / HTTP/1.1\r\nhost: x\r\n") for _ in range(5)]
    slow_body = [
        connect(strict_server, b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"in")
        for _ in range(5)
    ]
    for client in idle:
        assert received(client) == b"", "an idle connection is closed without a word"
    for client in slow_headers:
        assert "headers did not arrive within 0.5 s" in json_error(received(client), 408)["error"]
    for client in slow_body:
        assert "body did not arrive within 0.5 s" in json_error(received(client), 408)["error"]
    for client in idle + slow_headers + slow_body:
        client.close()
    time.sleep(0.2)
    assert open_descriptors() <= baseline
    assert httpx.post(strict_server.url, json={"inputs": {"question": "q", "context": "c"}}).status_code == 200


def test_an_idle_keep_alive_connection_is_closed(strict_server):
    client = connect(strict_server, b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
    started = time.monotonic()
    assert b"200 OK" in received(client)
    assert time.monotonic() - started < 3


def test_connections_past_the_cap_get_503_json(strict_server):
    held = [connect(strict_server) for _ in range(40)]
    try:
        extra = connect(strict_server)
        error = json_error(received(extra), 503)
        assert "at most 40 connections" in error["error"]
    finally:
        for client in held:
            client.close()


@pytest.mark.parametrize("garbage", [b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nbad header line\r\n\r\n", b"\x00\xff\x16\x03\x01\r\n\r\n"])
def test_malformed_http_gets_the_json_error_contract(strict_server, garbage):
    client = connect(strict_server, garbage)
    assert "not valid HTTP/1.1" in json_error(received(client), 400)["error"]


def test_metrics_stay_small_whatever_the_paths(strict_server):
    before = len(httpx.get(f"{strict_server.url}/metrics").text)
    noise = random.Random(0)

    def word() -> str:
        return "".join(noise.choices(string.ascii_letters + string.digits + "-_.", k=noise.randint(1, 60)))

    with httpx.Client(base_url=strict_server.url) as client:
        for n in range(10_000):
            path = noise.choice([f"/models/toy-qa/pipeline/{word()}", f"/models/{word()}/{word()}", f"/{word()}"])
            status = client.post(path, json={"inputs": "x"}).status_code
            assert status < 500, path
    metrics = httpx.get(f"{strict_server.url}/metrics").text
    assert len(metrics) - before < 3_000
    assert 'task="unknown"' in metrics


ROUTES = ["/", "/models/toy-qa", *(f"/models/toy-qa/pipeline/{task}" for task in TOY_TASKS)]
CONTENT_TYPES = [None, "application/json", "text/plain", "application/octet-stream", "audio/wav", "image/png", "application/json; charset=utf-16"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["inputs", "parameters", "top_k", "x"]), children, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    json_values.map(lambda value: json.dumps({"inputs": value, "parameters": {"top_k": 2}}).encode()),
    st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 5000).map(lambda depth: b'{"inputs":' * depth + b"1" + b"}" * depth),
    st.sampled_from(["utf-16", "utf-32", "latin-1", "cp1252"]).map(lambda codec: '{"inputs": "Zoë 東京"}'.encode(codec, "replace")),
    st.binary(min_size=1, max_size=40).map(lambda raw: b'{"inputs": "' + raw + b'"}'),
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), body=bodies, content_type=st.sampled_from(CONTENT_TYPES))
def test_no_body_at_any_route_is_a_server_error(strict_server, route, body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(f"{strict_server.url}{route}", content=body, headers=headers)
    assert response.status_code < 500, (route, body[:80], response.text[:300])
    if response.status_code >= 400:
        assert response.json()["error"]


def test_secrets_never_reach_a_log_line(caplog):
    mask_secrets_in_logs(["hf_s3cretT0ken"])
    logger = logging.getLogger("widgetd.test")
    with caplog.at_level(logging.INFO):
        logger.info("the Hub answered %s", "authorization: Bearer hf_s3cretT0ken")
        try:
            raise RuntimeError("echoed headers: hf_s3cretT0ken")
        except RuntimeError:
            logger.exception("fetching failed with %r", {"token": "hf_s3cretT0ken"})
    text = caplog.text + "".join(record.exc_text or "" for record in caplog.records)
    assert "hf_s3cretT0ken" not in text and text.count("***") >= 3


def bomb_png(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_media_errors_name_no_python_object(limited_server):
    """A truncated WAV: the decoder's reason, without the repr of the buffer it read."""
    truncated = encode(tone(0.5, 16000), 16000, "WAV")[:30]
    response = httpx.post(f"{limited_server.url}/models/toy-qa/pipeline/automatic-speech-recognition", content=truncated, headers={"content-type": "audio/wav"})
    assert response.status_code == 415, response.text
    message = response.json()["error"]
    assert "No 'data' chunk marker" in message and " at 0x" not in message and "<" not in message and "BytesIO" not in message


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    limits = Limits(max_inputs=5, max_characters=50, max_audio_seconds=1.0, max_image_pixels=100 * 100, max_response_bytes=2_000)
    model = make_toy_model(tmp_path_factory.mktemp("models") / "toy-qa")
    with LiveServer.for_models([str(model)], plugins={"toy": ToyPlugin()}, settings=ServerSettings(limits=limits)) as server:
        yield server


@pytest.mark.parametrize(
    ("task", "body", "field", "says"),
    [
        ("feature-extraction", {"inputs": ["a"] * 6}, "inputs", "6 items, more than the 5"),
        ("sentence-similarity", {"inputs": {"source_sentence": "a", "sentences": ["b"] * 5}}, "inputs", "6 texts, more than the 5"),
        ("text-classification", {"inputs": "x" * 51}, "inputs", "51 characters, more than the 50"),
        ("question-answering", {"inputs": {"question": "q", "context": "c" * 60}}, "inputs.context", "60 characters"),
        ("zero-shot-classification", {"inputs": "x", "parameters": {"candidate_labels": list("abcdef")}}, "parameters.candidate_labels", "6 items"),
        ("automatic-speech-recognition", {"inputs": base64.b64encode(encode(tone(1.5, 8000), 8000, "WAV")).decode()}, "inputs", "lasts 1.5 s"),
        ("image-classification", {"inputs": base64.b64encode(render_image(101, 100)).decode()}, "inputs", "101x100 pixels"),
        ("image-classification", {"inputs": base64.b64encode(bomb_png(20_000, 20_000)).decode()}, "inputs", "claims 400000000 pixels"),
        ("text-to-image", {"inputs": "a", "parameters": {"num_inference_steps": 101}}, "parameters.num_inference_steps", "101, more than the 100"),
        ("text-to-image", {"inputs": "a", "parameters": {"width": 4096, "height": 2048}}, "parameters.width", "more than the 4194304"),
        ("image-to-image", {"inputs": base64.b64encode(render_image(10, 10)).decode(), "parameters": {"target_size": {"width": 4096, "height": 4096}}}, "parameters.target_size", "--max-generated-pixels"),
    ],
)
def test_a_request_over_a_limit_is_413_naming_it_and_never_reaches_the_model(limited_server, task, body, field, says):
    pipeline = limited_server.state.models[0].batcher.pipeline
    seen = len(pipeline.seen)
    response = httpx.post(f"{limited_server.url}/models/toy-qa/pipeline/{task}", json=body)
    assert response.status_code == 413, response.text
    assert response.json()["field"] == field and says in response.json()["error"]
    assert len(pipeline.seen) == seen


def test_an_answer_over_the_response_limit_is_413(limited_server):
    url = f"{limited_server.url}/models/toy-qa/pipeline/text-generation"
    answer = httpx.post(url, json={"inputs": "once", "parameters": {"max_new_tokens": 5}})
    assert answer.status_code == 200
    response = httpx.post(url, json={"inputs": "once", "parameters": {"max_new_tokens": 400}})
    assert response.status_code == 413 and "bytes, more than the 2000" in response.json()["error"]


def test_the_limits_are_in_info(limited_server):
    assert httpx.get(f"{limited_server.url}/info").json()["limits"] == {
        "max_inputs": 5, "max_characters": 50, "max_audio_seconds": 1.0, "max_image_pixels": 10_000, "max_response_bytes": 2_000,
        "max_inference_steps": 100, "max_generated_pixels": 2048 * 2048, "prefix_cache_bytes": 1024**3,
        "kv_cache_bytes": 0, "prefill_chunk": 0,
    }
