"""Prefix caching: prompts that start alike read only what is new, and answer exactly what they answer read
whole, on several architectures (a sliding window among them); the budget holds; OpenAI's usage and /metrics
count the reused tokens."""

from __future__ import annotations

import re

import httpx
import pytest

import widgetd_transformers
from widgetd.generating import GenerationOptions, Job, Prompt, generate_all
from widgetd.limits import Limits
from widgetd.state import ServerSettings
from widgetd.testing.server import LiveServer
from widgetd_transformers.continuous import CausalEngine
from widgetd_transformers.prefixes import BLOCK_TOKENS, PrefixCache
from widgetd_transformers.testing import save_qwen2

SYSTEM = "you are a helpful assistant who answers about cats dogs food and london " * 3
QUESTIONS = ["where does the cat sit", "what capital of france", "who was great"]


def engine_for(architecture: str, model_dirs, folder, budget: int) -> CausalEngine:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if architecture in ("tiny-chat", "tiny-gpt2"):
        path = model_dirs[architecture]
    else:
        path = save_qwen2(folder / architecture, model_dirs["tiny-chat"], sliding=architecture.endswith("window"))
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    return CausalEngine(tokenizer, model, model.device, prefix_cache_bytes=budget)


def prompts() -> list[str]:
    """A shared system prompt with different questions, then a conversation growing turn by turn."""
    conversation = f"{SYSTEM} the cat sat on"
    grown = [conversation, f"{conversation} the mat good dog", f"{conversation} the mat good dog my name is sarah"]
    return [f"{SYSTEM} {question}" for question in QUESTIONS] + grown


@pytest.mark.parametrize("architecture", ["tiny-chat", "tiny-gpt2", "qwen2", "qwen2-sliding-window"])
def test_reused_prefixes_answer_exactly_what_the_whole_prompt_does(architecture, model_dirs, tmp_path):
    engine = engine_for(architecture, model_dirs, tmp_path, budget=64 * 1024**2)
    assert engine.prefixes is not None, f"{architecture}: its cache takes part in prefix caching"
    jobs = [Job(Prompt(text=text), GenerationOptions(max_new_tokens=12, do_sample=False)) for text in prompts()]
    generations = [generate_all(engine, [job])[0] for job in jobs]  # one at a time: each finds what those before kept
    for job, generation in zip(jobs, generations):
        ids = engine.tokenizer(job.prompt.text, return_tensors="pt")
        expected = engine.model.generate(**ids, max_new_tokens=12, do_sample=False)[0, ids["input_ids"].shape[1] :]
        assert [token.id for token in generation.tokens] == expected.tolist(), (architecture, job.prompt.text)
    first, *later = generations
    assert first.cached_tokens == 0
    shared = len(engine.tokenizer(SYSTEM)["input_ids"]) // BLOCK_TOKENS * BLOCK_TOKENS
    for generation in later:
        assert generation.cached_tokens >= shared > 0 and generation.cached_tokens % BLOCK_TOKENS == 0
        assert generation.cached_tokens < generation.prompt_tokens  # the last token is always read: it gives the scores
    assert generations[-1].cached_tokens > shared  # the conversation's earlier turn, beyond the system prompt


def test_a_prompt_read_again_is_answered_from_its_blocks_and_batches_with_the_rest(model_dirs, tmp_path):
    engine = engine_for("tiny-chat", model_dirs, tmp_path, budget=64 * 1024**2)
    alone = CausalEngine(engine.tokenizer, engine.model, engine.device)
    jobs = [Job(Prompt(text=text), GenerationOptions(max_new_tokens=10, do_sample=False)) for text in prompts()]
    generate_all(engine, jobs[:2])
    together = generate_all(engine, jobs)  # several join with cached prefixes, then decode in one batch
    assert all(generation.cached_tokens > 0 for generation in together)
    assert [g.text for g in together] == [g.text for g in generate_all(alone, jobs)]
    assert all(generation.cached_tokens == 0 for generation in generate_all(alone, jobs))


