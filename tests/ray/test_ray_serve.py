"""widgetd on a real Ray cluster: the same routes and clients as ``widgetd serve``, replicas, scaling to
zero, models on demand, cancellation, and a replica killed under load."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections import Counter

import httpx
import pytest
from huggingface_hub import InferenceClient
from openai import OpenAI

from widgetd.testing.ray_cluster import replicas_of, wait_for

SENTENCES = {"source_sentence": "a cat sat on the mat", "sentences": ["a cat sat", "stocks fell sharply"]}


@pytest.fixture(scope="module")
def widgetd(cluster, models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray-app")
    config = folder / "widgetd.toml"
    config.write_text(
        f"""
[server]
allow_models = ["org/*"]
scale_down_delay = 2

[[models]]
model_id = "{models['embedder']}"
replicas = 2

[[models]]
model_id = "{models['scaled']}"
autoscale = "0:1"

[[models]]
model_id = "{models['toy']}"

[[models]]
model_id = "{models['chat']}"

[[models]]
model_id = "{models['slow']}"
"""
    )
    with cluster.serving("--config", str(config), log=folder / "serve.log") as client:
        yield client


def test_health_and_info_describe_every_deployment(widgetd):
    assert widgetd.get("/health").json() == {"status": "ok", "models": ["embedder", "scaled", "toy", "chat", "slow"]}
    info = {model["model_id"]: model for model in widgetd.get("/info").json()["models"]}
    embedder = info["embedder"]["deployment"]
    assert embedder["name"] == "model-0-embedder" and embedder["num_replicas"] == 2
    wait_for(lambda: len(replicas_of(widgetd, "embedder")) == 2, 30, "two replicas in /info")
    for replica in replicas_of(widgetd, "embedder"):
        assert replica["node_ip"] and replica["replica_id"]
    scaled = info["scaled"]
    assert scaled["state"] == "idle" and scaled["deployment"]["min_replicas"] == 0
    metrics = widgetd.get("/metrics").text
    assert 'widgetd_replicas{deployment="model-0-embedder"' in metrics


def test_official_clients_are_answered(widgetd, cluster):
    client = InferenceClient(base_url=f"{cluster.url}/models/embedder")
    scores = client.sentence_similarity(SENTENCES["source_sentence"], other_sentences=SENTENCES["sentences"])
    assert len(scores) == 2 and scores[0] > scores[1]
    vectors = client.feature_extraction("a cat sat on the mat")
    assert vectors.shape[-1] == 32 or vectors.ndim >= 1
    embeddings = OpenAI(base_url=f"{cluster.url}/v1", api_key="unused").embeddings.create(model="embedder", input=["one", "two"])
    assert len(embeddings.data) == 2 and embeddings.usage.prompt_tokens > 0


def test_generation_streams_from_the_replica_as_from_one_process(widgetd, cluster):
    """Chat and text-generation run on the replica's continuous batching; the ingress streams its tokens."""
    openai = OpenAI(base_url=f"{cluster.url}/v1", api_key="unused")
    messages = [{"role": "user", "content": "tell me about the river"}]
    whole = openai.chat.completions.create(model="chat", messages=messages, max_tokens=12, temperature=0)
    chunks = list(openai.chat.completions.create(
        model="chat", messages=messages, max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True}
    ))
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert streamed == whole.choices[0].message.content and streamed
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens > 0
    client = InferenceClient(base_url=f"{cluster.url}/models/chat")
    pieces = list(client.text_generation("the river", max_new_tokens=6, stream=True, details=True))
    assert len(pieces) == 6 and pieces[-1].details.finish_reason == "length"
    whole = client.text_generation("the river", max_new_tokens=6, return_full_text=False)
    assert whole == "".join(piece.token.text for piece in pieces)
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"enum": ["Paris", "Oslo"]}}, "required": ["city"]}}}
    called = openai.chat.completions.create(model="chat", messages=messages, tools=[weather], tool_choice="required", max_tokens=100, temperature=0)
    assert called.choices[0].finish_reason == "tool_calls"
    assert json.loads(called.choices[0].message.tool_calls[0].function.arguments)["city"] in ("Paris", "Oslo")


def test_served_models_are_mcp_tools_answering_from_their_replicas(widgetd, cluster):
    from widgetd.testing.conformance.tools import mcp_tool_calls

    tool, [result] = mcp_tool_calls(cluster.url, {}, "sentence_similarity__embedder", [{"inputs": SENTENCES}], 120)
    assert tool is not None and "embedder" in tool.description
    expected = widgetd.post("/models/embedder/pipeline/sentence-similarity", json={"inputs": SENTENCES}).json()
    assert result.structured_content == {"result": expected}


def test_errors_keep_their_status_across_the_cluster(widgetd):
    answer = widgetd.post("/models/embedder", json={"inputs": {"source_sentence": "a"}})
    assert answer.status_code == 400 and answer.json()["field"] == "inputs.sentences"
    assert widgetd.post("/models/nobody/here", json={"inputs": "x"}).status_code == 404
    refused = widgetd.post("/models/toy", json={"inputs": "please refuse this"})
    assert refused.status_code == 400 and refused.json()["error"] == "the toy backend refuses this input"
    # One request id, the proxy's, in the header and the error body; the client's when it sends one.
    for headers in ({}, {"x-request-id": "ray-client-1"}):
        refused = widgetd.post("/models/toy", json={"inputs": "please refuse this"}, headers=headers)
        [request_id] = refused.headers.get_list("x-request-id")
        assert refused.json()["request_id"] == request_id == headers.get("x-request-id", request_id)


