"""Structured outputs and tool calls from a random-weights chat model, constrained by llguidance inside the
continuous batching engine: the answers parse and fit their schemas, through the openai SDK, huggingface_hub's
InferenceClient (chat and TGI's text_generation grammar), streamed and not."""

from __future__ import annotations

import json
import re
import threading

import httpx
import jsonschema
import openai
import pytest
from huggingface_hub import InferenceClient
from pydantic import BaseModel, Field

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "integer", "minimum": -12, "maximum": 14}}, "required": ["zone"]}},
}


class Weather(BaseModel):
    city: str = Field(max_length=10)
    celsius: int = Field(ge=-50, le=60)
    sunny: bool
    tags: list[str] = Field(max_length=2)


def sdk(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_the_sdk_parses_a_pydantic_model_from_the_answer(server):
    answer = sdk(server).chat.completions.parse(model="tiny-chat", messages=MESSAGES, response_format=Weather, max_tokens=80, temperature=0)
    parsed = answer.choices[0].message.parsed
    assert isinstance(parsed, Weather), answer.choices[0].message.content
    assert answer.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("temperature", [0, 1.0])
def test_json_objects_parse_streamed_or_not(server, temperature):
    ask = dict(model="tiny-chat", messages=MESSAGES, response_format={"type": "json_object"}, max_tokens=40, temperature=temperature, seed=3)
    whole = sdk(server).chat.completions.create(**ask).choices[0].message.content
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in sdk(server).chat.completions.create(**ask, stream=True) if chunk.choices)
    assert isinstance(json.loads(whole), dict)
    assert streamed == whole


def test_a_schema_feature_the_engine_cannot_enforce_is_a_400_naming_it(server):
    schema = {"type": "object", "if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["b"]}}
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(server).chat.completions.create(
            model="tiny-chat", messages=MESSAGES, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        )
    assert refused.value.body["param"] == "response_format.json_schema.schema" and '"if"' in refused.value.body["message"]


def test_a_named_tool_choice_makes_a_call_whose_arguments_fit(server):
    answer = sdk(server).chat.completions.create(
        model="tiny-chat", messages=MESSAGES, tools=[WEATHER_TOOL, TIME_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=120, temperature=0,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["function"]["parameters"])


def test_required_tool_calls_stream_as_the_answer_has_them(server):
    ask = dict(model="tiny-chat", messages=MESSAGES, tools=[WEATHER_TOOL, TIME_TOOL], tool_choice="required", max_tokens=150, temperature=0)
    whole = sdk(server).chat.completions.create(**ask).choices[0]
    chunks = [chunk for chunk in sdk(server).chat.completions.create(**ask, stream=True) if chunk.choices]
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices[0].finish_reason] == ["tool_calls"] == [whole.finish_reason]
    assert [(call["name"], call["arguments"]) for call in calls.values()] == [(c.function.name, c.function.arguments) for c in whole.message.tool_calls]
    tools = {tool["function"]["name"]: tool["function"]["parameters"] for tool in (WEATHER_TOOL, TIME_TOOL)}
    for call in whole.message.tool_calls:
        jsonschema.validate(json.loads(call.function.arguments), tools[call.function.name])


def test_tool_answers_are_fed_back_through_the_template(server):
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}
    messages = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": [call]}, {"role": "tool", "tool_call_id": "call_1", "content": "18 and sunny"}]
    answer = sdk(server).chat.completions.create(model="tiny-chat", messages=messages, tools=[WEATHER_TOOL], max_tokens=6, temperature=0)
    assert answer.choices[0].message.content and answer.usage.prompt_tokens > 60  # the tools and the exchange were read


def test_inference_client_sends_tools_and_response_formats(server):
    client = InferenceClient(base_url=f"{server.url}/models/tiny-chat")
    called = client.chat_completion(MESSAGES, tools=[WEATHER_TOOL], tool_choice="required", max_tokens=120)
    assert called.choices[0].message.tool_calls[0].function.name == "get_weather"
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    shaped = client.chat_completion(MESSAGES, response_format={"type": "json_schema", "json_schema": {"name": "ok", "schema": schema}}, max_tokens=30)
    jsonschema.validate(json.loads(shaped.choices[0].message.content), schema)


def test_tgi_grammars_on_text_generation(server):
    client = InferenceClient(base_url=f"{server.url}/models/tiny-chat")
    matched = client.text_generation("the code is", grammar={"type": "regex", "value": "[0-9]{3}-[a-z]{2,4}"}, max_new_tokens=20, return_full_text=False)
    assert re.fullmatch("[0-9]{3}-[a-z]{2,4}", matched)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string", "maxLength": 5}}, "required": ["n", "s"]}
    shaped = client.text_generation("data:", grammar={"type": "json", "value": schema}, max_new_tokens=40, return_full_text=False)
    jsonschema.validate(json.loads(shaped), schema)
    refused = httpx.post(f"{server.url}/models/tiny-chat", json={"inputs": "x", "parameters": {"grammar": {"type": "regex", "value": "(a"}}})
    assert refused.status_code == 400 and refused.json()["field"] == "parameters.grammar.value"


def test_constrained_and_free_sequences_share_a_batch_without_changing_each_other(server):
    free = dict(model="tiny-chat", messages=MESSAGES, max_tokens=16, temperature=0)
    alone = sdk(server).chat.completions.create(**free).choices[0].message.content
    answers: list = []

    def ask(**extra) -> None:
        answers.append((bool(extra), sdk(server).chat.completions.create(**free | extra).choices[0].message.content))

    threads = [threading.Thread(target=ask, kwargs={"response_format": {"type": "json_object"}, "max_tokens": 40}) for _ in range(3)]
    threads += [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [text for constrained, text in answers if not constrained] == [alone] * 3
    assert all(isinstance(json.loads(text), dict) for constrained, text in answers if constrained)


def test_info_says_what_the_chat_model_can_do(server):
    generation = next(model for model in httpx.get(f"{server.url}/info").json()["models"] if model["model_id"] == "tiny-chat")["generation"]
    assert generation["tools"] is True and generation["structured_outputs"] is True


def test_a_template_without_tools_still_honours_a_forced_tool_choice(tmp_path):
    import widgetd_transformers
    from widgetd.testing.server import LiveServer
    from widgetd_transformers.testing import CHATML_TEMPLATE, save_byte_level_bpe, save_chat_llama

    folder = save_chat_llama(tmp_path / "plain-chat", save_byte_level_bpe(tmp_path / "bpe"), chat_template=CHATML_TEMPLATE)
    with LiveServer.for_models([str(folder)], plugins={"transformers": widgetd_transformers}) as plain:
        assert httpx.get(f"{plain.url}/info").json()["models"][0]["generation"]["tools"] is False
        named = {"type": "function", "function": {"name": "get_weather"}}
        answer = sdk(plain).chat.completions.create(model="plain-chat", messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice=named, max_tokens=120, temperature=0)
        [call] = answer.choices[0].message.tool_calls
        jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["function"]["parameters"])
        with pytest.raises(openai.BadRequestError) as refused:
            sdk(plain).chat.completions.create(model="plain-chat", messages=MESSAGES, tools=[WEATHER_TOOL])
        assert refused.value.body["param"] == "tool_choice" and "does not show it tools" in refused.value.body["message"]
