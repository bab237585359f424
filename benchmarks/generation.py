"""Generation throughput: widgetd's continuous batching against the same model generating one request at
a time in-process, in one run (``nox -s benchmark_generation``).

A small Llama (4 layers, 256 wide, random weights that say words; built offline) is served by
``widgetd serve``; closed-loop clients stream OpenAI chat completions of 64 greedy tokens each, at
concurrency 1, 8 and 32. Reported: generated tokens per second and time to first token (p50, p95), and
``GET /health``'s latency during each level (from a process of its own, every 50 ms).
The baseline is ``model.generate`` in this process, one request after another: its tokens per second,
and the time to first token its clients would see queueing for it (each request's measured time to
its first token, after the measured generations queued before it).

The peer, with ``--peer-python`` (``nox -s benchmark_generation`` makes its virtualenv): ``transformers serve
--continuous-batching`` on the same model, the same clients at the same concurrencies after widgetd's
server has stopped; reported as widgetd's tokens per second and time to first token against the peer's
(targets: at least 2x its tokens per second at every level, time to first token no worse), and each
server's peak resident memory.

Every client sends the same fixed number of requests (``--requests``), so a server that answers some
clients before others is not flattered by a deadline.

Constrained decoding's cost: at concurrency 1 and 32, the same clients ask for a JSON answer
(``response_format`` with a schema of a list of words, which the model fills to about the same length);
reported as its tokens per second against the free run's at that concurrency (target: at most 10% fewer
at 32).

    python benchmarks/generation.py [--requests 4] [--peer-python PATH] [--out results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

PROMPTS = [
    "Where does Sarah live?", "What is the capital of France?", "Tell me about the cat.", "Was the movie good?",
    "Who sat on the mat?", "What does the dog eat?", "Is London a city?", "My name is Sarah. And you?",
]
NEW_TOKENS = 64
CONCURRENCY = (1, 8, 32)
CONSTRAINED_AT = (1, 32)
WORDS_SCHEMA = {"type": "object", "properties": {"words": {"type": "array", "items": {"type": "string"}}}, "required": ["words"]}


def build_small_llama(folder: Path) -> Path:
    """A 4-layer, 256-wide Llama with the tiny test tokenizer and a chat template: big enough that the
    model, not the server, takes most of each step on a CPU."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from widgetd_transformers.testing import save_byte_level_bpe, save_chat_llama

    tiny = save_chat_llama(folder / "tiny", save_byte_level_bpe(folder / "bpe"))
    config = LlamaConfig.from_pretrained(tiny)
    config.update({"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4})
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    words = LlamaForCausalLM.from_pretrained(tiny).lm_head.weight.abs().sum(dim=1) > 0
    with torch.no_grad():
        model.lm_head.weight[~words] = 0.0  # words only, never the end token: every answer runs its length
    small = folder / "small-llama"
    model.save_pretrained(small)
    for path in tiny.iterdir():  # the tokenizer, its chat template, the card
        if path.name not in ("config.json", "generation_config.json", "model.safetensors"):
            (small / path.name).write_bytes(path.read_bytes())
    return small


async def stream_one(url: str, prompt: str, constrained: bool = False, model: str = "small-llama") -> tuple[float, int]:
    """(seconds to the first text, tokens generated) for one streamed chat completion, read off a raw
    socket: the load generator must take as little of the CPU it shares with the server as it can. A
    server that reports no usage is counted a token per chunk of text."""
    parts = urlsplit(url)
    shape = {"response_format": {"type": "json_schema", "json_schema": {"name": "words", "schema": WORDS_SCHEMA}}} if constrained else {}
    body = json.dumps({
        "model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": NEW_TOKENS,
        "temperature": 0, "stream": True, "stream_options": {"include_usage": True}, **shape,
    }).encode()
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    started, first, tokens, chunks = time.perf_counter(), None, None, 0
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(head.encode() + body)
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"the server answered {status!r}: {(await reader.read(2000))!r}")
    while await reader.readline() not in (b"\r\n", b""):
        pass  # headers
    while size := int((await reader.readline()).strip() or b"0", 16):  # chunked transfer encoding
        data = await reader.readexactly(size + 2)
        texts = data.count(b'"content":"') - data.count(b'"content":""')
        chunks += texts
        if first is None and texts:
            first = time.perf_counter() - started
        if b'"usage":{' in data:
            tokens = json.loads(data[data.rindex(b"data: {") + 6 :].split(b"\n")[0])["usage"]["completion_tokens"]
    writer.close()
    return first or 0.0, chunks if tokens is None else tokens


async def served_load(url: str, concurrency: int, requests: int, constrained: bool = False, model: str = "small-llama") -> dict:
    """``concurrency`` closed-loop clients, each sending ``requests`` streamed completions."""
    first_tokens: list[float] = []
    tokens = 0

    async def client_loop(offset: int) -> None:
        nonlocal tokens
        for index in range(offset, offset + requests):
            first, made = await stream_one(url, PROMPTS[index % len(PROMPTS)], constrained, model)
            first_tokens.append(first)
            tokens += made

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(offset) for offset in range(concurrency)))
    return summary(tokens, time.perf_counter() - started, first_tokens)


