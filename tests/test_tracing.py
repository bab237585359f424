"""OpenTelemetry traces: ``widgetd serve --otlp-endpoint`` exports, to a real OTLP/HTTP receiver decoding the
protobuf it gets, a span per request continuing the client's ``traceparent``, with the model, task, runtime
and status, and children for decoding, the queue, the batch, the model's call and encoding."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.test_on_demand import env, publish  # noqa: F401 (env is a fixture)
from widgetd import tracing
from widgetd.testing.otlp import OtlpReceiver
from widgetd.testing.process import ServeProcess

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SERVER = 2  # SpanKind.SERVER in OTLP's protobuf


def test_each_request_is_a_span_of_the_clients_trace_with_its_stages(local_hub, env, tmp_path):  # noqa: F811
    publish(local_hub, tmp_path, "org/served", scale=1, answer_seconds=0.2)
    otel = {"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": "widgetd-under-test", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci"}
    with OtlpReceiver() as receiver, ServeProcess(["--model-id", "org/served", "--otlp-endpoint", receiver.url], {**env, **otel}) as server:
        url = f"{server.url}/models/org/served"
        traced = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "x-request-id": "traced-1"}
        with ThreadPoolExecutor(4) as pool:  # company, so that the traced request may share a batch
            others = [pool.submit(httpx.post, url, json={"inputs": "abc"}, timeout=30) for _ in range(3)]
            answer = httpx.post(url, json={"inputs": "abcd"}, headers=traced, timeout=30)
            assert answer.status_code == 200 and all(other.result().status_code == 200 for other in others)
        refused = httpx.post(url, json={"inputs": 5}, headers={"x-request-id": "refused-1"})
        assert refused.status_code == 400
        spans = receiver.wait_for(lambda spans: {"traced-1", "refused-1"} <= {span.attributes.get("widgetd.request_id") for span in spans})

    [request] = [span for span in spans if span.attributes.get("widgetd.request_id") == "traced-1"]
    assert (request.trace_id, request.parent_span_id, request.kind) == (TRACE_ID, PARENT_ID, SERVER)
    assert request.name == "POST feature-extraction"
    assert {key: request.attributes.get(key) for key in ("widgetd.model", "widgetd.task", "widgetd.runtime", "widgetd.status", "http.response.status_code")} == {
        "widgetd.model": "org/served", "widgetd.task": "feature-extraction", "widgetd.runtime": "torch", "widgetd.status": 200, "http.response.status_code": 200,
    }
    assert request.resource["service.name"] == "widgetd-under-test" and request.resource["deployment.environment"] == "ci"
    assert request.resource["service.version"]
    stages = receiver.children_of(request)
    assert set(stages) == {"decode", "queue", "batch", "model", "encode"}, stages
    assert all(stage.trace_id == TRACE_ID for stage in stages.values())
    assert 1 <= stages["batch"].attributes["widgetd.batch_size"] <= 4
    # In the order they happened, each within the request's span.
    decode, queue, batch, model, encode = (stages[name] for name in ("decode", "queue", "batch", "model", "encode"))
    assert request.start_ns <= decode.start_ns <= decode.end_ns <= queue.start_ns <= queue.end_ns <= batch.start_ns
    assert batch.start_ns <= model.start_ns and model.end_ns - model.start_ns >= 150_000_000 and model.end_ns <= batch.end_ns
    assert batch.end_ns <= encode.start_ns <= encode.end_ns <= request.end_ns

    [bad] = [span for span in spans if span.attributes.get("widgetd.request_id") == "refused-1"]
    assert bad.attributes["http.response.status_code"] == 400 and bad.status_code != 2  # a client's error is not the server's
    assert bad.trace_id != TRACE_ID and not bad.parent_span_id  # no traceparent: a trace of its own
    assert set(receiver.children_of(bad)) == {"decode"}
    assert receiver.paths and all(path == "/v1/traces" for path in receiver.paths)


def test_without_an_endpoint_nothing_is_wrapped():
    app = object()
    assert not tracing.enabled() and tracing.traced(app) is app
    assert tracing.span("decode") is tracing.span("encode")  # one shared no-op, nothing made per request


def test_an_endpoint_that_is_not_a_url_is_refused_naming_it():
    done = subprocess.run([sys.executable, "-m", "widgetd", "serve", "--otlp-endpoint", "collector:4318"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "--otlp-endpoint 'collector:4318' is not an http(s) URL" in done.stderr, done.stderr
