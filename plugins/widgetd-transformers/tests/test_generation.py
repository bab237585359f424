"""Continuous batching for causal language models: answers equal ``generate()``'s, whatever the batch;
TGI's and OpenAI's options; streams that end early; a model split across GPUs."""

from __future__ import annotations

import importlib.util
import json
import random

import httpx
import pytest

import widgetd
import widgetd_transformers
from widgetd import ModelSnapshot
from widgetd.devices import Accelerator
from widgetd.generating import Generation, GenerationOptions, Job, Prompt, StopSequences, generate_all, iterate
from widgetd.state import ServerSettings
from widgetd.testing.server import LiveServer
from widgetd_transformers.continuous import CausalEngine
from widgetd_transformers.loading import placement_options
from widgetd_transformers.testing import save_qwen2

PROMPTS = ["the cat sat on", "my name is sarah and i live in london", "good", "what capital of france a an it was great"]


@pytest.fixture(scope="module")
def chat_engine(model_dirs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = model_dirs["tiny-chat"]
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    return CausalEngine(tokenizer, model, model.device)


def reference(engine: CausalEngine, prompt: str, new_tokens: int) -> str:
    """What transformers' own ``generate`` answers, greedy, for the prompt alone."""
    ids = engine.tokenizer(prompt, return_tensors="pt")
    out = engine.model.generate(**ids, max_new_tokens=new_tokens, do_sample=False)
    return engine.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_greedy_answers_equal_generate_alone_whenever_sequences_join_and_leave(chat_engine):
    options = [GenerationOptions(max_new_tokens=n, do_sample=False) for n in (3, 24, 11, 40)]
    jobs = [Job(Prompt(text=prompt), option) for prompt in PROMPTS for option in options]
    generations = [Generation(job, chat_engine.admit(job.prompt, job.options)) for job in jobs]
    waiting, active, shuffle = list(generations), [], random.Random(3)
    while waiting or active:  # newcomers join at random steps, as requests arrive at a server
        count = shuffle.randint(0, 3)
        joining, waiting = waiting[:count], waiting[count:]
        for generation, outcome in iterate(chat_engine, [], joining, active):
            generation.receive(outcome)
        active = [generation for generation in (*active, *joining) if not generation.done]
    for generation in generations:
        expected = reference(chat_engine, generation.job.prompt.text, generation.job.options.max_new_tokens)
        assert generation.text == expected, generation.job


def test_a_sequence_that_leaves_frees_its_row_and_its_padding(chat_engine):
    long, short = (Generation(Job(Prompt(text=text), GenerationOptions(max_new_tokens=30)), None) for text in PROMPTS[1::2])
    for generation in (long, short):
        generation.sequence = chat_engine.admit(generation.job.prompt, generation.job.options)
    joining, active = [long, short], []
    while len(chat_engine.rows) < 2:  # both prompts read (a chunk a step beside the other's row)
        for generation, outcome in iterate(chat_engine, [], joining, active):
            generation.receive(outcome)
        joining, active = [], [long, short]
    iterate(chat_engine, [long], [], [short])
    assert chat_engine.rows == [short.sequence]
    assert chat_engine.mask.shape[1] == len(short.sequence.ids) - 1 and bool(chat_engine.mask.all())
    chat_engine.leave(short.sequence)
    assert chat_engine.rows == [] and chat_engine.cache is None


def test_seeded_samples_repeat_whatever_runs_beside_them(chat_engine):
    sampled = GenerationOptions(max_new_tokens=12, do_sample=True, temperature=0.9, top_p=0.9, seed=11)
    alone = generate_all(chat_engine, [Job(Prompt(text=PROMPTS[0]), sampled)])[0].text
    crowd = generate_all(chat_engine, [Job(Prompt(text=prompt), GenerationOptions(max_new_tokens=20)) for prompt in PROMPTS] + [Job(Prompt(text=PROMPTS[0]), sampled)])
    assert crowd[-1].text == alone


@pytest.mark.parametrize(
    ("stops", "keep", "pieces", "shown", "text"),
    [
        (["at"], True, ["the c", "at sat"], ["the c", "at"], "the cat"),
        (["at"], False, ["the c", "at sat"], ["the c", ""], "the c"),
        (["cat"], False, ["the c", "a", "x"], ["the ", "", "cax"], "the cax"),
        (["sat", "c"], False, ["the cat sat"], ["the "], "the "),
    ],
)
def test_stop_sequences_cut_the_text_and_hold_back_what_may_begin_one(stops, keep, pieces, shown, text):
    visible = StopSequences(stops, keep_stop=keep)
    got = [visible.add(piece) for piece in pieces]
    if not visible.stopped:
        got[-1] += visible.rest()
    assert got == shown and visible.text == text


def test_tgi_options_a_model_cannot_honour_are_refused(server):
    for name, value in (("best_of", 2), ("top_n_tokens", 3), ("watermark", True), ("adapter_id", "x"), ("decoder_input_details", True)):
        response = httpx.post(f"{server.url}/models/tiny-chat", json={"inputs": "hi", "parameters": {name: value}})
        assert response.status_code == 400 and response.json()["field"] == f"parameters.{name}", response.text
    sent_by_clients = {"best_of": 1, "watermark": False, "top_n_tokens": 0, "details": False, "decoder_input_details": False}
    response = httpx.post(f"{server.url}/models/tiny-chat", json={"inputs": "hi", "parameters": {**sent_by_clients, "max_new_tokens": 2}})
    assert response.status_code == 200


def test_top_logprobs_are_the_models_own_distribution_through_the_openai_sdk(server, chat_engine):
    """Greedy, the first token's alternatives are the top of the model's log-softmax after the chat prompt (ids,
    texts, values); every token is its first alternative; sampled, the alternatives come from the distribution
    the token was drawn from (temperature applied), so the drawn token's log-probability is among them or
    below the last; ``top_logprobs`` without ``logprobs`` is a 400 naming it."""
    import math

    import openai
    import torch

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    messages = [{"role": "user", "content": "Where does Sarah live?"}]
    greedy = client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=6, temperature=0, logprobs=True, top_logprobs=4)
    tokens = greedy.choices[0].logprobs.content
    assert len(tokens) == greedy.usage.completion_tokens
    ids = chat_engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        expected = torch.log_softmax(chat_engine.model(input_ids=ids).logits[0, -1].float(), dim=-1).topk(4)
    first = tokens[0].top_logprobs
    assert all(math.isclose(other.logprob, value, abs_tol=1e-4) for other, value in zip(first, expected.values.tolist()))
    # Each alternative reads as the token would read in the answer: greedy, the first is the token itself.
    assert all(token.token == token.top_logprobs[0].token and math.isclose(token.logprob, token.top_logprobs[0].logprob, abs_tol=1e-6) for token in tokens)
    named = {chat_engine.tokenizer.decode([i]).strip() for i in expected.indices.tolist()}
    assert {other.token.strip() for other in first} == named

    sampled = client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=8, temperature=0.7, seed=5, logprobs=True, top_logprobs=3)
    for token in sampled.choices[0].logprobs.content:
        values = [other.logprob for other in token.top_logprobs]
        assert values == sorted(values, reverse=True) and sum(math.exp(value) for value in values) <= 1 + 1e-5
        assert token.logprob <= values[0] + 1e-6 and (any(math.isclose(token.logprob, value, abs_tol=1e-6) for value in values) or token.logprob <= values[-1] + 1e-6)

    from huggingface_hub import InferenceClient

    hub = InferenceClient(base_url=f"{server.url}/models/tiny-chat").chat_completion(messages, max_tokens=6, temperature=0, logprobs=True, top_logprobs=4)
    assert [[other.token for other in token.top_logprobs] for token in hub.choices[0].logprobs.content] == [[other.token for other in token.top_logprobs] for token in tokens]

    with pytest.raises(openai.BadRequestError, match="top_logprobs"):
        client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=2, top_logprobs=2)
    served = {model["model_id"]: model for model in httpx.get(f"{server.url}/info").json()["models"]}
    assert served["tiny-chat"]["generation"]["top_logprobs"] is True


