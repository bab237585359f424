"""Checks for a plugin whose models chat: OpenAI's chat completions, through the server's continuous
batching, streamed and not.

    class TestChat(ChatTests, MyLibFixtures):
        @pytest.fixture(scope="class")
        def prompt_tokens(self, widgetd_model):
            tokenizer = load_my_tokenizer(widgetd_model)
            return lambda messages: len(tokenizer.apply_chat_template(as_template_reads_them(messages), add_generation_prompt=True))

``widgetd_model`` is asked for with ``task_name = "chat-completion"``: a causal language model with a
chat template. ``prompt_tokens(messages)`` is how many tokens the model's own template makes of them
(``as_template_reads_them(messages)`` joins text parts as the server does).
"""

from __future__ import annotations

import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import msgspec
import pytest
from hypothesis import strategies as st

from widgetd.models import ServedModel
from widgetd.tasks.chat_completion import ChatCompletionInput, ChatCompletionOutput, ChatCompletionStreamOutput
from widgetd.tasks.conversational import ConversationalOutput
from widgetd.testing.conformance.base import server_for, yours_first
from widgetd.testing.conformance.rules import ContractViolation, expect
from widgetd.testing.server import LiveServer
from widgetd.testing.strategies import bodies_for

CONVERSATIONS = (
    [{"role": "user", "content": "Where does Sarah live?"}],
    [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hi. How can I help?"},
        {"role": "user", "content": [{"type": "text", "text": "Tell me about"}, {"type": "text", "text": "the cat."}]},
    ],
    [{"role": "user", "content": "Zoë lives in 東京 🗼 and"}],
)


@dataclass
class Chat:
    """One chat completion as the client saw it: the text, why it ended, the usage, the raw chunks."""

    content: str | None
    finish_reason: str
    usage: dict[str, Any] | None
    chunks: list[dict] | None = None
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    """(name, arguments) of each call, in order; a stream's, added up from its deltas."""


@dataclass
class ChatServed:
    server: LiveServer
    model: ServedModel
    client: httpx.Client
    timeout: float

    @property
    def route(self) -> str:
        return f"/models/{self.model.model_id}/v1/chat/completions"

    def post(self, body: dict) -> httpx.Response:
        return self.client.post(self.route, json=body, timeout=self.timeout)

    def complete(self, body: dict) -> Chat:
        response = self.post({**body, "stream": False})
        expect(response.status_code == 200, f"a valid chat request must get a 200, got {response.status_code}: {response.text[:500]}\n  request: {body}")
        try:
            answer = msgspec.json.decode(response.content, type=ChatCompletionOutput)
        except msgspec.ValidationError as error:
            raise ContractViolation(f"the chat answer does not match OpenAI's chat completion: {error}\n  reply: {response.text[:500]}") from None
        expect(len(answer.choices) == 1, f"one choice is asked for, got {len(answer.choices)}")
        choice = answer.choices[0]
        calls = [(call.function.name, call.function.arguments) for call in choice.message.tool_calls or []]
        return Chat(choice.message.content, choice.finish_reason, msgspec.to_builtins(answer.usage), tool_calls=calls)

    def stream(self, body: dict) -> Chat:
        with self.client.stream("POST", self.route, json={**body, "stream": True}, timeout=self.timeout) as response:
            expect(response.status_code == 200, f"a valid streamed chat request must get a 200, got {response.status_code}\n  request: {body}")
            expect(
                response.headers.get("content-type", "").startswith("text/event-stream"),
                f"a stream must be text/event-stream, got {response.headers.get('content-type')!r}",
            )
            events = server_sent_events(response.iter_lines())
        expect(events and events[-1] == "[DONE]", f"a stream must end with 'data: [DONE]', got {events[-1:]}")
        chunks = [json.loads(event) for event in events[:-1]]
        for chunk in chunks:
            expect("error" not in chunk, f"the stream failed: {chunk}")
            try:
                msgspec.convert(chunk, ChatCompletionStreamOutput)
            except msgspec.ValidationError as error:
                raise ContractViolation(f"a chunk does not match OpenAI's chat completion chunk: {error}\n  chunk: {chunk}") from None
        expect(len({chunk["id"] for chunk in chunks}) == 1, "every chunk of a stream must carry the same id")
        choices = [choice for chunk in chunks for choice in chunk["choices"]]
        expect(choices and choices[0]["delta"].get("role") == "assistant", "the first chunk must say the role: assistant")
        finishes = [choice["finish_reason"] for choice in choices if choice.get("finish_reason")]
        expect(len(finishes) == 1, f"exactly one chunk must carry the finish reason, got {finishes}")
        usage = [chunk["usage"] for chunk in chunks if chunk.get("usage")]
        content = "".join(choice["delta"].get("content") or "" for choice in choices)
        calls: dict[int, list[str]] = {}
        for delta in (call for choice in choices for call in choice["delta"].get("tool_calls") or []):
            function = delta.get("function") or {}
            call = calls.setdefault(delta["index"], ["", ""])
            call[0] += function.get("name") or ""
            call[1] += function.get("arguments") or ""
        return Chat(content, finishes[0], usage[-1] if usage else None, chunks, [tuple(call) for _, call in sorted(calls.items())])


