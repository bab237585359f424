"""``/mcp``: the served models' tasks as MCP tools, through the MCP Python SDK's client over real HTTP: listed
with the task's schemas, answered by the task route (same answers, same errors, same keys), cancelled as a
client that hangs up is."""

from __future__ import annotations

import asyncio
import base64
import threading

import httpx
import httpx2
import msgspec
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.toy_plugin import ToyPlugin, make_toy_model
from widgetd.app import ServerSettings
from widgetd.testing.conformance.exchange import comparable
from widgetd.testing.server import LiveServer
from widgetd.tools import MAX_NAME, input_schema, tool_names

KEY = "mcp-key-0001"
AUTH = {"authorization": f"Bearer {KEY}"}
LISTED_ORIGIN = "https://App.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mcp")
    models = [make_toy_model(folder / "toy-qa"), make_toy_model(folder / "toy-tc", pipeline_tag="text-classification")]
    with LiveServer.for_models([str(model) for model in models], plugins={"toy": ToyPlugin()}, settings=ServerSettings(api_key=KEY, admin_key="mcp-admin-0002", mcp_origins=(LISTED_ORIGIN,))) as server:
        yield server


def session(server: LiveServer, work, *, headers=AUTH, mode: str = "auto"):
    """``work(client)``'s result, with an MCP client connected to the server's /mcp."""

    async def run():
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            async with Client(streamable_http_client(f"{server.url}/mcp", http_client=http), mode=mode) as client:
                return await work(client)

    return asyncio.run(run())


def listed(server: LiveServer) -> dict:
    async def work(client):
        return {tool.name: tool for tool in (await client.list_tools()).tools}

    return session(server, work)


def called(server: LiveServer, name: str, arguments: dict, mode: str = "auto"):
    return session(server, lambda client: client.call_tool(name, arguments), mode=mode)


def route(server: LiveServer, model_id: str, task: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/models/{model_id}/pipeline/{task}", json=body, headers=AUTH, timeout=60)


def test_every_served_task_of_every_model_is_a_tool_with_the_tasks_request_schema(server):
    tools = listed(server)
    state = server.state
    expected = {(model.model_id, task) for model in state.models for task in model.tasks}
    assert len(tools) == len(expected)
    tool = tools["sentence_similarity__toy-qa"]
    assert tool.input_schema == input_schema(state.registry.task("sentence-similarity"))
    assert tool.input_schema["type"] == "object" and tool.input_schema["required"] == ["inputs"]
    assert tool.annotations.read_only_hint is True
    assert "toy-qa" in tool.description and "library_name: toy" in tool.description
    assert all(len(name) <= MAX_NAME for name in tools)


def test_tool_names_are_valid_unique_and_short():
    pairs = [("org-a/all-MiniLM-L6-v2", "sentence-similarity"), ("org-b/all-MiniLM-L6-v2", "sentence-similarity"),
             ("solo/model.v2", "text-classification"), ("o/" + "x" * 100, "zero-shot-image-classification"),
             ("o/" + "x" * 100 + "y", "zero-shot-image-classification")]
    names = tool_names(pairs)
    assert names[("solo/model.v2", "text-classification")] == "text_classification__model-v2"
    assert names[pairs[0]] == "sentence_similarity__org-a--all-MiniLM-L6-v2"
    assert len(set(names.values())) == len(pairs)
    assert all(len(name) <= MAX_NAME and name.replace("_", "").replace("-", "").isalnum() for name in names.values())
    assert tool_names(pairs) == names  # the same served models, the same names


def tool_for(server: LiveServer, task: str, model_id: str = "toy-qa") -> tuple[str, str]:
    name = f"{task.replace('-', '_')}__{model_id}"
    assert name in listed(server)
    return name, model_id


def test_a_text_task_answers_as_its_route_with_structured_content(server):
    name, model_id = tool_for(server, "question-answering")
    body = {"inputs": {"question": "where", "context": "the cat sat on the mat where"}}
    result = called(server, name, body)
    expected = route(server, model_id, "question-answering", body).json()
    assert not result.is_error
    assert msgspec.json.decode(result.content[0].text) == expected
    assert result.structured_content == {"result": expected}


def test_an_image_task_takes_base64_and_answers_an_image(server):
    name, model_id = tool_for(server, "image-to-image")
    picture = httpx.post(f"{server.url}/models/{model_id}/pipeline/text-to-image", json={"inputs": "a square"}, headers=AUTH).content
    body = {"inputs": base64.b64encode(picture).decode()}
    result = called(server, name, body)
    answer = route(server, model_id, "image-to-image", body)
    assert result.content[0].type == "image" and result.content[0].mime_type == answer.headers["content-type"]
    assert base64.b64decode(result.content[0].data) == answer.content
    classes = called(server, tool_for(server, "image-classification")[0], body)
    assert classes.structured_content == {"result": route(server, model_id, "image-classification", body).json()}


def test_an_audio_task_answers_audio(server):
    name, model_id = tool_for(server, "text-to-speech")
    result = called(server, name, {"inputs": "hello there"})
    answer = route(server, model_id, "text-to-speech", {"inputs": "hello there"})
    assert result.content[0].type == "audio" and result.content[0].mime_type == answer.headers["content-type"]
    assert base64.b64decode(result.content[0].data) == answer.content
    heard = called(server, tool_for(server, "automatic-speech-recognition")[0], {"inputs": base64.b64encode(answer.content).decode()})
    assert heard.structured_content == route(server, model_id, "automatic-speech-recognition", {"inputs": base64.b64encode(answer.content).decode()}).json()


def test_bad_arguments_are_tool_errors_with_the_routes_message_and_field(server):
    name, model_id = tool_for(server, "sentence-similarity")
    body = {"inputs": {"source_sentence": "a"}, "parameters": {"nope": 1}}
    result = called(server, name, body)
    error = msgspec.json.decode(result.content[0].text)
    expected = route(server, model_id, "sentence-similarity", body).json()
    assert result.is_error
    assert error["error"] == expected["error"] and error.get("field") == expected.get("field") and error["request_id"]
    refused = called(server, tool_for(server, "question-answering")[0], {"inputs": {"question": "refuse", "context": "c"}})
    assert refused.is_error and msgspec.json.decode(refused.content[0].text)["field"] == "inputs"
    assert called(server, name, {"inputs": {"source_sentence": "a", "sentences": ["a"]}}).structured_content == {"result": [1.0]}


def test_an_unknown_tool_is_a_protocol_error(server):
    async def work(client):
        with pytest.raises(MCPError, match="no tool 'nonesuch'"):
            await client.call_tool("nonesuch", {})
        return await client.list_tools()

    assert session(server, work).tools


def test_mcp_takes_the_servers_keys(server):
    assert httpx.post(f"{server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 401
    wrong = httpx.post(f"{server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers={"authorization": "Bearer no"})
    assert wrong.status_code == 401 and "Bearer" in wrong.json()["error"]
    with pytest.raises(BaseException):
        session(server, lambda client: client.list_tools(), headers={})


@pytest.mark.parametrize("origin", ["http://localhost:6274", "http://127.0.0.1:3000", "http://[::1]", "https://app.example.com/"])
def test_browser_pages_on_loopback_or_listed_origins_call_mcp(server, origin):
    assert session(server, lambda client: client.list_tools(), headers={**AUTH, "origin": origin}).tools


@pytest.mark.parametrize("origin", ["http://rebound.example.net:8000", "null", "https://app.example.com.evil.net", "http://127.0.0.1.nip.io"])
def test_a_page_on_any_other_origin_gets_403_naming_the_option(server, origin):
    """MCP's DNS rebinding defence: a page whose name was pointed at this server keeps its own origin."""
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "page", "version": "1"}}}
    for method, body in (("POST", initialize), ("GET", None), ("DELETE", None)):
        refused = httpx.request(method, f"{server.url}/mcp", json=body, headers={**AUTH, "origin": origin, "accept": "application/json, text/event-stream"})
        assert refused.status_code == 403 and refused.json()["field"] == "Origin", (method, refused.text)
        assert "--mcp-origin" in refused.json()["error"] and origin in refused.json()["error"]
    assert httpx.get(f"{server.url}/health", headers={"origin": origin}).status_code == 200  # the other routes answer as before