def test_tgi_stop_sequences_are_kept_and_chat_ones_are_not(server):
    whole = httpx.post(f"{server.url}/models/tiny-chat", json={"inputs": "the cat", "parameters": {"max_new_tokens": 16, "return_full_text": False}}).json()[0]["generated_text"]
    stop = whole[4:7]
    cut = httpx.post(f"{server.url}/models/tiny-chat", json={"inputs": "the cat", "parameters": {"max_new_tokens": 16, "return_full_text": False, "stop": [stop], "details": True}}).json()[0]
    assert cut["generated_text"] == whole[: whole.find(stop) + len(stop)] and cut["details"]["finish_reason"] == "stop_sequence"


def test_a_stream_past_the_request_timeout_ends_with_an_error_event(model_dirs):
    settings = ServerSettings(request_timeout=0.3)
    with LiveServer.for_models([str(model_dirs["tiny-chat"])], plugins={"transformers": widgetd_transformers}, settings=settings) as live:
        live.wait_ready()
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4000, "temperature": 0, "stream": True}
        response = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=30)
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert error["code"] == "504" and "timeout" in error["message"]


def test_a_model_too_large_for_one_gpu_is_split_across_them(model_dirs):
    snapshot = ModelSnapshot(
        model_id="tiny-chat", path=model_dirs["tiny-chat"], task="text-generation", device="cuda:0",
        accelerators=(Accelerator("cuda:0", 1024, 2**30), Accelerator("cuda:1", 2**30, 2**30)),
    )
    if importlib.util.find_spec("accelerate") is None:
        with pytest.raises(RuntimeError, match="accelerate"):
            placement_options(snapshot)
        return
    options = placement_options(snapshot)
    assert options["device_map"] == "auto" and set(options["max_memory"]) == {0, 1}
    assert placement_options(ModelSnapshot("tiny-chat", model_dirs["tiny-chat"], "text-generation", "cuda:1", accelerators=snapshot.accelerators)) == {}


