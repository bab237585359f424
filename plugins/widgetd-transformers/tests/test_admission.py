"""Admission by memory: sequences start while the key/value cache they may grow to fits the budget; the
others wait, in order, and answer exactly as they would have; /info tells the budget."""

from __future__ import annotations

import httpx

import widgetd_transformers
from widgetd.generating import Generation, GenerationOptions, Job, Prompt, iterate
from widgetd.limits import Limits
from widgetd.state import ServerSettings
from widgetd.testing.server import LiveServer
from widgetd_transformers.continuous import CausalEngine
from widgetd_transformers.memory import default_budget, kv_bytes_per_token

PROMPTS = ["the cat sat on", "good dog", "what capital of france", "my name is sarah", "where does the dog live"]


def test_sequences_start_while_their_caches_fit_and_the_rest_wait_their_turn(model_dirs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = model_dirs["tiny-chat"]
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    per_token = kv_bytes_per_token(model)
    layers, kv_heads, head = model.config.num_hidden_layers, model.config.num_key_value_heads, model.config.hidden_size // model.config.num_attention_heads
    assert per_token == layers * 2 * kv_heads * head * 4  # keys and values, float32
    longest = max(len(tokenizer(text)["input_ids"]) for text in PROMPTS) + 12
    engine = CausalEngine(tokenizer, model, model.device, kv_cache_bytes=2 * longest * per_token)
    assert engine.memory == {"admission": "memory", "kv_bytes_per_token": per_token, "kv_budget_bytes": 2 * longest * per_token}

    jobs = [Job(Prompt(text=text), GenerationOptions(max_new_tokens=12, do_sample=False)) for text in PROMPTS]
    generations = [Generation(job, engine.admit(job.prompt, job.options)) for job in jobs]
    active, started_order, most = [], [], 0
    joining = list(generations)
    while joining or active:
        for generation, outcome in iterate(engine, [], joining, active):
            if not generation.tokens:
                started_order.append(generation)
            generation.receive(outcome)
        most = max(most, len(engine.rows) + len(engine.reading))
        active = [generation for generation in (*active, *joining) if not generation.done]
        joining = []
    assert most == 2, "two sequences' caches fit the budget, never three"
    assert [g.job.prompt.text for g in started_order] == PROMPTS, "the held ones start first come, first started"
    for generation in generations:
        ids = tokenizer(generation.job.prompt.text, return_tensors="pt")
        assert [token.id for token in generation.tokens] == model.generate(**ids, max_new_tokens=12, do_sample=False)[0, ids["input_ids"].shape[1] :].tolist()


def test_a_held_sequence_whose_client_left_is_forgotten(model_dirs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = model_dirs["tiny-chat"]
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    engine = CausalEngine(tokenizer, model, model.device, kv_cache_bytes=1)
    first, second = (engine.admit(Prompt(text=text), GenerationOptions(max_new_tokens=5)) for text in PROMPTS[:2])
    engine.join(first)
    assert first in engine.read_joined()
    engine.join(second)
    assert engine.held == [second]
    engine.leave(second)
    assert engine.held == [] and second not in engine.step() and second not in engine.read_joined()


def test_the_budget_is_a_share_of_the_device_and_info_tells_it(model_dirs):
    assert default_budget("cpu", 0) > default_budget("cpu", 1024**3) > 0
    settings = ServerSettings(limits=Limits(kv_cache_bytes=123_456_789))
    with LiveServer.for_models([str(model_dirs["tiny-chat"])], plugins={"transformers": widgetd_transformers}, settings=settings) as live:
        memory = httpx.get(f"{live.url}/info").json()["models"][0]["generation"]["memory"]
    assert memory["admission"] == "memory" and memory["kv_budget_bytes"] == 123_456_789 and memory["kv_bytes_per_token"] > 0
