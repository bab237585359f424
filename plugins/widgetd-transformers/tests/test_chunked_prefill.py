"""Chunked prefill: a long prompt that arrives while others generate is read a chunk per step, between their
tokens; its answer and theirs are exactly what each gives alone."""

from __future__ import annotations

import pytest

from widgetd.generating import Generation, GenerationOptions, Job, Prompt, iterate
from widgetd_transformers.continuous import CausalEngine
from widgetd_transformers.testing import save_qwen2

LONG = "my name is sarah and i live in london where the cat sat on the mat and the dog ate good food " * 4
SHORT = ["the cat sat on", "good", "what capital of france"]


def engine_for(architecture: str, model_dirs, folder, chunk: int, prefix_cache_bytes: int = 0) -> CausalEngine:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = model_dirs[architecture] if architecture in model_dirs else save_qwen2(folder / architecture, model_dirs["tiny-chat"], sliding=False)
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    return CausalEngine(tokenizer, model, model.device, prefill_chunk=chunk, prefix_cache_bytes=prefix_cache_bytes)


def run(engine: CausalEngine, generations: list[Generation], long: Generation, joins_at: int) -> list[list[Generation]]:
    """Step the short generations; the long one joins at iteration ``joins_at``. What got a token, by iteration."""
    active: list[Generation] = []
    delivered = []
    iteration = 0
    waiting = list(generations)
    while waiting or active or long.sequence is not None and not long.done:
        joining = waiting[:]
        waiting = []
        if iteration == joins_at:
            joining.append(long)
        got = []
        for generation, outcome in iterate(engine, [], joining, active):
            generation.receive(outcome)
            got.append(generation)
        delivered.append(got)
        active = [generation for generation in (*active, *joining) if not generation.done]
        iteration += 1
        if iteration > 500:
            raise AssertionError("the generations never ended")
    return delivered


def generation(engine: CausalEngine, text: str, new_tokens: int) -> Generation:
    job = Job(Prompt(text=text), GenerationOptions(max_new_tokens=new_tokens, do_sample=False))
    return Generation(job, engine.admit(job.prompt, job.options))


@pytest.mark.parametrize("architecture", ["tiny-chat", "tiny-gpt2", "qwen2"])
def test_a_long_prompt_read_in_chunks_answers_what_it_does_read_whole(architecture, model_dirs, tmp_path):
    engine = engine_for(architecture, model_dirs, tmp_path, chunk=7, prefix_cache_bytes=16 * 1024**2)
    shorts = [generation(engine, text, 30) for text in SHORT]
    long = generation(engine, LONG, 12)
    again = generation(engine, LONG + " the end", 12)  # its start comes from the prefix cache, the rest in chunks
    run(engine, shorts, long, joins_at=2)
    run(engine, [generation(engine, text, 20) for text in SHORT], again, joins_at=1)
    assert again.cached_tokens > 0
    for done in (*shorts, long, again):
        ids = engine.tokenizer(done.job.prompt.text, return_tensors="pt")
        expected = engine.model.generate(**ids, max_new_tokens=done.job.options.max_new_tokens, do_sample=False)[0, ids["input_ids"].shape[1] :]
        assert [token.id for token in done.tokens] == expected.tolist(), (architecture, done.job.prompt.text)