@pytest.mark.parametrize("architecture", ["gpt2", "qwen2", "qwen2-sliding-window"])
def test_every_architecture_generates_what_generate_does(architecture, model_dirs, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if architecture == "gpt2":
        path = model_dirs["tiny-gpt2"]
    else:
        path = save_qwen2(tmp_path / architecture, model_dirs["tiny-chat"], sliding=architecture.endswith("window"))
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    engine = CausalEngine(tokenizer, model, model.device)
    assert engine.max_active == (1 if architecture.endswith("window") else 32)
    jobs = [Job(Prompt(text=prompt), GenerationOptions(max_new_tokens=n, do_sample=False)) for prompt in PROMPTS for n in (5, 20)]
    for job, generation in zip(jobs, generate_all(engine, jobs)):
        # Token ids: random weights babble bytes that are no UTF-8, which no two decodings render alike.
        ids = tokenizer(job.prompt.text, return_tensors="pt")
        expected = model.generate(**ids, max_new_tokens=job.options.max_new_tokens, do_sample=False)[0, ids["input_ids"].shape[1] :]
        assert [token.id for token in generation.tokens] == expected.tolist(), (architecture, job)


def test_the_documented_offline_chat_path_works_from_a_shell(tmp_path):
    """The docs' "chat in five minutes": write the tiny chat model, serve it, chat through the OpenAI SDK."""
    import subprocess
    import sys

    from openai import OpenAI

    from widgetd.testing.process import ServeProcess

    folder = tmp_path / "tiny-chat"
    written = subprocess.run([sys.executable, "-m", "widgetd_transformers.tiny_chat", str(folder)], capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, written.stderr
    assert f"serve it: widgetd serve --model-id {folder}" in written.stdout and "random weights" in written.stdout
    assert "random weights" in (folder / "README.md").read_text()
    again = subprocess.run([sys.executable, "-m", "widgetd_transformers.tiny_chat", str(folder)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "exists" in again.stderr
    with ServeProcess(["--model-id", str(folder)], {"WIDGETD_LOAD_PLUGINS": "transformers"}) as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused")
        answer = client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "Hello!"}], max_tokens=8)
        assert answer.choices[0].message.content and answer.usage.completion_tokens <= 8
        assert answer.system_fingerprint == f"widgetd-{widgetd.__version__}"  # the installed widgetd's version
        streamed = client.chat.completions.create(
            model="tiny-chat", messages=[{"role": "user", "content": "Hello!"}], max_tokens=8, stream=True, temperature=0
        )
        assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)