def chat_bodies() -> st.SearchStrategy[dict]:
    """Chat requests a client would send: conversations of text in every role and form, with the options a
    model honours, in any combination."""
    text = st.text(max_size=40)
    content = st.one_of(text, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": text}), min_size=1, max_size=3))
    message = st.fixed_dictionaries({"role": st.sampled_from(["system", "developer", "user", "assistant"]), "content": content})
    penalty = st.floats(-2.0, 2.0, allow_nan=False)
    options = {
        "temperature": st.floats(0.0, 2.0, allow_nan=False),
        "top_p": st.floats(0.0, 1.0, exclude_min=True, allow_nan=False),
        "max_tokens": st.integers(1, 8),
        "seed": st.integers(0, 2**31),
        "stop": st.one_of(text, st.lists(text, max_size=4)),
        "frequency_penalty": penalty,
        "presence_penalty": penalty,
        "stream": st.booleans(),
        "logprobs": st.booleans(),
        "n": st.just(1),
        "response_format": st.just({"type": "text"}),
        "user": text,
    }
    return st.fixed_dictionaries({"messages": st.lists(message, min_size=1, max_size=4)}, optional=options)


def bounded_schemas() -> st.SearchStrategy[dict]:
    """JSON Schemas of objects whose every answer is short (bounded strings, numbers, lists; fixed keys, all
    required): a model that honours its schema can always finish one within a few dozen tokens."""
    leaves = st.one_of(
        st.just({"type": "boolean"}),
        st.just({"type": "null"}),
        st.integers(-100, 0).map(lambda low: {"type": "integer", "minimum": low, "maximum": low + 200}),
        st.integers(0, 6).map(lambda size: {"type": "string", "maxLength": size}),
        st.lists(st.sampled_from(["red", "green", "blue", "ok", "no"]), min_size=1, max_size=3, unique=True).map(lambda values: {"enum": values}),
    )
    names = st.lists(st.sampled_from(["a", "name", "count", "ok", "tags", "kind"]), min_size=1, max_size=3, unique=True)

    def objects(values: st.SearchStrategy[dict]) -> st.SearchStrategy[dict]:
        return names.flatmap(lambda keys: st.fixed_dictionaries({key: values for key in keys})).map(
            lambda properties: {"type": "object", "properties": properties, "required": sorted(properties), "additionalProperties": False}
        )

    values = st.one_of(leaves, leaves.map(lambda item: {"type": "array", "items": item, "maxItems": 2}))
    return objects(st.one_of(values, objects(leaves)))


def as_template_reads_them(messages: list[dict]) -> list[dict]:
    """``messages`` as the server hands them to a chat template: a message's text parts joined by lines."""
    return [
        {**message, "content": message["content"] if isinstance(message["content"], str) else "\n".join(part["text"] for part in message["content"])}
        for message in messages
    ]


def server_sent_events(lines: Any) -> list[str]:
    return [line[len("data:") :].strip() for line in lines if line.startswith("data:")]


def is_a_beginning_of(shorter: str, longer: str) -> bool:
    return longer.startswith(shorter)


def token_logprobs(choices: list[dict]) -> list[dict]:
    """The ``logprobs.content`` entries of an answer's or a stream's choices, in order."""
    return [entry for choice in choices for entry in ((choice.get("logprobs") or {}).get("content") or [])]


class ChatTests:
    """Checks for chat models: the template is applied, streaming equals not streaming under greedy
    decoding, stop sequences and ``max_tokens`` are honoured, usage counts right, answers do not depend
    on their batch neighbours, and a client that leaves frees its slot."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        yours_first(cls)

    task_name: ClassVar[str] = "chat-completion"
    timeout: ClassVar[float] = 120.0
    conversations: ClassVar[tuple] = CONVERSATIONS
    short: ClassVar[int] = 24
    """max_tokens of most checks: enough to see words, little enough to run fast."""
    max_examples: ClassVar[int] = 20
    """Generated requests per property."""
    long: ClassVar[int] = 4000
    """max_tokens of the disconnect check: a generation long enough to outlast the client."""
    structured_tokens: ClassVar[int] = 160
    """max_tokens of the structured-output and tool checks: room for any of their short schemas' answers."""
    top_logprobs: ClassVar[int] = 5
    """Alternatives asked for per token by the ``top_logprobs`` check."""

    @pytest.fixture(scope="class")
    @classmethod
    def served(cls, widgetd_plugin, widgetd_model, widgetd_server_settings, widgetd_device) -> ChatServed:
        server = server_for(widgetd_model, widgetd_plugin, widgetd_server_settings, device=widgetd_device)
        with server, httpx.Client(base_url=server.url) as client:
            model = server.state.models[0]
            expect(model.chat, f"model {model.model_id} does not chat: its pipeline needs an engine and the model a chat template")
            yield ChatServed(server, model, client, cls.timeout)

    def greedy(self, messages: list[dict], **options: Any) -> dict:
        return {"messages": messages, "temperature": 0, "max_tokens": self.short, **options}

    def test_the_chat_template_is_applied(self, served, prompt_tokens):
        for messages in self.conversations:
            chat = served.complete(self.greedy(messages, max_tokens=1))
            expected = prompt_tokens(messages)
            expect(
                chat.usage["prompt_tokens"] == expected,
                f"the model's chat template makes {expected} tokens of {messages}, the answer's usage says "
                f"{chat.usage['prompt_tokens']}: the template was not applied as the model's tokenizer applies it",
            )

    def test_streaming_equals_not_streaming(self, served):
        for messages in self.conversations:
            body = self.greedy(messages, stream_options={"include_usage": True})
            whole = served.complete({key: value for key, value in body.items() if key != "stream_options"})
            streamed = served.stream(body)
            expect(
                (streamed.content, streamed.finish_reason) == (whole.content, whole.finish_reason),
                f"greedy decoding must answer the same streamed and not: {streamed.content!r} ({streamed.finish_reason}) "
                f"and {whole.content!r} ({whole.finish_reason}) for {messages}",
            )
            expect(streamed.usage == whole.usage, f"the stream's usage {streamed.usage} must equal the answer's {whole.usage}")
            expect(all(chunk.get("usage") is None for chunk in streamed.chunks[:-1]), "only the last chunk may carry the usage")

    def test_the_legacy_conversational_payload_gets_the_chat_answer(self, served):
        """The Hub's pre-chat payload (past_user_inputs, generated_responses, text) is the same conversation:
        greedy, its generated_text is the chat answer, and the conversation comes back grown by this turn."""
        past, responses, text = ["Hello!", "Tell me about cats."], ["Hi, how can I help?", "Cats purr."], "And dogs?"
        messages = [{"role": role, "content": content} for pair in zip(past, responses) for role, content in zip(("user", "assistant"), pair)]
        chat = served.complete(self.greedy([*messages, {"role": "user", "content": text}]))
        body = {"inputs": {"past_user_inputs": past, "generated_responses": responses, "text": text}, "parameters": {"max_new_tokens": self.short, "temperature": 0}}
        reply = served.client.post(f"/models/{served.model.model_id}/pipeline/conversational", json=body, timeout=self.timeout)
        expect(reply.status_code == 200, f"every model that chats answers the conversational payload; got {reply.status_code}: {reply.text[:300]}")
        answer = msgspec.json.decode(reply.content, type=ConversationalOutput)
        expect(answer.generated_text == chat.content.strip(), f"the conversational answer {answer.generated_text!r} must be the chat answer {chat.content.strip()!r}")
        expect(
            (answer.conversation.past_user_inputs, answer.conversation.generated_responses) == ([*past, text], [*responses, answer.generated_text]),
            f"the conversation must come back grown by this turn, got {answer.conversation}",
        )

    def test_usage_counts_the_tokens(self, served):
        for max_tokens in (1, 5):
            chat = served.complete(self.greedy(self.conversations[0], max_tokens=max_tokens))
            usage = chat.usage
            expect(usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"], f"total_tokens must be the sum: {usage}")
            expect(usage["completion_tokens"] <= max_tokens, f"max_tokens={max_tokens} allows no more tokens, the usage says {usage}")
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
            expect(0 <= cached <= usage["prompt_tokens"], f"cached_tokens counts some of the prompt's tokens: {usage}")
            if chat.finish_reason == "length":
                expect(usage["completion_tokens"] == max_tokens, f"a completion cut by max_tokens={max_tokens} has that many tokens: {usage}")

    def test_finish_reasons_say_why_the_answer_ended(self, served):
        """A completion cut by ``max_tokens`` finishes with ``length``, streamed and not; one that says ``stop``
        without a stop sequence ended by itself: with more room it ends at the same place."""
        for messages in self.conversations:
            whole = served.complete(self.greedy(messages))
            made = whole.usage["completion_tokens"]
            if whole.finish_reason == "stop":
                roomier = served.complete(self.greedy(messages, max_tokens=self.short + 8))
                expect(
                    (roomier.content, roomier.usage["completion_tokens"]) == (whole.content, made),
                    f"finish_reason stop after {made} tokens with no stop sequence, yet with more room the answer goes on "
                    f"({whole.content!r}, then {roomier.content!r}): a completion cut by max_tokens finishes with length",
                )
            if made > 2:
                for chat in (served.complete(self.greedy(messages, max_tokens=2)), served.stream(self.greedy(messages, max_tokens=2, stream_options={"include_usage": True}))):
                    expect(
                        (chat.finish_reason, chat.usage and chat.usage["completion_tokens"]) == ("length", 2),
                        f"an answer cut by max_tokens=2 (it goes on to {made} tokens) must finish with length after 2 tokens"
                        f"{' when streamed' if chat.chunks else ''}, got {chat.finish_reason} after {chat.usage}",
                    )

    def test_max_tokens_is_honoured(self, served):
        messages = self.conversations[0]
        answers = [served.complete(self.greedy(messages, max_tokens=limit)) for limit in (1, 4, self.short)]
        for shorter, longer in zip(answers, answers[1:]):
            expect(
                is_a_beginning_of(shorter.content, longer.content),
                f"greedy answers with fewer max_tokens must begin those with more: {shorter.content!r}, {longer.content!r}",
            )
        legacy = served.complete({"messages": messages, "temperature": 0, "max_completion_tokens": 4})
        expect(legacy.content == answers[1].content, "max_completion_tokens and max_tokens must mean the same")

    def test_stop_sequences_are_honoured(self, served):
        for messages in self.conversations:
            whole = served.complete(self.greedy(messages))
            if len(whole.content) < 6:
                continue
            stop = whole.content[3:6]
            expected = whole.content[: whole.content.find(stop)]
            for chat in (served.complete(self.greedy(messages, stop=[stop])), served.stream(self.greedy(messages, stop=stop))):
                expect(
                    (chat.content, chat.finish_reason) == (expected, "stop"),
                    f"stop={stop!r} must end the answer before it, with finish_reason stop: expected {expected!r}, "
                    f"got {chat.content!r} ({chat.finish_reason})",
                )

    def test_answers_do_not_depend_on_batch_neighbours(self, served):
        alone = [served.complete(self.greedy(messages)).content for messages in self.conversations]
        together = list(self.conversations) * 3
        with ThreadPoolExecutor(len(together)) as pool:
            replies = list(pool.map(lambda messages: served.complete(self.greedy(messages)).content, together))
        for messages, reply in zip(together, replies):
            expected = alone[self.conversations.index(messages)]
            expect(reply == expected, f"generated among others, {messages} got {reply!r}; alone it gets {expected!r}")

    def test_a_client_that_leaves_frees_its_slot(self, served):
        body = self.greedy(self.conversations[0], max_tokens=self.long)
        room = served.complete(body).usage["completion_tokens"]
        if room < 200:
            pytest.skip(f"the model ends its answer after {room} tokens: too soon to see a generation stop early")
        before = self.metric(served, "widgetd_generated_tokens_total")
        with served.client.stream("POST", served.route, json={**body, "stream": True}, timeout=self.timeout) as response:
            for line in response.iter_lines():
                if line.startswith("data:") and '"content":"' in line and '"content":""' not in line:
                    break  # one piece of text, then the client leaves
        deadline = time.monotonic() + 10
        while self.metric(served, "widgetd_generating_sequences") and time.monotonic() < deadline:
            time.sleep(0.02)
        expect(self.metric(served, "widgetd_generating_sequences") == 0, "a stream whose client left must leave the batch")
        made = self.metric(served, "widgetd_generated_tokens_total") - before
        expect(
            made < room / 2,
            f"the client left after its first piece, yet {made} tokens were generated of the {room} it asked for: "
            "a stream whose client leaves must stop within a step",
        )

    def test_generated_requests_are_answered_or_refused(self, served, widgetd_exploration):
        """Bodies generated from OpenAI's request Struct, streamed or not: a valid answer or a 4xx naming
        the problem, never a 500; a stream is valid chunks, or ends with an error event."""
        statuses: list[int] = []

        def check(body: dict) -> None:
            body = {**body, "max_tokens": min(body.get("max_tokens") or 8, 8)}
            body.pop("max_completion_tokens", None)
            response = served.post({**body, "stream": False})
            statuses.append(response.status_code)
            expect(response.status_code < 500, f"a request a client can send must get a 200 or a 4xx, got {response.status_code}: {response.text[:300]}\n  request: {body}")
            if response.status_code != 200:
                error = response.json().get("error")
                expect(isinstance(error, dict) and error.get("message"), f"a refused request must get OpenAI's error object, got {response.text[:300]}")
                return
            served.complete({**body, "stream": False})
            if body.get("stream"):
                try:
                    served.stream(body)
                except ContractViolation as violation:
                    expect("the stream failed" in str(violation) and '"code": "5' not in str(violation), str(violation))

        bodies = st.one_of(chat_bodies(), bodies_for(ChatCompletionInput))  # likely answered; anything the Struct allows
        widgetd_exploration.check_all(bodies, check, self.max_examples)
        expect(200 in statuses, f"none of {len(statuses)} generated valid chat requests got a 200 (statuses: {sorted(set(statuses))})")

    def constrains(self, served: ChatServed) -> bool:
        return bool(served.model.describe()["generation"].get("structured_outputs"))

    def expect_refused(self, served: ChatServed, body: dict, field: str) -> None:
        response = served.post(body)
        error = response.json().get("error") if response.status_code == 400 else None
        expect(
            isinstance(error, dict) and error.get("param") == field,
            f"a model whose engine cannot honour {field} must refuse it with a 400 naming it, got {response.status_code}: {response.text[:300]}",
        )

    def test_structured_outputs_fit_their_schemas(self, served, widgetd_exploration):
        """``response_format`` with generated JSON Schemas: an answer that ends by itself is JSON that fits its
        schema, and the same streamed and not. An engine that cannot constrain refuses with a 400 naming the field."""
        messages = self.conversations[0]
        if not self.constrains(served):
            return self.expect_refused(served, {"messages": messages, "response_format": {"type": "json_object"}}, "response_format")
        finished: list[bool] = []

        def check(schema: dict) -> None:
            import jsonschema

            body = self.greedy(messages, max_tokens=self.structured_tokens, response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}})
            whole, streamed = served.complete(body), served.stream(body)
            expect((streamed.content, streamed.finish_reason) == (whole.content, whole.finish_reason), f"a structured answer must be the same streamed and not: {streamed.content!r} and {whole.content!r}")
            finished.append(whole.finish_reason == "stop")
            if whole.finish_reason != "stop":
                return
            try:
                jsonschema.validate(json.loads(whole.content or ""), schema)
            except (ValueError, jsonschema.ValidationError) as error:
                raise ContractViolation(f"the answer {whole.content!r} is not JSON that fits its schema {schema}: {str(error).splitlines()[0]}") from None

        widgetd_exploration.check_all(bounded_schemas(), check, max(4, self.max_examples // 4))
        expect(any(finished), f"no structured answer ended by itself within {self.structured_tokens} tokens as JSON that fits its schema; every schema here fits in far fewer")

    def test_forced_tool_calls_name_the_function_with_arguments_that_fit(self, served, widgetd_exploration):
        """``tool_choice`` naming a function, with generated parameter schemas: one call of that function whose
        arguments fit its parameters, ``finish_reason`` tool_calls, the same streamed (added up from the deltas)
        and not. An engine that cannot constrain refuses with a 400 naming ``tool_choice``."""
        messages = self.conversations[0]
        named = {"type": "function", "function": {"name": "lookup"}}
        other = {"type": "function", "function": {"name": "other", "parameters": {"type": "object", "properties": {"x": {"type": "boolean"}}}}}
        if not self.constrains(served):
            tools = [{"type": "function", "function": {"name": "lookup"}}]
            return self.expect_refused(served, {"messages": messages, "tools": tools, "tool_choice": named}, "tool_choice")

        def check(parameters: dict) -> None:
            import jsonschema

            tools = [other, {"type": "function", "function": {"name": "lookup", "description": "Looks things up", "parameters": parameters}}]
            body = self.greedy(messages, max_tokens=self.structured_tokens, tools=tools, tool_choice=named)
            whole, streamed = served.complete(body), served.stream(body)
            expect(whole.finish_reason == "tool_calls" and len(whole.tool_calls) == 1 and whole.tool_calls[0][0] == "lookup",
                   f"tool_choice names lookup: one call of it and finish_reason tool_calls, got {whole.tool_calls} ({whole.finish_reason}), text {whole.content!r}")
            expect((streamed.tool_calls, streamed.finish_reason) == (whole.tool_calls, whole.finish_reason),
                   f"streamed tool calls must add up to the answer's: {streamed.tool_calls} and {whole.tool_calls}")
            try:
                jsonschema.validate(json.loads(whole.tool_calls[0][1]), parameters)
            except (ValueError, jsonschema.ValidationError) as error:
                raise ContractViolation(f"the call's arguments {whole.tool_calls[0][1]!r} do not fit its parameters {parameters}: {str(error).splitlines()[0]}") from None

        widgetd_exploration.check_all(bounded_schemas(), check, max(4, self.max_examples // 4))

    def test_top_logprobs_are_the_most_likely_tokens_most_likely_first(self, served):
        """``logprobs`` with ``top_logprobs``: every token reports that many alternatives, most likely first, as
        log-probabilities of one distribution (at most 0, adding up to at most 1); greedy, each token is the most
        likely, so its log-probability is its first alternative's; the same streamed. An engine that reports no
        alternatives (``top_logprobs`` false in /info) refuses them with a 400 naming ``top_logprobs``."""
        body = self.greedy(self.conversations[0], logprobs=True, top_logprobs=self.top_logprobs)
        if not served.model.describe()["generation"].get("top_logprobs"):
            return self.expect_refused(served, body, "top_logprobs")
        response = served.post(body)
        expect(response.status_code == 200, f"logprobs with top_logprobs must get a 200, got {response.status_code}: {response.text[:300]}")
        whole = token_logprobs(response.json()["choices"])
        expect(whole, f"logprobs: true must give each token's log-probability, got {response.text[:300]}")
        for entry in whole:
            alternatives = [other["logprob"] for other in entry["top_logprobs"]]
            expect(len(alternatives) == self.top_logprobs, f"top_logprobs {self.top_logprobs} asks for that many alternatives per token, got {entry}")
            expect(alternatives == sorted(alternatives, reverse=True), f"alternatives must come most likely first, got {entry}")
            expect(alternatives[0] <= 1e-6 and sum(math.exp(value) for value in alternatives) <= 1 + 1e-4, f"alternatives must be log-probabilities of one distribution, got {entry}")
            expect(math.isclose(entry["logprob"], alternatives[0], rel_tol=1e-4, abs_tol=1e-5), f"a greedy token is the most likely: its log-probability must be its first alternative's, got {entry}")
        streamed = token_logprobs([choice for chunk in served.stream(body).chunks or [] for choice in chunk["choices"]])
        expect(
            [entry["token"] for entry in streamed] == [entry["token"] for entry in whole]
            and all(math.isclose(a["logprob"], b["logprob"], rel_tol=1e-4, abs_tol=1e-5) for a, b in zip(streamed, whole)),
            "streamed, the tokens and their log-probabilities must be those of the whole answer",
        )

    def test_options_a_model_cannot_honour_are_refused(self, served):
        messages = self.conversations[0]
        for field, value in (("n", 2), ("logit_bias", {"1": 5}), ("unknown_option", 1)):
            response = served.post({"messages": messages, field: value})
            expect(response.status_code == 400, f"{field}={value!r} cannot be honoured: a 400 naming it, got {response.status_code}")
            error = response.json().get("error")
            expect(
                isinstance(error, dict) and error.get("param") == field and error.get("message"),
                f"the 400 for {field} must be OpenAI's error object naming it as its param, got {response.json()}",
            )

    def metric(self, served: ChatServed, name: str) -> float:
        label = re.escape(f'model="{served.model.model_id}"')
        found = re.search(rf"^{name}\{{{label}\}} (\S+)$", served.client.get("/metrics").text, re.M)
        return float(found.group(1)) if found else 0.0
