"""Tool calls in chat completions: read from the model's text in each template family's format, streamed as
OpenAI's tool-call deltas that add up to the answer's calls, a call that does not parse kept as text; through
the openai SDK against the toy engine (which writes Hermes-style calls when asked, and constrains nothing)."""

from __future__ import annotations

import json

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.toy_plugin import StreamingToyPlugin, make_toy_model
from widgetd.chat import HeldForCalls
from widgetd.testing.server import LiveServer
from widgetd.tool_calls import parse_calls, tool_use
from widgetd.tasks.chat_completion import ChatCompletionTool

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "integer"}}}}}


def use(*, choice=None, parallel=None):
    import msgspec

    return tool_use(msgspec.convert([WEATHER, TIME], list[ChatCompletionTool]), choice, parallel)


def calls_of(text: str, **options) -> tuple | None:
    parsed = parse_calls(text, use(**options))
    return None if parsed is None else (parsed[0], [(call.name, json.loads(call.arguments)) for call in parsed[1]])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Hermes / Qwen, after some words, two calls
        ('Let me see.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"zone": 1}}\n</tool_call>',
         ("Let me see.", [("get_weather", {"city": "Paris"}), ("get_time", {"zone": 1})])),
        # a last call the model did not close
        ('<tool_call>{"name": "get_time", "arguments": {"zone": 2}}', (None, [("get_time", {"zone": 2})])),
        # Llama 3: a JSON object with "parameters"; several joined by ";"
        ('{"name": "get_weather", "parameters": {"city": "Oslo"}}', (None, [("get_weather", {"city": "Oslo"})])),
        ('{"name": "get_weather", "parameters": {"city": "Oslo"}}; {"name": "get_time", "parameters": {"zone": 0}}',
         (None, [("get_weather", {"city": "Oslo"}), ("get_time", {"zone": 0})])),
        # Mistral: a JSON list (its [TOOL_CALLS] token is not text); arguments as a JSON text too
        ('[{"name": "get_time", "arguments": "{\\"zone\\": 3}"}]', (None, [("get_time", {"zone": 3})])),
        # not calls: words, a broken call, an unknown function, JSON that is not a call
        ("It is sunny.", None),
        ('<tool_call>{"name": "get_weather", "arguments": {"city": ', None),
        ('<tool_call>{"name": "launch_rocket", "arguments": {}}</tool_call>', None),
        ('{"city": "Paris"}', None),
        ("[" * 5000 + "]" * 5000, None),  # deeper than Python's JSON reader goes
    ],
)
def test_calls_are_read_in_each_template_familys_format(text, expected):
    assert calls_of(text) == expected


def test_without_parallel_calls_only_the_first_is_kept():
    text = '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call><tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    assert calls_of(text, parallel=False) == (None, [("get_weather", {})])


def test_forced_calls_keep_each_functions_own_definitions():
    """Parameters that refer to their own ``$defs`` (MCP tools' input schemas do) keep them, two functions' defs
    of the same name apart, once both are parts of one grammar."""
    import msgspec

    from widgetd.tool_calls import forced_calls

    def tool(name: str, kind: str) -> dict:
        return {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {"x": {"$ref": "#/$defs/X"}}, "$defs": {"X": {"type": kind}}}}}

    schema = forced_calls(tool_use(msgspec.convert([tool("a", "string"), tool("b", "integer")], list[ChatCompletionTool]), "required", None)).schema
    assert schema["$defs"] == {"tool0_X": {"type": "string"}, "tool1_X": {"type": "integer"}}
    arguments = [call["properties"]["arguments"] for call in schema["items"]["anyOf"]]
    assert [item["properties"]["x"]["$ref"] for item in arguments] == ["#/$defs/tool0_X", "#/$defs/tool1_X"]
    assert all("$defs" not in item for item in arguments)