def test_the_budget_holds_and_a_prefixs_end_goes_before_its_start(model_dirs, tmp_path):
    engine = engine_for("tiny-chat", model_dirs, tmp_path, budget=64 * 1024**2)
    ids = engine.tokenizer(SYSTEM + " " + SYSTEM)["input_ids"]
    block_bytes = None
    for budget_blocks in (3, 1):
        prefixes = engine.prefixes = PrefixCache(10**9)
        generate_all(engine, [Job(Prompt(text=SYSTEM + " " + SYSTEM), GenerationOptions(max_new_tokens=1))])
        block_bytes = prefixes.used_bytes // len(prefixes.blocks)
        prefixes.budget_bytes = budget_blocks * block_bytes
        generate_all(engine, [Job(Prompt(text="good dog " * 40), GenerationOptions(max_new_tokens=1))])
        assert prefixes.used_bytes <= prefixes.budget_bytes and len(prefixes.blocks) == budget_blocks
        # What is left is the start of the last prompt read: a prefix reusable block by block.
        assert set(prefixes.blocks) == set(prefixes.keys_of(engine.tokenizer("good dog " * 40)["input_ids"])[:budget_blocks])
    assert len(ids) > 3 * BLOCK_TOKENS and block_bytes > 0


def test_a_zero_budget_keeps_nothing(model_dirs, tmp_path):
    engine = engine_for("tiny-chat", model_dirs, tmp_path, budget=0)
    assert engine.prefixes is None
    generations = generate_all(engine, [Job(Prompt(text=text), GenerationOptions(max_new_tokens=3)) for text in prompts()])
    assert all(generation.cached_tokens == 0 for generation in generations)


@pytest.fixture(scope="module")
def chat_server(model_dirs):
    with LiveServer.for_models([str(model_dirs["tiny-chat"])], plugins={"transformers": widgetd_transformers}) as live:
        yield live


def test_openai_usage_and_metrics_count_the_cached_tokens(chat_server):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "where does the cat sit"}]
    body = {"model": "tiny-chat", "messages": messages, "max_tokens": 6, "temperature": 0}
    first = httpx.post(f"{chat_server.url}/v1/chat/completions", json=body, timeout=60).json()
    again = httpx.post(f"{chat_server.url}/v1/chat/completions", json=body, timeout=60).json()
    streamed = httpx.post(
        f"{chat_server.url}/v1/chat/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}}, timeout=60
    )
    assert first["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    prompt = again["usage"]["prompt_tokens"]
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == (prompt - 1) // BLOCK_TOKENS * BLOCK_TOKENS > 0
    assert again["choices"][0]["message"] == first["choices"][0]["message"]
    usage = [line for line in streamed.text.splitlines() if '"usage":{' in line][-1]
    assert f'"cached_tokens":{(prompt - 1) // BLOCK_TOKENS * BLOCK_TOKENS}' in usage
    metrics = httpx.get(f"{chat_server.url}/metrics").text
    total = int(re.search(r'widgetd_prompt_tokens_total\{model="tiny-chat"\} (\d+)', metrics).group(1))
    cached = int(re.search(r'widgetd_prompt_cached_tokens_total\{model="tiny-chat"\} (\d+)', metrics).group(1))
    assert total == 3 * prompt and cached == 2 * ((prompt - 1) // BLOCK_TOKENS * BLOCK_TOKENS)


def test_prefix_caching_can_be_turned_off(model_dirs):
    settings = ServerSettings(limits=Limits(prefix_cache_bytes=0))
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": SYSTEM}], "max_tokens": 3}
    with LiveServer.for_models([str(model_dirs["tiny-chat"])], plugins={"transformers": widgetd_transformers}, settings=settings) as live:
        for _ in range(2):
            answer = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=60).json()
            assert answer["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