def test_both_replicas_answer(widgetd):
    wait_for(lambda: len(replicas_of(widgetd, "embedder")) == 2, 30, "two replicas in /info")
    seen = Counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: widgetd.post("/models/embedder", json={"inputs": SENTENCES}), range(64)))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        seen[answer.headers["x-widgetd-replica"]] += 1
    assert len(seen) == 2, seen
    assert {replica["replica_id"] for replica in replicas_of(widgetd, "embedder")} == set(seen)


def test_a_model_scaled_to_zero_starts_a_replica_on_request_and_stops_it_when_idle(widgetd):
    assert replicas_of(widgetd, "scaled", state=None) == []
    first = widgetd.post("/models/scaled", json={"inputs": SENTENCES})
    assert first.status_code == 503 and "currently loading" in first.json()["error"]
    assert first.json()["estimated_time"] > 0 and first.headers["retry-after"]
    waited = widgetd.post("/models/scaled", json={"inputs": SENTENCES}, headers={"x-wait-for-model": "true"})
    assert waited.status_code == 200, waited.text
    wait_for(lambda: len(replicas_of(widgetd, "scaled")) == 1, 10, "the new replica in /info")
    assert widgetd.get("/health").json()["status"] == "ok"
    # Idle for the scale-down delay (2 s) and the autoscaler's look-back: the replica stops.
    wait_for(lambda: replicas_of(widgetd, "scaled", state=None) == [], 120, "the scaled model's replica to stop")
    wait_for(lambda: widgetd.get("/models/scaled/info").json()["models"][0]["state"] == "idle", 30, "the model to be idle")


def test_models_on_demand_load_by_id_on_the_cluster(widgetd, hub):
    refused = widgetd.post("/models/other/model", json={"inputs": "x"})
    assert refused.status_code == 404 and "org/*" in refused.json()["error"]
    first = widgetd.post("/models/org/tiny", json={"inputs": SENTENCES})
    assert first.status_code == 503 and first.json()["error"] == "Model org/tiny is currently loading"
    waited = widgetd.post("/models/org/tiny", json={"inputs": SENTENCES}, headers={"x-wait-for-model": "true"})
    assert waited.status_code == 200, waited.text
    info = widgetd.get("/models/org/tiny/info").json()["models"][0]
    assert info["deployment"]["name"] == "on-demand" and len(info["deployment"]["replicas"]) == 1


def test_an_on_demand_model_that_fails_to_load_in_its_replica_says_why(widgetd):
    answer = widgetd.post("/models/org/broken", json={"inputs": SENTENCES}, headers={"x-wait-for-model": "true"})
    assert answer.status_code == 503 and answer.json()["error"].startswith("model org/broken failed to load")
    assert "Traceback" not in answer.text
    assert widgetd.get("/models/org/broken/info").json()["models"][0]["state"] == "failed"


def test_a_client_leaving_cancels_its_request_on_the_replica(widgetd, cluster):
    busy = threading.Thread(target=lambda: widgetd.post("/models/toy", json={"inputs": "dawdle first"}))
    busy.start()
    time.sleep(0.3)
    with pytest.raises(httpx.ReadTimeout):
        widgetd.post("/models/toy", json={"inputs": "dawdle and leave"}, timeout=0.5)
    busy.join()
    logs = list((cluster.temp_dir / "session_latest" / "logs" / "serve").glob("replica_widgetd_model-2-toy_*.log"))
    wait_for(lambda: any("answer CANCELLED" in log.read_text() for log in logs), 30, "the replica to log the cancelled call")
    after = widgetd.post("/models/toy", json={"inputs": "quick"})
    assert after.status_code == 200


def test_killing_a_replica_under_load_loses_no_request(widgetd, cluster):
    [victim, _] = replicas_of(widgetd, "embedder")
    stop = threading.Event()
    statuses: Counter = Counter()

    def load() -> None:
        with httpx.Client(base_url=cluster.url, timeout=60) as client:
            while not stop.is_set():
                statuses[client.post("/models/embedder", json={"inputs": SENTENCES}).status_code] += 1

    workers = [threading.Thread(target=load) for _ in range(8)]
    for worker in workers:
        worker.start()
    time.sleep(2)
    cluster.kill_actor(f"SERVE_REPLICA::widgetd#model-0-embedder#{victim['replica_id']}")
    time.sleep(4)
    stop.set()
    for worker in workers:
        worker.join()
    assert set(statuses) == {200}, statuses
    assert sum(statuses.values()) > 50
    wait_for(
        lambda: len(ids := {r["replica_id"] for r in replicas_of(widgetd, "embedder")}) == 2 and victim["replica_id"] not in ids,
        120,
        "the deployment to be back at two replicas",
    )


def test_a_model_whose_only_replica_died_is_loading_until_ray_replaces_it(widgetd, cluster):
    """Its replica takes 4 s to load: meanwhile the model is loading, as on one server, then serves again."""
    [victim] = replicas_of(widgetd, "slow")
    cluster.kill_actor(f"SERVE_REPLICA::widgetd#model-4-slow#{victim['replica_id']}")
    health = wait_for(lambda: (h := widgetd.get("/models/slow/health")).status_code == 503 and h, 30, "the model to be loading")
    assert health.json()["problems"] == {"slow": "loading"} and widgetd.get("/health").json()["status"] == "degraded"
    answer = widgetd.post("/models/slow", json={"inputs": "a fine day"})
    assert answer.status_code == 503 and answer.json()["error"] == "Model slow is currently loading"
    waited = widgetd.post("/models/slow", json={"inputs": "a fine day"}, headers={"x-wait-for-model": "true"})
    assert waited.status_code == 200 and waited.headers["x-widgetd-replica"] != victim["replica_id"]
    wait_for(lambda: widgetd.get("/health").json()["status"] == "ok", 30, "the server to be healthy again")