def summary(tokens: int, elapsed: float, first_tokens: list[float]) -> dict:
    ordered = sorted(first_tokens)
    return {
        "tokens_per_second": tokens / elapsed,
        "requests": len(first_tokens),
        "tokens_per_request": tokens / max(1, len(first_tokens)),
        "ttft_p50_ms": 1000 * statistics.median(ordered),
        "ttft_p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
    }


class HealthProbe:
    """``GET /health`` every 50 ms from a process of its own (``loadgen.py``) while a level runs; ``result``
    (p50 and p99 ms) once the block ends."""

    def __init__(self, url: str) -> None:
        self.command = [sys.executable, str(Path(__file__).with_name("loadgen.py")), f"{url}/health", "--health", "--until-stdin-closes", "--seconds", "3600"]
        self.result: dict = {}

    def __enter__(self) -> "HealthProbe":
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # The level starts once it probes: its interpreter's start-up took a core from the level's first requests.
        self.process.stdout.readline()
        return self

    def __exit__(self, *_: object) -> None:
        self.result = json.loads(self.process.communicate(input="", timeout=60)[0])


class PeerServer:
    """``transformers serve --continuous-batching`` on ``folder``, from the peer's own virtualenv."""

    def __init__(self, python: Path, folder: Path) -> None:
        from widgetd.testing.server import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            str(python.parent / "transformers"), "serve", str(folder), "--continuous-batching",
            "--device", "cpu", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
        ]
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> "PeerServer":
        import httpx

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"transformers serve exited: {self.log.read().decode()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError("transformers serve did not start in 300 s")

    def resident_bytes(self) -> int:
        return peak_resident_bytes(self.process.pid)

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        self.process.wait(30)