def test_mcp_origin_takes_origins_or_any_and_refuses_the_rest():
    from widgetd.errors import WidgetdError
    from widgetd.options import checked_origins
    from widgetd.tools import check_origin

    assert checked_origins(["https://app.example.com", "http://10.0.0.5:8080", "*"]) == ("https://app.example.com", "http://10.0.0.5:8080", "*")
    for wrong in ("app.example.com", "https://app.example.com/mcp", "ftp://x", "https://"):
        with pytest.raises(WidgetdError, match="--mcp-origin"):
            checked_origins([wrong])
    check_origin("https://anywhere.example", ["*"])
    check_origin("", [])  # no Origin: not a browser


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_cancelled_call_is_dropped_before_its_work_runs(server, mode):
    """A 2026-07-28 client cancels by closing the call's stream; a session-era one sends notifications/cancelled.
    Either way the route hears its client hang up, as an HTTP client's would: the work never runs."""
    name, model_id = tool_for(server, "question-answering")
    busy = threading.Thread(target=route, args=(server, model_id, "question-answering", {"inputs": {"question": "dawdle", "context": "c"}}))
    abandoned = f"abandoned-{mode}"

    async def work(client):
        busy.start()
        await asyncio.sleep(0.3)
        call = asyncio.ensure_future(client.call_tool(name, {"inputs": {"question": abandoned, "context": "c"}}))
        await asyncio.sleep(0.2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.to_thread(busy.join)
        return await client.call_tool(name, {"inputs": {"question": "after", "context": "after c"}})

    assert not session(server, work, mode=mode).is_error
    pipeline = next(model for model in server.state.models if model.model_id == model_id).batcher.pipeline
    assert abandoned not in " ".join(pipeline.seen)
    assert 'status="499"' in httpx.get(f"{server.url}/metrics", headers=AUTH).text


def test_no_mcp_turns_it_off(tmp_path):
    model = make_toy_model(tmp_path / "toy")
    with LiveServer.for_models([str(model)], plugins={"toy": ToyPlugin()}, settings=ServerSettings(mcp=False)) as server:
        assert httpx.post(f"{server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 404


def test_answers_compare_as_the_kit_compares_them(server):
    """The kit's MCP rule reads a tool's result as the reply it stands for."""
    from widgetd.testing.conformance.tools import reply_of

    name, model_id = tool_for(server, "text-to-speech")
    via_tool = reply_of(called(server, name, {"inputs": "hi"}))
    via_route = route(server, model_id, "text-to-speech", {"inputs": "hi"})
    assert (comparable(via_tool) == comparable(type(via_tool)(200, via_route.headers["content-type"], via_route.content))).all()