def test_the_legacy_conversational_payload_is_answered_through_the_chat_template(server):
    """Old widgets and clients send a conversation as two lists and the next text; the answer is the chat
    route's answer to the same messages, in the legacy shape, the conversation grown by this turn."""
    legacy = {
        "inputs": {"past_user_inputs": ["Which movie is the best?"], "generated_responses": ["Die Hard."], "text": "Why?"},
        "parameters": {"max_length": 8, "temperature": 0},
    }
    answer = httpx.post(f"{server.url}/models/tiny-chat", json=legacy).json()
    messages = [
        {"role": "user", "content": "Which movie is the best?"}, {"role": "assistant", "content": "Die Hard."}, {"role": "user", "content": "Why?"},
    ]
    chat = httpx.post(f"{server.url}/models/tiny-chat/v1/chat/completions", json={"messages": messages, "max_tokens": 8, "temperature": 0}).json()
    assert answer["generated_text"] == chat["choices"][0]["message"]["content"].strip()
    assert answer["conversation"] == {
        "past_user_inputs": ["Which movie is the best?", "Why?"],
        "generated_responses": ["Die Hard.", answer["generated_text"]],
    }
    assert answer["warnings"] == []
    by_path = httpx.post(f"{server.url}/models/tiny-chat/pipeline/conversational", json=legacy).json()
    assert by_path == answer


def test_conversational_mistakes_are_400s_naming_the_field(server):
    uneven = {"inputs": {"past_user_inputs": ["a", "b"], "generated_responses": ["c"], "text": "d"}}
    reply = httpx.post(f"{server.url}/models/tiny-chat/pipeline/conversational", json=uneven)
    assert reply.status_code == 400 and "each past input needs its response" in reply.json()["error"]
    reply = httpx.post(f"{server.url}/models/tiny-chat/pipeline/conversational", json={"inputs": {"text": "hi"}, "parameters": {"min_length": 5}})
    assert reply.status_code == 400 and reply.json()["field"] == "parameters.min_length"
    not_a_chat_model = httpx.post(f"{server.url}/models/tiny-qa/pipeline/conversational", json={"inputs": {"text": "hi"}})
    assert not_a_chat_model.status_code == 404 and not_a_chat_model.headers["x-error-code"] == "TaskNotServed"


def test_max_time_ends_the_answer_with_what_it_has(server):
    """Greedy, the answer cut by max_time begins the answer given all the time it needs, and is shorter."""
    text = {"text": "Tell me a story."}
    whole = httpx.post(f"{server.url}/models/tiny-chat/pipeline/conversational", json={"inputs": text, "parameters": {"max_new_tokens": 400, "temperature": 0}}, timeout=120).json()
    cut = httpx.post(f"{server.url}/models/tiny-chat/pipeline/conversational", json={"inputs": text, "parameters": {"max_new_tokens": 400, "temperature": 0, "max_time": 0.05}}, timeout=120)
    assert cut.status_code == 200, cut.text
    assert whole["generated_text"].startswith(cut.json()["generated_text"])
    assert len(cut.json()["generated_text"]) < len(whole["generated_text"])


