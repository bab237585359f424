"""The server does what its /openapi.json says, checked by schemathesis (every check) on all 25 tasks."""

from __future__ import annotations

import httpx
import pytest

from widgetd.testing.openapi import assert_openapi_holds


@pytest.fixture(scope="module")
def openapi(toy_server) -> dict:
    return httpx.get(f"{toy_server.url}/openapi.json").json()


def test_the_document_names_each_served_route(openapi, toy_server):
    paths = openapi["paths"]
    assert {"/", "/health", "/info", "/metrics", "/models/toy-qa", "/models/toy-qa/health"} <= set(paths)
    assert {f"/models/toy-qa/pipeline/{task}" for task in toy_server.state.models[0].tasks} <= set(paths)
    assert "/models/{model_id}/pipeline/fill-mask" not in paths


def test_a_bare_text_is_documented_only_where_it_is_a_whole_request(openapi):
    content = lambda task: openapi["paths"][f"/models/toy-qa/pipeline/{task}"]["post"]["requestBody"]["content"]
    assert content("text-classification")["text/plain"]["schema"] == {"type": "string", "minLength": 1}
    assert "text/plain" not in content("question-answering") and "text/plain" not in content("zero-shot-classification")
    assert set(content("automatic-speech-recognition")) == {"application/json", "audio/*"}


@pytest.mark.parametrize(("method", "path", "allow"), [("GET", "/models/toy-qa/pipeline/fill-mask", "POST"), ("POST", "/models/toy-qa/health", "GET")])
def test_a_method_a_route_does_not_answer_is_405_with_allow(toy_server, method, path, allow):
    response = httpx.request(method, f"{toy_server.url}{path}")
    assert response.status_code == 405 and response.headers["allow"] == allow and response.json()["error"]


@pytest.mark.parametrize(("path", "allow"), [("/", "GET, POST, OPTIONS"), ("/models/toy-qa", "GET, POST, OPTIONS"), ("/models/toy-qa/pipeline/fill-mask", "POST, OPTIONS"), ("/models/toy-qa/info", "GET, OPTIONS")])
def test_options_lists_exactly_the_methods_of_the_path(toy_server, path, allow):
    response = httpx.options(f"{toy_server.url}{path}")
    assert response.status_code == 204 and response.headers["allow"] == allow


def test_schemathesis_finds_no_disagreement(toy_server):
    assert_openapi_holds(toy_server.url, max_examples=20)


def test_operation_ids_are_unique_with_several_models_serving_the_same_tasks(tmp_path):
    from tests.toy_plugin import ToyPlugin, make_toy_model
    from widgetd.testing.server import LiveServer

    models = [str(make_toy_model(tmp_path / name)) for name in ("toy-a", "toy-b")]
    with LiveServer.for_models(models, plugins={"toy": ToyPlugin()}) as server:
        document = httpx.get(f"{server.url}/openapi.json").json()
    ids = [operation["operationId"] for path in document["paths"].values() for operation in path.values() if "operationId" in operation]
    assert len(ids) == len(set(ids)) > 28


def test_options_of_a_path_that_is_no_route_is_404(toy_server):
    response = httpx.options(f"{toy_server.url}/models/toy-qa/nowhere")
    assert response.status_code == 404 and response.json()["error"]
