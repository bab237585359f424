"""Deploying widgetd the two ways Ray users do, and across two nodes joined by a real network interface."""

from __future__ import annotations

import concurrent.futures
import os
from collections import Counter
from pathlib import Path

import httpx
import pytest

from widgetd.testing.ray_cluster import BIN, HEAD_IP, NODE_IP, replicas_of, wait_for

SENTENCES = {"source_sentence": "a cat sat on the mat", "sentences": ["a cat sat", "stocks fell sharply"]}


def test_serve_run_takes_widgetd_as_an_application_builder(cluster, models, tmp_path):
    """``serve run widgetd.ray:app model_id=... replicas=2``: Ray's own CLI, widgetd's options as its args."""
    command = [
        str(BIN / "serve"), "run", "--address", cluster.address, "widgetd.ray:app", f"model_id={models['toy']}", "replicas=2", "api_key=sesame",
    ]
    with cluster.running(command, log=tmp_path / "serve-run.log") as client:
        key = {"authorization": "Bearer sesame"}
        answer = client.post("/", json={"inputs": "a fine day"}, headers=key)
        assert answer.status_code == 200 and answer.json()[0][0]["label"], answer.text
        client.headers.update(key)
        wait_for(lambda: len(replicas_of(client, "toy")) == 2, 30, "both replicas in /info")
        assert client.get("/info").json()["models"][0]["deployment"]["num_replicas"] == 2
        # The replicas hold the model: the admin API says how to change them the Ray way.
        for refused in (client.post("/models/toy/reload"), client.delete("/models/toy")):
            assert refused.status_code == 409 and "serve deploy" in refused.json()["error"]
        assert httpx.post(f"{cluster.url}/", json={"inputs": "no key"}).status_code == 401


def test_a_second_node_in_its_own_network_namespace_receives_a_replica(cluster, models, tmp_path):
    if not cluster.has_namespace:
        if os.environ.get("WIDGETD_REQUIRE_NETNS"):
            pytest.fail("WIDGETD_REQUIRE_NETNS is set but this machine would not make a network namespace (ip netns)")
        pytest.skip("this machine does not allow network namespaces (ip netns, needs root)")
    cluster.start_node_in_namespace()
    try:
        arguments = ("--model-id", str(models["embedder"]), "--replicas", "2", "--max-replicas-per-node", "1")
        with cluster.serving(*arguments, log=tmp_path / "serve.log") as client:
            wait_for(
                lambda: {replica["node_ip"] for replica in replicas_of(client, "embedder")} == {HEAD_IP, NODE_IP},
                60,
                "one replica on each node",
            )
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: client.post("/", json={"inputs": SENTENCES}), range(64)))
            nodes = Counter(answer.headers["x-widgetd-node"] for answer in answers if answer.status_code == 200)
            assert sum(nodes.values()) == 64 and set(nodes) == {HEAD_IP, NODE_IP}, nodes
            metrics = client.get("/metrics").text
            assert f'widgetd_replicas{{deployment="model-0-embedder",node="{NODE_IP}"}} 1' in metrics
    finally:
        cluster.stop_node_in_namespace()


def test_the_example_serve_config_builds_widgetd():
    """deploy/ray-serve.yaml is a valid Ray Serve config whose args widgetd takes (the default model is on PyPI)."""
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from widgetd.ray import app

    config = ServeDeploySchema.model_validate(yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "ray-serve.yaml").read_text()))
    [application] = config.applications
    assert application.import_path == "widgetd.ray:app"
    built = app(application.args)
    assert built._bound_deployment.name == "widgetd"