def test_a_generation_is_one_span_with_its_tokens_streamed_or_not(tmp_path):
    """``--otlp-endpoint``: a chat request's span has one ``generate`` child however many tokens, saying how
    many, how long the first took and why it ended."""
    from openai import OpenAI

    from widgetd.testing.otlp import OtlpReceiver
    from widgetd.testing.process import ServeProcess
    from widgetd_transformers.tiny_chat import write_tiny_chat

    folder = write_tiny_chat(tmp_path / "tiny-chat")
    environment = {"WIDGETD_LOAD_PLUGINS": "transformers", "OTEL_BSP_SCHEDULE_DELAY": "50"}
    with OtlpReceiver() as receiver, ServeProcess(["--model-id", str(folder), "--otlp-endpoint", receiver.url], environment) as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused")
        hello = [{"role": "user", "content": "Hello!"}]
        whole = client.chat.completions.with_raw_response.create(model="tiny-chat", messages=hello, max_tokens=6, temperature=0)
        streamed = client.chat.completions.with_raw_response.create(model="tiny-chat", messages=hello, max_tokens=5, temperature=0, stream=True)
        ids = {whole.headers["x-request-id"]: whole.parse().usage.completion_tokens, streamed.headers["x-request-id"]: None}
        list(streamed.parse())
        spans = receiver.wait_for(lambda spans: set(ids) <= {span.attributes.get("widgetd.request_id") for span in spans})
    for request_id, completion_tokens in ids.items():
        [request] = [span for span in spans if span.attributes.get("widgetd.request_id") == request_id]
        assert request.name == "POST chat-completion" and request.attributes["widgetd.model"] == "tiny-chat"
        stages = receiver.children_of(request)
        assert set(stages) == {"decode", "generate"}, stages
        generate = stages["generate"].attributes
        expected = {completion_tokens} if completion_tokens is not None else set(range(1, 6))
        assert generate["widgetd.generated_tokens"] in expected and generate["widgetd.prompt_tokens"] > 0, generate
        assert generate["widgetd.finish_reason"] in ("length", "eos_token") and 0 < generate["widgetd.first_token_ms"], generate


def test_with_isolate_chat_generates_in_the_worker_and_a_dead_worker_ends_its_streams(tmp_path):
    """``--isolate``: the continuous batching stays in the server and calls the worker's engine; the answers
    are those of a model in the server's process (greedy: streamed equals whole); killing the worker ends the
    streams running with an error event naming the model, and a new worker serves again."""
    import json
    import os
    import signal
    import time

    from widgetd.testing.process import ServeProcess
    from widgetd_transformers.tiny_chat import write_tiny_chat

    folder = write_tiny_chat(tmp_path / "tiny-chat")
    chat = {"messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 6, "temperature": 0}
    with ServeProcess(["--model-id", str(folder)], {"WIDGETD_LOAD_PLUGINS": "transformers"}) as here:
        expected = httpx.post(f"{here.url}/v1/chat/completions", json=chat, timeout=60).json()["choices"][0]["message"]["content"]
    with ServeProcess(["--model-id", str(folder), "--isolate"], {"WIDGETD_LOAD_PLUGINS": "transformers"}) as server:
        url = f"{server.url}/v1/chat/completions"
        worker = httpx.get(f"{server.url}/info").json()["models"][0]["worker"]
        assert worker["pid"] != server.pid and worker["restarts"] == 0
        assert httpx.post(url, json=chat, timeout=60).json()["choices"][0]["message"]["content"] == expected
        with httpx.stream("POST", url, json={**chat, "stream": True}, timeout=60) as streamed:
            chunks = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: {")]
        assert "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"]) == expected
        # The grammar crosses the pipe with the options, and lives with its sequence in the worker.
        assert httpx.get(f"{server.url}/info").json()["models"][0]["generation"]["structured_outputs"] is True
        shaped = httpx.post(url, json={**chat, "max_tokens": 40, "response_format": {"type": "json_object"}}, timeout=60).json()
        assert isinstance(json.loads(shaped["choices"][0]["message"]["content"]), dict)
        # So do the alternatives each token reports.
        ranked = httpx.post(url, json={**chat, "logprobs": True, "top_logprobs": 2}, timeout=60).json()["choices"][0]["logprobs"]["content"]
        assert ranked and all(len(token["top_logprobs"]) == 2 for token in ranked)

        long = {**chat, "max_tokens": 2000, "temperature": 1.0}
        with httpx.stream("POST", url, json={**long, "stream": True}, timeout=60) as streamed:
            lines = streamed.iter_lines()
            assert next(line for line in lines if line.startswith("data: {"))  # it runs in the worker
            os.kill(worker["pid"], signal.SIGKILL)
            rest = [line for line in lines if line.startswith("data: ")]
        event = json.loads(next(line[6:] for line in rest if '"error"' in line))
        error = event["error"]
        assert "tiny-chat" in error["message"] and "SIGKILL" in error["message"], error
        assert event["request_id"] == streamed.headers["x-request-id"]
        assert rest[-1] == "data: [DONE]"
        deadline = time.monotonic() + 60
        while (answer := httpx.post(url, json=chat, timeout=60)).status_code == 503:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.5)
        assert answer.json()["choices"][0]["message"]["content"] == expected
        assert httpx.get(f"{server.url}/info").json()["models"][0]["worker"]["restarts"] == 1


