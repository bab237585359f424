"""The `openai` SDK (sync, async, streaming) against `widgetd serve`: chat completions, embeddings and the
model list, unchanged client code pointed at a widgetd base URL."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

openai = pytest.importorskip("openai")

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Where does Sarah live?"}]


def sdk(server, path: str = "") -> "openai.OpenAI":
    return openai.OpenAI(base_url=f"{server.url}{path}/v1", api_key="unused", max_retries=0)


def test_chat_completion(server):
    answer = sdk(server).chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=8, temperature=0, seed=1)
    choice = answer.choices[0]
    assert answer.object == "chat.completion" and answer.model == "tiny-chat"
    assert choice.message.role == "assistant" and choice.message.content and choice.finish_reason == "length"
    assert answer.usage.completion_tokens == 8 and answer.usage.total_tokens == answer.usage.prompt_tokens + 8


def test_streamed_chat_equals_the_whole_answer_and_reports_usage(server):
    client = sdk(server, "/models/tiny-chat")
    whole = client.chat.completions.create(model="anything", messages=MESSAGES, max_tokens=12, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="anything", messages=MESSAGES, max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens == 12
    assert chunks[-1].choices == [] and [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason] == ["length"]


def test_the_async_client_streams_concurrently(server):
    async def ask() -> list[str]:
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)

        async def one(question: str) -> str:
            stream = await client.chat.completions.create(
                model="tiny-chat", messages=[{"role": "user", "content": question}], max_tokens=10, temperature=0, stream=True
            )
            return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

        questions = ["Where does Sarah live?", "What is the capital of France?"] * 4
        return await asyncio.gather(*(one(question) for question in questions))

    answers = asyncio.run(ask())
    assert answers[0::2] == [answers[0]] * 4 and answers[1::2] == [answers[1]] * 4


def test_refusals_raise_bad_request_naming_the_option(server):
    with pytest.raises(openai.BadRequestError, match="logit_bias"):
        sdk(server).chat.completions.create(model="tiny-chat", messages=MESSAGES, logit_bias={"5": 10})
    with pytest.raises(openai.BadRequestError, match="n"):
        sdk(server).chat.completions.create(model="tiny-chat", messages=MESSAGES, n=2)


def test_embeddings_as_the_sdk_asks_for_them(server):
    client = sdk(server)
    texts = ["the cat sat on the mat", "a dog"]
    packed = client.embeddings.create(model="tiny-st", input=texts)  # the SDK asks for base64 and unpacks it
    plain = client.embeddings.create(model="tiny-st", input=texts, encoding_format="float")
    assert [item.index for item in packed.data] == [0, 1]
    assert np.allclose(packed.data[0].embedding, plain.data[0].embedding, atol=1e-6)
    assert packed.usage.prompt_tokens == packed.usage.total_tokens > 4
    short = client.embeddings.create(model="tiny-st", input="the cat", dimensions=8, encoding_format="float")
    assert len(short.data[0].embedding) == 8


def test_the_model_list(server):
    ids = [model.id for model in sdk(server).models.list()]
    assert "tiny-chat" in ids and "tiny-st" in ids