def test_a_named_tool_choice_must_name_a_tool_and_tool_choice_needs_tools():
    from widgetd.errors import InvalidInput

    with pytest.raises(InvalidInput, match="'nope' is not one of the tools"):
        use(choice=msgspec_choice("nope"))
    with pytest.raises(InvalidInput, match="no tools"):
        tool_use(None, "required", None)
    import msgspec

    listed = msgspec.convert([WEATHER, {"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}], list[ChatCompletionTool])
    with pytest.raises(InvalidInput, match="type 'object'") as refused:
        tool_use(listed, "auto", None)
    assert refused.value.field == "tools[1].function.parameters"


def msgspec_choice(name: str):
    import msgspec

    from widgetd.tasks.chat_completion import ChatCompletionNamedToolChoice

    return msgspec.convert({"type": "function", "function": {"name": name}}, ChatCompletionNamedToolChoice)


CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
TEXTS = st.lists(st.sampled_from(["Hello", " there", "\n", " ", "<tool", "_call>", "{", '"x"', "}", CALL, "<", "tool_call", "!"]), max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_a_streams_words_and_calls_add_up_to_the_answers_however_its_text_arrives(text, cuts):
    """What a stream sends as it goes, then at its end, is the whole answer's words and calls, wherever the
    tokens split the text (a call opener split across tokens, words that only look like one)."""
    bounds = sorted({0, len(text), *(cut for cut in cuts if cut < len(text))})
    held = HeldForCalls(use())
    sent = "".join(held.add(text[start:end]) for start, end in zip(bounds, bounds[1:]))
    rest, calls = held.end()
    words, expected_calls = HeldForCalls(use()).read(text)
    assert sent + rest == (words or "")
    assert [(call.name, call.arguments) for call in calls] == [(call.name, call.arguments) for call in expected_calls]


@pytest.fixture(scope="module")
def toy_chat(tmp_path_factory):
    model = make_toy_model(tmp_path_factory.mktemp("toy-chat") / "toy-chat", pipeline_tag="text-generation")
    with LiveServer.for_models([str(model)], plugins={"toy": StreamingToyPlugin()}) as server:
        yield server


def sdk(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def ask(content: str, **options) -> dict:
    return {"model": "toy-chat", "messages": [{"role": "user", "content": content}], "tools": [WEATHER, TIME], **options}


def test_the_openai_sdk_gets_the_calls_the_model_wrote_streamed_or_not(toy_chat):
    request = ask('call get_weather {"city": "Paris"} and call get_time {"zone": 2}')
    whole = sdk(toy_chat).chat.completions.create(**request).choices[0]
    assert whole.finish_reason == "tool_calls" and whole.message.content == "Checking."
    assert [(call.function.name, json.loads(call.function.arguments)) for call in whole.message.tool_calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"zone": 2})
    ]
    chunks = [chunk.choices[0] for chunk in sdk(toy_chat).chat.completions.create(**request, stream=True) if chunk.choices]
    content = "".join(choice.delta.content or "" for choice in chunks)
    deltas = [delta for choice in chunks for delta in choice.delta.tool_calls or []]
    assert content == "Checking." and "<tool_call>" not in content
    assert [(delta.index, delta.function.name, delta.function.arguments) for delta in deltas] == [
        (index, call.function.name, call.function.arguments) for index, call in enumerate(whole.message.tool_calls)
    ]
    assert all(delta.id.startswith("call_") and delta.type == "function" for delta in deltas)
    assert [choice.finish_reason for choice in chunks if choice.finish_reason] == ["tool_calls"]


def test_a_call_that_does_not_parse_is_the_answers_text(toy_chat):
    answer = sdk(toy_chat).chat.completions.create(**ask('call get_weather {"city": '))
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content.startswith("Checking.\n<tool_call>")


def test_tool_answers_are_fed_back_and_words_are_answered_as_words(toy_chat):
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    messages = [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny."}]
    answer = sdk(toy_chat).chat.completions.create(model="toy-chat", messages=messages, tools=[WEATHER], max_tokens=5)
    assert answer.choices[0].message.content and answer.choices[0].message.tool_calls is None
    assert answer.choices[0].finish_reason == "length"


def test_what_an_engine_cannot_constrain_is_a_400_naming_the_field(toy_chat):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(toy_chat).chat.completions.create(**ask("hi", tool_choice="required"))
    assert refused.value.body["param"] == "tool_choice" and "does not constrain" in refused.value.body["message"]
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(toy_chat).chat.completions.create(model="toy-chat", messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"})
    assert refused.value.body["param"] == "response_format"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(toy_chat).chat.completions.create(**ask("hi", tool_choice={"type": "function", "function": {"name": "nope"}}))
    assert refused.value.body["param"] == "tool_choice.function.name"
