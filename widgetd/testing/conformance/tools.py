"""Every task a plugin serves is an MCP tool (``/mcp``) that answers as the task's route does."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import msgspec
import pytest

from widgetd.testing.conformance.exchange import Call, Reply
from widgetd.tools import input_schema, output_schema, served_tools, structured


def mcp_tool_calls(url: str, headers: dict[str, str], name: str, calls: list[dict[str, Any]], timeout: float) -> tuple[Any, list[Any]]:
    """The tool ``name`` as ``/mcp`` lists it, and its results for each of ``calls``' arguments, through the MCP
    Python SDK's client over HTTP."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def session() -> tuple[Any, list[Any]]:
        async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
            async with Client(streamable_http_client(f"{url}/mcp", http_client=http), read_timeout_seconds=timeout) as client:
                listed = next((tool for tool in (await client.list_tools()).tools if tool.name == name), None)
                return listed, [await client.call_tool(name, arguments) for arguments in calls]

    return asyncio.run(session())


def reply_of(result: Any) -> Reply:
    """A tool's result as the HTTP reply it stands for: a tool error as a 400 with its JSON error body, text as
    JSON, image and audio content as their bytes."""
    content = result.content[0]
    if result.is_error:
        return Reply(400, "application/json", content.text.encode())
    if content.type == "text":
        return Reply(200, "application/json", content.text.encode())
    return Reply(200, content.mime_type, base64.b64decode(content.data))


class McpTests:
    """Part of every task's checks: the task is a tool of ``/mcp`` with the task's schemas, and each JSON example
    gets the same answer through it as through ``POST /models/{model_id}/pipeline/{task}``. ``served`` is the
    kit's ``Served``; ``answer`` and ``expect_same`` are ``TaskTests``'."""

    def test_the_task_is_an_mcp_tool_answering_as_its_route(self, served: Any, examples: list[Call]) -> None:
        if not served.server.state.settings.mcp:
            pytest.skip("the server runs with --no-mcp")
        calls = [call for call in examples if call.is_json and not call.headers]
        if not calls:
            pytest.skip("no JSON example to send as a tool's arguments")
        tool = next(tool for tool in served_tools(served.server.state) if tool.model is served.model and tool.task.name == served.task.name)
        headers = {name: value for name, value in served.client.headers.items() if name.lower() == "authorization"}
        listed, results = mcp_tool_calls(served.server.url, headers, tool.name, [call.body for call in calls], self.timeout)
        assert listed is not None, f"/mcp does not list the tool {tool.name!r} for {served.task.name} with {served.model.model_id}"
        assert listed.input_schema == input_schema(served.task), f"{tool.name}: its input schema is not the task's request schema"
        assert listed.output_schema == output_schema(served.task), f"{tool.name}: its output schema is not the task's answer schema"
        for call, result in zip(calls, results):
            via_route, via_tool = self.answer(served, call), reply_of(result)
            self.expect_same(served, call, via_route, via_tool, "the MCP tool's answer is not the route's")
            if via_tool.content_type == "application/json" and not result.is_error:
                assert result.structured_content == structured(served.task, via_tool.json()), (
                    f"{tool.name}: structuredContent is not the answer its text content carries"
                )