def test_running_sequences_get_a_token_every_step_while_a_long_prompt_is_read(model_dirs, tmp_path):
    engine = engine_for("tiny-chat", model_dirs, tmp_path, chunk=16)
    shorts = [generation(engine, text, 60) for text in SHORT]
    long = generation(engine, LONG, 4)
    delivered = run(engine, shorts, long, joins_at=3)
    reading = [got for got in delivered[3:] if long not in got][: -(-long.prompt_tokens // 16) - 1]
    first_token_at = next(index for index, got in enumerate(delivered) if long in got)
    assert first_token_at - 3 == -(-long.prompt_tokens // 16) - 1, "16 prompt tokens a step: the prompt is read over that many steps"
    assert reading and all(all(short in got for short in shorts) for got in reading), "every running sequence got its token at every step"


def test_a_prompt_alone_is_read_in_one_pass(model_dirs, tmp_path):
    engine = engine_for("tiny-chat", model_dirs, tmp_path, chunk=8)
    long = generation(engine, LONG, 3)
    delivered = run(engine, [], long, joins_at=0)
    assert long in delivered[0], "nothing else runs: no reason to make it wait"


def test_by_default_a_steps_chunks_take_about_a_decode_step_as_their_measured_cost_predicts(model_dirs, tmp_path):
    from widgetd_transformers.prefill import CHUNK_SHARE, FIRST_CHUNK, LEAST_CHUNK, PrefillPace

    pace = PrefillPace(0, None)
    pace.begin(rows_running=False)
    assert pace.chunk(5000) == 5000, "nobody waits: the prompt is read whole"
    pace.begin(rows_running=True)
    assert pace.chunk(5000) == FIRST_CHUNK, "nothing timed yet"
    for seconds in (0.006, 0.005, 0.007):  # the median decode step sets the budget
        pace.decoded(seconds)
    pace.read(16, 0.0036)
    pace.read(32, 0.0052)  # 2 ms a chunk whatever it reads, 0.1 ms a token
    pace.begin(rows_running=True)
    assert pace.chunk(5000) == int((CHUNK_SHARE * 0.006 - 0.002) / 0.0001)
    pace.read(40, 0.006)
    assert pace.chunk(5000) == 0, "the step's time is spent"
    assert pace.chunk(10) == 0
    pace.begin(rows_running=True)
    pace.spent(0.005)  # other work of the step (the rows' cache making room)
    assert pace.chunk(5000) == LEAST_CHUNK, "a step's first chunk reads at least the least"
    pace.read(16, 0.0036)
    assert pace.chunk(5000) == 0
    pace.begin(rows_running=True)
    assert pace.chunk(7) == 7
    fixed = PrefillPace(100, None)
    fixed.begin(rows_running=True)
    assert fixed.chunk(5000) == 100 and fixed.chunk(30) == 30

    engine = engine_for("tiny-chat", model_dirs, tmp_path, chunk=0)
    shorts = [generation(engine, text, 60) for text in SHORT]
    long = generation(engine, LONG * 3, 4)
    delivered = run(engine, shorts, long, joins_at=3)
    assert next(index for index, got in enumerate(delivered) if long in got) > 3, "read over several steps"
    assert engine.pace.decodes and engine.pace.chunks
    ids = engine.tokenizer(long.job.prompt.text, return_tensors="pt")
    assert [token.id for token in long.tokens] == engine.model.generate(**ids, max_new_tokens=4, do_sample=False)[0, ids["input_ids"].shape[1] :].tolist()


@pytest.mark.parametrize("architecture", ["tiny-chat", "tiny-gpt2", "qwen2"])
def test_prompts_joining_together_are_read_in_one_pass_and_answer_what_each_does_alone(architecture, model_dirs, tmp_path):
    engine = engine_for(architecture, model_dirs, tmp_path, chunk=512, prefix_cache_bytes=16 * 1024**2)
    run(engine, [], generation(engine, LONG, 2), joins_at=0)  # its blocks are kept
    shorts = [generation(engine, text, 20) for text in SHORT]
    for generation_, outcome in iterate(engine, [], shorts, []):
        generation_.receive(outcome)
    # The first starts where LONG's kept blocks end, and has fewer tokens left to read than the last: its row
    # has padding between its cached keys and its unread tokens.
    together = [generation(engine, text, 12) for text in (LONG + " and what is the name of the dog", "the cat sat on the mat and the dog", "what capital of france is the best of all the cities")]
    forwards = []
    hook = engine.model.register_forward_hook(lambda *_: forwards.append(1))
    got = iterate(engine, [], together, shorts)
    hook.remove()
    assert 0 < together[0].prompt_tokens - together[0].sequence.cached_tokens < together[2].prompt_tokens
    assert {id(generation_) for generation_, _ in got} == {id(generation_) for generation_ in (*shorts, *together)}, "every joining prompt answered its first token at once"
    assert len(forwards) == 2, "one forward pass for the rows' step, one for the three prompts"
    for generation_, outcome in got:
        generation_.receive(outcome)
    active = [generation_ for generation_ in (*shorts, *together) if not generation_.done]
    while active:
        for generation_, outcome in iterate(engine, [], [], active):
            generation_.receive(outcome)
        active = [generation_ for generation_ in active if not generation_.done]
    for done in (*shorts, *together):
        ids = engine.tokenizer(done.job.prompt.text, return_tensors="pt")
        expected = engine.model.generate(**ids, max_new_tokens=done.job.options.max_new_tokens, do_sample=False)[0, ids["input_ids"].shape[1] :]
        assert [token.id for token in done.tokens] == expected.tolist(), (architecture, done.job.prompt.text)
