"""An agent's loop on one widgetd: the served models' tasks listed as MCP tools, handed to a served chat model
as OpenAI tools, the chat model's call run through MCP, and its answer fed back to the chat model, all over
real HTTP with the openai SDK and the MCP Python SDK."""

from __future__ import annotations

import asyncio
import json

import httpx2
import jsonschema
import openai
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

TOOL = "text_classification__tiny-sentiment"


def test_a_served_chat_model_calls_a_served_model_as_a_tool(server):
    chat = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)

    async def agent() -> tuple[dict, object, object]:
        async with httpx2.AsyncClient(timeout=120) as http, Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as tools:
            listed = {tool.name: tool for tool in (await tools.list_tools()).tools}
            tool = listed[TOOL]
            openai_tool = {"type": "function", "function": {"name": tool.name, "description": tool.description, "parameters": tool.input_schema}}
            messages = [{"role": "user", "content": "Is this review positive: I loved the film?"}]
            asked = await chat.chat.completions.create(
                model="tiny-chat", messages=messages, tools=[openai_tool], tool_choice={"type": "function", "function": {"name": tool.name}},
                max_tokens=200, temperature=0,
            )
            [call] = asked.choices[0].message.tool_calls
            arguments = json.loads(call.function.arguments)
            jsonschema.validate(arguments, tool.input_schema)
            result = await tools.call_tool(call.function.name, arguments)
            messages += [
                {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                {"role": "tool", "tool_call_id": call.id, "content": result.content[0].text},
            ]
            answered = await chat.chat.completions.create(model="tiny-chat", messages=messages, tools=[openai_tool], tool_choice="none", max_tokens=8, temperature=0)
            return arguments, result, answered

    arguments, result, answered = asyncio.run(agent())
    assert not result.is_error, result.content[0].text
    labels = {entry["label"] for entries in result.structured_content["result"] for entry in entries}  # a list per text
    assert labels <= {"NEGATIVE", "POSITIVE"} and labels
    direct = httpx2.post(f"{server.url}/models/tiny-sentiment/pipeline/text-classification", json=arguments, timeout=60).json()
    assert result.structured_content["result"] == direct
    assert answered.choices[0].message.content and answered.choices[0].message.tool_calls is None
