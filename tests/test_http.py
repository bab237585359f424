"""The HTTP contract over a real server: request forms, routes, errors, headers."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import httpx
import pytest

from tests.toy_plugin import ToyPlugin, make_toy_model
from widgetd.app import ServerSettings
from widgetd.testing.server import LiveServer

QA = {"inputs": {"question": "Where does Sarah live?", "context": "My name is Sarah and I live in London"}}


def assert_json_error(response: httpx.Response, status: int, *fragments: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text and "traceback:" not in response.text and 'File "' not in response.text
    for fragment in fragments:
        assert fragment in body["error"]
    return body


def test_json_request_gets_the_contract_answer(toy_server):
    response = httpx.post(toy_server.url, json=QA)
    assert response.status_code == 200
    answer = response.json()
    context = QA["inputs"]["context"]
    assert set(answer) == {"answer", "score", "start", "end"}
    assert context[answer["start"] : answer["end"]] == answer["answer"]


def test_top_k_above_one_answers_a_list(toy_server):
    body = {**QA, "parameters": {"top_k": 3}}
    answers = httpx.post(toy_server.url, json=body).json()
    assert isinstance(answers, list) and 1 <= len(answers) <= 3


def test_bare_question_answering_dict_is_accepted(toy_server):
    response = httpx.post(toy_server.url, json=QA["inputs"])
    assert response.status_code == 200
    assert response.json()["answer"]


def test_legacy_options_are_ignored(toy_server):
    body = {**QA, "options": {"wait_for_model": True, "use_cache": False}}
    assert httpx.post(toy_server.url, json=body).status_code == 200


def test_raw_text_body_for_a_text_task(toy_server):
    url = f"{toy_server.url}/models/toy-qa/pipeline/feature-extraction"
    raw = httpx.post(url, content="hello world", headers={"content-type": "text/plain"})
    wrapped = httpx.post(url, json={"inputs": "hello world"})
    assert raw.status_code == 200
    assert raw.json() == wrapped.json()


def test_other_tasks_of_a_model_are_served_under_pipeline(toy_server):
    url = f"{toy_server.url}/models/toy-qa/pipeline/sentence-similarity"
    response = httpx.post(url, json={"inputs": {"source_sentence": "a b", "sentences": ["a b", "c"]}})
    assert response.status_code == 200
    assert response.json() == [1.0, 0.0]


def test_model_route_answers_its_default_task(toy_server):
    response = httpx.post(f"{toy_server.url}/models/toy-qa", json=QA)
    assert response.status_code == 200
    assert "answer" in response.json()


def test_success_headers(toy_server):
    response = httpx.post(toy_server.url, json=QA, headers={"x-request-id": "abc123"})
    assert float(response.headers["x-compute-time"]) >= 0
    assert response.headers["x-compute-type"] == "cpu"
    assert response.headers["x-request-id"] == "abc123"
    assert int(response.headers["x-compute-characters"]) == len("Where does Sarah live?My name is Sarah and I live in London")


def test_compute_characters_count_the_inputs_text_not_the_bodys_bytes(toy_server):
    url = f"{toy_server.url}/models/toy-qa/pipeline/text-classification"
    response = httpx.post(url, json={"inputs": "Zoë 東京 🙂", "parameters": {"top_k": 1}})
    assert response.headers["x-compute-characters"] == str(len("Zoë 東京 🙂"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputs": {"question": "q"}}, "inputs"),
        ({"inputs": {"question": "q", "context": "c"}, "parameters": {"top_k": 0}}, "parameters.top_k"),
        ({"inputs": {"question": "q", "context": "c"}, "parameters": {"top_k": "3"}}, "parameters.top_k"),
        ({"inputs": {"question": "q", "context": "c"}, "parameters": {"topk": 3}}, "topk"),
        ({"inputs": {"question": 1, "context": "c"}}, "inputs.question"),
        ({"parameters": {}}, None),
        ({"inputs": "just text"}, "inputs"),
    ],
)
def test_invalid_requests_are_400_naming_the_field(toy_server, body, field):
    url = f"{toy_server.url}/models/toy-qa/pipeline/question-answering"
    error = assert_json_error(httpx.post(url, json=body), 400)
    if field:
        assert field in error["error"] or error.get("field") == field


def test_bodies_that_are_not_requests(toy_server):
    url = f"{toy_server.url}/models/toy-qa/pipeline/question-answering"
    assert_json_error(httpx.post(url, content=b""), 400, "empty")
    assert_json_error(httpx.post(url, content=b"\xff\xfe\x00bad"), 400, "UTF-8")
    assert_json_error(httpx.post(url, content=b'{"inputs": '), 400)
    # On the default route too, the error is the default task's, even after trying the others.
    assert_json_error(httpx.post(toy_server.url, content=b"\xff\xfe\x00bad"), 400, "UTF-8")


def test_oversized_body_is_413(toy_server):
    big = {"inputs": {"question": "q", "context": "x" * 2_000_000}}
    assert_json_error(httpx.post(toy_server.url, json=big), 413, "limit")
    assert httpx.post(toy_server.url, json=QA).status_code == 200


def test_unknown_model_task_and_route_are_404(toy_server):
    unknown = assert_json_error(httpx.post(f"{toy_server.url}/models/org/nope", json=QA), 404, "org/nope")
    assert "toy-qa" in unknown["error"]
    assert_json_error(
        httpx.post(f"{toy_server.url}/models/toy-qa/pipeline/text-to-video", json={"inputs": "x"}), 404, "text-to-video"
    )
    assert_json_error(httpx.post(f"{toy_server.url}/models/toy-qa/whatever", json=QA), 404)
    assert_json_error(httpx.get(f"{toy_server.url}/no/such/route"), 404)


def test_wrong_method_is_405_json(toy_server):
    assert_json_error(httpx.post(f"{toy_server.url}/health"), 405)


def test_backend_failure_is_500_with_a_message_and_the_server_keeps_serving(toy_server):
    body = {"inputs": {"question": "explode", "context": "c"}}
    assert_json_error(httpx.post(toy_server.url, json=body), 500, "exploded as asked (traceback in the server's log)")
    assert httpx.post(toy_server.url, json=QA).status_code == 200


def test_an_answer_that_breaks_the_contract_is_a_500_naming_backend_task_and_field(toy_server):
    url = f"{toy_server.url}/models/toy-qa/pipeline/text-classification"
    results: dict[str, httpx.Response] = {}
    texts = ["misanswer", "good", "dawdle"]
    threads = [threading.Thread(target=lambda t=t: results.__setitem__(t, httpx.post(url, json={"inputs": t}))) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    error = assert_json_error(results["misanswer"], 500, "backend 'toy'", "text-classification", "Expected `object`, got `str`")
    assert error["field"] == "answer[0]" and results["misanswer"].headers["x-error-code"] == "InvalidAnswer"
    assert results["good"].status_code == 200 and results["dawdle"].status_code == 200
    metrics = httpx.get(f"{toy_server.url}/metrics").text
    assert 'widgetd_invalid_answers_total{model="toy-qa",task="text-classification"} 1' in metrics
    assert httpx.post(url, json={"inputs": "good"}).status_code == 200


def test_backend_refusal_is_400(toy_server):
    body = {"inputs": {"question": "refuse", "context": "c"}}
    error = assert_json_error(httpx.post(toy_server.url, json=body), 400, "refuses")
    assert error["field"] == "inputs"


def test_one_bad_request_does_not_fail_its_batch_neighbours(toy_server):
    def ask(question: str) -> httpx.Response:
        return httpx.post(toy_server.url, json={"inputs": {"question": question, "context": "alpha beta"}})

    questions = ["dawdle", *["alpha"] * 6, "explode", *["beta"] * 6]
    results: dict[int, httpx.Response] = {}
    threads = [threading.Thread(target=lambda i=i, q=q: results.__setitem__(i, ask(q))) for i, q in enumerate(questions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, question in enumerate(questions):
        expected = 500 if question == "explode" else 200
        assert results[index].status_code == expected, (question, results[index].text)
    pipeline = toy_server.state.models[0].batcher.pipeline
    assert max(pipeline.batch_sizes) <= 8
    assert max(pipeline.batch_sizes) > 1


def test_health_answers_while_a_model_is_busy(toy_server):
    slow = threading.Thread(
        target=httpx.post, args=(toy_server.url,), kwargs={"json": {"inputs": {"question": "dawdle", "context": "c"}}}
    )
    slow.start()
    time.sleep(0.2)
    started = time.perf_counter()
    assert httpx.get(f"{toy_server.url}/health").status_code == 200
    assert time.perf_counter() - started < 0.5
    slow.join()


def test_info_describes_models_and_plugins(toy_server):
    info = httpx.get(f"{toy_server.url}/info").json()
    (model,) = info["models"]
    assert model["model_id"] == "toy-qa"
    assert model["task"] == "question-answering"
    assert model["library"] == model["backend"] == "toy"
    assert model["device"] == "cpu"
    assert model["state"] == "ready"
    assert {plugin["name"] for plugin in info["plugins"]} == {"widgetd", "toy"}
    assert httpx.get(f"{toy_server.url}/models/toy-qa/info").json()["models"] == [model]
    assert httpx.get(f"{toy_server.url}/models/toy-qa/health").status_code == 200


def test_root_answers_json(toy_server):
    assert httpx.get(toy_server.url).json()["ok"] == "ok"


def test_openapi_document_lists_task_routes(toy_server):
    document = httpx.get(f"{toy_server.url}/openapi.json").json()
    assert "/models/toy-qa/pipeline/question-answering" in document["paths"]


def test_loading_model_answers_503_with_retry_after(tmp_path):
    gate = threading.Event()
    model = make_toy_model(tmp_path / "slow-toy")
    server = LiveServer.for_models([str(model)], plugins={"toy": ToyPlugin(load_gate=gate)}).start()
    try:
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 503
        assert "loading" in health.json()["error"]
        assert health.headers["retry-after"]
        busy = assert_json_error(httpx.post(server.url, json=QA), 503, "loading")
        assert busy is not None
        gate.set()
        server.wait_ready(timeout=10)
        assert httpx.post(server.url, json=QA).status_code == 200
    finally:
        gate.set()
        server.stop()


def wait_loaded(server: LiveServer) -> None:
    deadline = time.monotonic() + 10
    while any(model.state == "loading" for model in server.state.models) and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_model_that_failed_to_load_answers_503_with_the_reason_and_no_path(tmp_path):
    model = make_toy_model(tmp_path / "broken-toy")
    server = LiveServer.for_models([str(model)], plugins={"toy": ToyPlugin(fail_load=True)}).start()
    try:
        wait_loaded(server)
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 503 and health.headers["retry-after"] == "60"
        assert "toy weights missing in …/broken-toy" in health.json()["error"]
        response = httpx.post(server.url, json=QA)
        assert_json_error(response, 503, "failed to load", "toy weights missing in …/broken-toy")
        assert response.headers["retry-after"] == "60"
        info = httpx.get(f"{server.url}/info")
        assert info.status_code == 200 and info.json()["models"][0]["state"] == "failed"
        for text in (health.text, response.text, info.text):
            assert str(tmp_path) not in text
    finally:
        server.stop()


def test_health_is_degraded_while_some_models_serve_and_key_holders_read_the_details(tmp_path):
    good, broken = make_toy_model(tmp_path / "good-toy"), make_toy_model(tmp_path / "broken-toy")
    settings = ServerSettings(admin_key="sesame")
    plugin = ToyPlugin(fail_load=("broken-toy",))
    server = LiveServer.for_models([str(good), str(broken)], plugins={"toy": plugin}, settings=settings).start()
    try:
        wait_loaded(server)
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded" and health.json()["models"] == ["good-toy"]
        assert health.json()["problems"]["broken-toy"].startswith("failed: OSError: toy weights missing in …/broken-toy")
        assert httpx.get(f"{server.url}/models/broken-toy/health").status_code == 503
        assert httpx.get(f"{server.url}/models/good-toy/health").json()["status"] == "ok"
        key = {"authorization": "Bearer sesame"}
        trusted = httpx.get(f"{server.url}/health", headers=key).json()
        assert str(broken) in trusted["problems"]["broken-toy"]
        answered = httpx.post(f"{server.url}/models/good-toy", json=QA, headers=key)
        assert answered.status_code == 200
    finally:
        server.stop()


def test_api_key_protects_inference_but_not_health(tmp_path):
    model = make_toy_model(tmp_path / "guarded-toy")
    settings = ServerSettings(api_key="s3cret")
    with LiveServer.for_models([str(model)], plugins={"toy": ToyPlugin()}, settings=settings) as server:
        assert_json_error(httpx.post(server.url, json=QA), 401, "Bearer")
        wrong = {"authorization": "Bearer nope"}
        assert_json_error(httpx.post(server.url, json=QA, headers=wrong), 401)
        assert_json_error(httpx.get(f"{server.url}/info"), 401)
        assert httpx.get(f"{server.url}/health").status_code == 200
        right = {"authorization": "Bearer s3cret"}
        assert httpx.post(server.url, json=QA, headers=right).status_code == 200


def test_several_models_each_on_their_own_route(tmp_path):
    first = make_toy_model(tmp_path / "first")
    second = make_toy_model(tmp_path / "second", pipeline_tag="sentence-similarity")
    with LiveServer.for_models([str(first), str(second)], plugins={"toy": ToyPlugin()}) as server:
        assert "answer" in httpx.post(server.url, json=QA).json()
        pair = {"inputs": {"source_sentence": "a", "sentences": ["a"]}}
        assert httpx.post(f"{server.url}/models/second", json=pair).json() == [1.0]
        assert "answer" in httpx.post(f"{server.url}/models/first", json=QA).json()


def test_a_body_declared_json_that_does_not_parse_says_so(toy_server):
    response = httpx.post(toy_server.url, content=b'{"inputs": {"question": ', headers={"content-type": "application/json"})
    assert_json_error(response, 400, "not valid JSON")


@pytest.mark.parametrize("body", [b'{"inputs": "a", }', b'{inputs: "unquoted"}', b'  ["a", "b",]', b"[1, 2", b"[true false]"])
def test_a_body_that_starts_like_json_and_does_not_parse_is_400_whatever_its_content_type(toy_server, body):
    url = f"{toy_server.url}/models/toy-qa/pipeline/feature-extraction"
    for headers in ({}, {"content-type": "application/octet-stream"}):
        error = assert_json_error(httpx.post(url, content=body, headers=headers), 400, "not valid JSON", "text/plain")
        assert error["error"].startswith("the body is not valid JSON")


@pytest.mark.parametrize("text", ["[MASK] is a city.", "{curly} braces declared as text", "plain words", "[CLS] x"])
def test_text_that_merely_starts_with_a_bracket_stays_text(toy_server, text):
    url = f"{toy_server.url}/models/toy-qa/pipeline/feature-extraction"
    headers = {"content-type": "text/plain"} if text.startswith("{") else {}
    raw = httpx.post(url, content=text.encode(), headers=headers)
    assert raw.status_code == 200, raw.text
    assert raw.json() == httpx.post(url, json={"inputs": text}).json()


def test_every_error_names_its_code(toy_server):
    url = toy_server.url
    cases = [
        (httpx.post(f"{url}/models/org/nope", json=QA), 404, "RepoNotFound"),
        (httpx.post(f"{url}/models/toy-qa/pipeline/text-to-video", json={"inputs": "x"}), 404, "TaskNotServed"),
        (httpx.get(f"{url}/no/such/route"), 404, "NotFound"),
        (httpx.post(f"{url}/health"), 405, "MethodNotAllowed"),
        (httpx.post(url, json={"inputs": {"question": 3}}), 400, "InvalidInput"),
        (httpx.post(url, content=b'{"inputs": ', headers={"content-type": "application/json"}), 400, "InvalidInput"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.headers.get("x-error-code")) == (status, code), response.text


def test_the_error_codes_are_those_the_reference_lists():
    from widgetd.errors import code_for_status, error_codes

    codes = {kind.code: kind.status for kind in error_codes()}
    assert codes["RepoNotFound"] == 404 and codes["TaskNotServed"] == 404 and codes["InvalidAnswer"] == 500
    assert all(kind.__doc__ for kind in error_codes())
    assert {status: code_for_status(status) for status in (400, 404, 413, 500)} == {
        400: "InvalidInput", 404: "NotFound", 413: "PayloadTooLarge", 500: "InternalError"
    }


def test_a_json_number_is_text_as_api_inference_community_read_it(toy_server):
    url = f"{toy_server.url}/models/toy-qa/pipeline/feature-extraction"
    number = httpx.post(url, content=b"12345", headers={"content-type": "application/json"})
    assert number.json() == httpx.post(url, json={"inputs": "12345"}).json()


def test_error_messages_become_valid_header_values():
    from widgetd.app import error_response

    response = error_response(500, "stride 128 is too long (= 128 - 2), \n\r\t bad\x00 end  ")
    assert response.headers["X-Error-Message"] == "stride 128 is too long (= 128 - 2), bad end"


def test_a_models_default_route_answers_its_other_tasks_by_the_body_shape(tmp_path):
    model = make_toy_model(tmp_path / "toy-similarity", pipeline_tag="sentence-similarity")
    with LiveServer.for_models([str(model)], plugins={"toy": ToyPlugin()}) as server:
        pair = httpx.post(server.url, json={"inputs": {"source_sentence": "a", "sentences": ["a"]}})
        assert pair.json() == [1.0]
        embedding = httpx.post(server.url, json={"inputs": "hello"})
        assert embedding.status_code == 200 and len(embedding.json()) == 4


def test_predict_is_the_roots_alias(toy_server):
    assert httpx.post(f"{toy_server.url}/predict", json=QA).json() == httpx.post(toy_server.url, json=QA).json()


def test_query_string_parameters_join_the_bodys_the_body_winning(toy_server):
    listed = httpx.post(toy_server.url, json=QA, params={"top_k": "3"}).json()
    assert isinstance(listed, list) and 1 <= len(listed) <= 3
    body_wins = httpx.post(toy_server.url, json={**QA, "parameters": {"top_k": 1}}, params={"top_k": "3"}).json()
    assert isinstance(body_wins, dict)
    unknown = httpx.post(toy_server.url, json=QA, params={"colour": "blue"})
    assert_json_error(unknown, 400, "colour")


def test_a_stopped_servers_models_are_freed_once_unreferenced(tmp_path):
    """Served models are frozen out of the collector's full scans; a server that stops lets them go, so a
    process that runs servers in turn (a test session, a notebook) frees each one's, reference cycles too."""
    model, freed = make_toy_model(tmp_path / "toy"), []
    for _ in range(2):  # the route handlers hold the latest app: the first server's state is unreferenced once the second runs
        plugin = ToyPlugin()
        with LiveServer.for_models([str(model)], plugins={"toy": plugin}) as server:
            assert httpx.post(server.url, json=QA).status_code == 200
            [pipeline] = plugin.pipelines
            pipeline.itself = pipeline  # a reference cycle, as loaded models hold: only the collector frees them
            freed.append(weakref.ref(pipeline))
            assert gc.get_freeze_count() > 0
        plugin.pipelines.clear()
        del server, pipeline
    gc.collect()
    assert freed[0]() is None