def peak_resident_bytes(pid: int) -> int:
    """The process's peak resident memory (Linux's VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def one_at_a_time(folder: Path, count: int) -> dict:
    """``generate`` for one request after another, in-process: per request, its time to the first token
    and its whole time, measured."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(torch.get_num_threads())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    runs: list[tuple[float, float]] = []
    tokens = 0
    for index in range(count):
        messages = [{"role": "user", "content": PROMPTS[index % len(PROMPTS)]}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
        with torch.inference_mode():
            begun = time.perf_counter()
            model.generate(**ids, max_new_tokens=1, do_sample=False)
            first = time.perf_counter() - begun
            out = model.generate(**ids, max_new_tokens=NEW_TOKENS, do_sample=False)
            whole = time.perf_counter() - begun - first
        runs.append((first, whole))
        tokens += out.shape[1] - ids["input_ids"].shape[1]
    generating = sum(whole for _, whole in runs)
    return {"tokens": tokens, "generating_seconds": generating, "runs": runs}


def queued_first_tokens(runs: list[tuple[float, float]], concurrency: int) -> list[float]:
    """What closed-loop clients would wait for their first token from a server that runs one request at a
    time: each request waits for the (measured) generations of the ``concurrency - 1`` queued before it."""
    waits = []
    for position, (first, _) in enumerate(runs):
        before = runs[max(0, position - concurrency + 1) : position]
        waits.append(sum(whole for _, whole in before) + first)
    return waits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4, help="streamed completions each client sends, at every level")
    parser.add_argument("--peer-python", type=Path, help="a virtualenv's python with transformers[serving]: its transformers serve is the peer")
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()

    from widgetd.testing.process import ServeProcess

    with tempfile.TemporaryDirectory() as scratch:
        folder = build_small_llama(Path(scratch))
        baseline = one_at_a_time(folder, max(len(PROMPTS), options.requests))
        alone_rate = baseline["tokens"] / baseline["generating_seconds"]
        results = {"new_tokens": NEW_TOKENS, "requests_per_client": options.requests, "one_at_a_time_tokens_per_second": alone_rate, "concurrency": {}}
        with ServeProcess(["--model-id", str(folder)], {"HF_HUB_OFFLINE": "1"}) as server:
            asyncio.run(served_load(server.url, 4, 1))  # warm up
            for concurrency in CONCURRENCY:
                with HealthProbe(server.url) as health:
                    served = asyncio.run(served_load(server.url, concurrency, options.requests))
                served["health"] = health.result
                queued = queued_first_tokens(baseline["runs"], concurrency)
                alone = summary(baseline["tokens"], baseline["generating_seconds"], queued)
                served["speedup"] = served["tokens_per_second"] / alone_rate
                results["concurrency"][concurrency] = {"widgetd": served, "one_at_a_time": alone}
                print(
                    f"c={concurrency:>2}: widgetd {served['tokens_per_second']:7.0f} tok/s ({served['speedup']:.2f}x), "
                    f"TTFT p50 {served['ttft_p50_ms']:6.1f} ms p95 {served['ttft_p95_ms']:6.1f} ms, "
                    f"/health p99 {served['health']['p99_ms'] or 0:5.1f} ms | one at a time "
                    f"{alone_rate:6.0f} tok/s, TTFT p50 {alone['ttft_p50_ms']:7.1f} ms p95 {alone['ttft_p95_ms']:7.1f} ms",
                    file=sys.stderr,
                )
                if concurrency in CONSTRAINED_AT:
                    constrained = asyncio.run(served_load(server.url, concurrency, options.requests, constrained=True))
                    constrained["of_free"] = constrained["tokens_per_second"] / served["tokens_per_second"]
                    results["concurrency"][concurrency]["constrained"] = constrained
                    print(
                        f"      constrained (JSON schema): {constrained['tokens_per_second']:7.0f} tok/s "
                        f"({constrained['of_free']:.2f} of free, {constrained['tokens_per_request']:.0f} tokens a request), "
                        f"TTFT p50 {constrained['ttft_p50_ms']:6.1f} ms",
                        file=sys.stderr,
                    )
            results["widgetd_peak_resident_bytes"] = peak_resident_bytes(server.pid)
        if options.peer_python:
            results["peer"] = against_peer(options.peer_python, folder, options.requests, results["concurrency"])
    print(json.dumps(results))
    if options.out:
        options.out.write_text(json.dumps(results, indent=2))


def against_peer(python: Path, folder: Path, requests: int, levels: dict) -> dict:
    """The same clients against transformers serve; each level's ratios go beside widgetd's figures."""
    with PeerServer(python, folder) as peer:
        asyncio.run(served_load(peer.url, 4, 1, model=str(folder)))  # warm up
        for concurrency in CONCURRENCY:
            served = asyncio.run(served_load(peer.url, concurrency, requests, model=str(folder)))
            ours = levels[concurrency]["widgetd"]
            levels[concurrency]["peer"] = served
            levels[concurrency]["widgetd_tokens_per_second_over_peer"] = ours["tokens_per_second"] / served["tokens_per_second"]
            levels[concurrency]["widgetd_ttft_p50_over_peer"] = ours["ttft_p50_ms"] / served["ttft_p50_ms"]
            print(
                f"c={concurrency:>2}: transformers serve {served['tokens_per_second']:7.0f} tok/s, TTFT p50 {served['ttft_p50_ms']:6.1f} ms "
                f"| widgetd {levels[concurrency]['widgetd_tokens_per_second_over_peer']:.2f}x its tok/s, "
                f"{levels[concurrency]['widgetd_ttft_p50_over_peer']:.2f}x its TTFT p50",
                file=sys.stderr,
            )
        return {"server": "transformers serve --continuous-batching", "peak_resident_bytes": peer.resident_bytes()}


if __name__ == "__main__":
    main()