def test_with_isolate_a_prompt_read_in_chunks_among_running_streams_answers_as_in_one_process(tmp_path):
    """The server asks the worker to read joined prompts only while one is unanswered: a long prompt read a few
    tokens a step (``--prefill-chunk 8``) while another stream runs still gets its first token, and its greedy
    answer is the one-process server's."""
    from widgetd.testing.process import ServeProcess
    from widgetd_transformers.tiny_chat import write_tiny_chat

    folder = write_tiny_chat(tmp_path / "tiny-chat")
    long_prompt = " ".join(["Sarah lives in London and the cat sat on the mat."] * 12)
    asked = {"messages": [{"role": "user", "content": long_prompt}], "max_tokens": 6, "temperature": 0}
    running = {"messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 2000, "temperature": 1.0, "stream": True}
    answers = {}
    for where in ([], ["--isolate"]):
        with ServeProcess(["--model-id", str(folder), "--prefill-chunk", "8", *where], {"WIDGETD_LOAD_PLUGINS": "transformers"}) as server:
            url = f"{server.url}/v1/chat/completions"
            with httpx.stream("POST", url, json=running, timeout=60) as streamed:
                lines = streamed.iter_lines()
                assert next(line for line in lines if line.startswith("data: {"))  # it runs: the long prompt joins beside it
                answer = httpx.post(url, json=asked, timeout=60).json()
            answers[bool(where)] = answer["choices"][0]["message"]["content"]
            assert answer["usage"]["prompt_tokens"] > 8 * 4, answer["usage"]  # read in several chunks
    assert answers[True] == answers[False]


def test_prompts_are_tokenized_on_a_thread_of_their_own_while_the_model_steps(model_dirs):
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from widgetd.generating import GenerationLoop

    threads: dict[str, set[str]] = {"admit": set(), "step": set()}

    class Recorded(CausalEngine):
        def admit(self, prompt, options):
            threads["admit"].add(threading.current_thread().name)
            return super().admit(prompt, options)

        def step(self):
            threads["step"].add(threading.current_thread().name)
            return super().step()

    path = model_dirs["tiny-chat"]
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    engine = Recorded(tokenizer, model, model.device)
    model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    async def generate() -> list[Generation]:
        loop = GenerationLoop(engine, model_thread)
        try:
            jobs = [Job(Prompt(text=text), GenerationOptions(max_new_tokens=8, do_sample=False)) for text in PROMPTS]
            return await asyncio.gather(*(loop.complete(job) for job in jobs))
        finally:
            loop.close()

    generations = asyncio.run(generate())
    model_thread.shutdown()
    assert all(len(generation.tokens) == 8 for generation in generations)
    assert {name.split("_")[0] for name in threads["step"]} == {"model"}
    assert {name.split("_")[0] for name in threads["admit"]} == {"widgetd-admit"}
    assert [token.id for token in generations[0].tokens] == engine.model.generate(
        **tokenizer(PROMPTS[0], return_tensors="pt"), max_new_tokens=8, do_sample=False
    )[0, -8:].tolist()


def test_a_tokenizer_saved_with_truncation_is_settled_at_load_so_prompts_can_be_tokenized_beside_the_steps(model_dirs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = model_dirs["tiny-chat"]
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer.backend_tokenizer.enable_truncation(max_length=4)
    engine = CausalEngine(tokenizer, model, model.device)
    assert tokenizer.backend_tokenizer.truncation is None, "the first call's write to the backend is done at load"
    assert engine.admit(Prompt(text=PROMPTS[1]), GenerationOptions(max_new_tokens=2)).prompt_tokens > 4
