"""Long and shared prompts: prefix caching and chunked prefill, each against itself turned off, in one run
(``nox -s benchmark_prompts``).

The small Llama of benchmarks/generation.py (4 layers, 256 wide, random weights that say words) is served
by ``widgetd serve`` twice per workload, with the feature and without it:

- Shared system prompt: every chat starts with the same 1,000-token system prompt and asks its own short
  question; 8 closed-loop clients, a fixed number of requests each, 32 greedy tokens per answer, streamed.
  Reported: time to first token (p50, p95) and tokens per second, with ``--prefix-cache-size 0`` and
  with the default (target: at least 3x lower time to first token at concurrency 8).
- A long prompt among running streams: 16 clients stream long answers; once they all run, one request
  with a 2,000-token prompt arrives. Reported: the running streams' gaps between tokens in the half
  second before it (median), and from its arrival to its first token (p50, p99, max; the p99 over the
  median before it is the target's ratio), with ``--prefill-chunk`` at its default (chunks sized as they run) and
  large enough to read the prompt in one pass (target: p99 at most 3x the median); and the long request's time to first token.
  ``--chunks 64,128,256`` measures the p99/median ratio and that time for several chunk sizes (how the
  default was chosen).

    python benchmarks/prompts.py [--requests 6] [--out results.json] [--chunks 64,256,1024]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from generation import PROMPTS, build_small_llama

SHARED_TOKENS = 1000
LONG_TOKENS = 2000
ANSWER_TOKENS = 32
RUNNING_STREAMS = 16
WORDS = "the cat sat on the mat and my name is sarah i live in london where the dog ate good food".split()


def text_of(tokenizer, tokens: int) -> str:
    """Words of the tiny vocabulary making about ``tokens`` tokens."""
    words: list[str] = []
    while len(tokenizer(" ".join(words))["input_ids"]) < tokens:
        words.extend(WORDS)
    return " ".join(words)


async def stream_chat(
    url: str, messages: list[dict], max_tokens: int, started_at: list[float] | None = None, arrivals: list[float] | None = None
) -> tuple[float, list[float]]:
    """(seconds to the first text, the arrival time of every text chunk, also put in ``arrivals`` as they
    come) of one streamed chat completion, read off a raw socket (the load generator shares the CPU with
    the server)."""
    parts = urlsplit(url)
    body = json.dumps({
        "model": "small-llama", "messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True,
    }).encode()
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    started = time.perf_counter()
    if started_at is not None:
        started_at.append(started)
    arrivals = [] if arrivals is None else arrivals
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(head.encode() + body)
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"the server answered {status!r}")
    async for line in reader:
        if line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
            arrivals.append(time.perf_counter())
    writer.close()
    return (arrivals[0] - started if arrivals else 0.0), arrivals


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def shared_prompt_load(url: str, system: str, clients: int, requests: int) -> dict:
    first_tokens: list[float] = []
    tokens = 0

    async def client(offset: int) -> None:
        nonlocal tokens
        for index in range(requests):
            question = f"{PROMPTS[(offset + index) % len(PROMPTS)]} ({offset}.{index})"
            first, arrivals = await stream_chat(url, [{"role": "system", "content": system}, {"role": "user", "content": question}], ANSWER_TOKENS)
            first_tokens.append(first)
            tokens += len(arrivals)

    started = time.perf_counter()
    await asyncio.gather(*(client(offset) for offset in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "ttft_p50_ms": 1000 * statistics.median(first_tokens),
        "ttft_p95_ms": 1000 * percentile(first_tokens, 0.95),
        "tokens_per_second": tokens / elapsed,
        "requests": len(first_tokens),
    }


async def long_prompt_among_streams(url: str, long_text: str) -> dict:
    """16 streams running; a 2,000-token prompt arrives; the streams' gaps between tokens from its arrival
    to its first token, and that time to first token."""
    streams: list[list[float]] = [[] for _ in range(RUNNING_STREAMS)]
    running = [
        asyncio.create_task(stream_chat(url, [{"role": "user", "content": f"{PROMPTS[index % len(PROMPTS)]} ({index})"}], 3000, arrivals=arrivals))
        for index, arrivals in enumerate(streams)
    ]
    await asyncio.sleep(1.0)  # every stream has read its prompt and generates
    long_started: list[float] = []
    first, _ = await stream_chat(url, [{"role": "user", "content": long_text}], 4, long_started)
    window = (long_started[0], long_started[0] + first)
    await asyncio.sleep(0.5)
    for task in running:  # hanging up ends their generations
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    if any(len(arrivals) < 2 or arrivals[-1] < window[1] for arrivals in streams):
        raise RuntimeError("a running stream ended before the long prompt was answered: make them longer")
    steady, reading = [], []
    for arrivals in streams:
        for earlier, later in zip(arrivals, arrivals[1:]):
            if window[0] - 0.5 <= later < window[0]:
                steady.append(later - earlier)
            elif window[0] <= later <= window[1] + 0.02:  # the step that adds the long row to the batch included
                reading.append(later - earlier)
    median, p99 = statistics.median(steady), percentile(reading, 0.99)
    return {
        "itl_steady_p50_ms": 1000 * median, "itl_reading_p50_ms": 1000 * statistics.median(reading), "itl_reading_p99_ms": 1000 * p99,
        "itl_reading_max_ms": 1000 * max(reading), "p99_over_median": p99 / median, "long_ttft_ms": 1000 * first,
    }


def serve(folder: Path, *options: str):
    from widgetd.testing.process import ServeProcess

    return ServeProcess(["--model-id", str(folder), *options], {"HF_HUB_OFFLINE": "1"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=6, help="requests per client in the shared-prompt workload")
    parser.add_argument("--chunks", default="", help="also measure these --prefill-chunk sizes (comma-separated)")
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()

    from transformers import AutoTokenizer

    from widgetd.limits import Limits

    results: dict = {"shared_prompt": {}, "long_prompt": {}, "chunks": {}}
    with tempfile.TemporaryDirectory() as scratch:
        folder = build_small_llama(Path(scratch))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        system, long_text = text_of(tokenizer, SHARED_TOKENS), text_of(tokenizer, LONG_TOKENS)
        for name, flags in (("uncached", ("--prefix-cache-size", "0")), ("cached", ())):
            with serve(folder, *flags) as server:
                asyncio.run(shared_prompt_load(server.url, system, 2, 1))  # warm up (and, cached, fill the cache as any first request does)
                measured = results["shared_prompt"][name] = asyncio.run(shared_prompt_load(server.url, system, 8, options.requests))
                print(f"shared {SHARED_TOKENS}-token system prompt, c=8, {name:>8}: TTFT p50 {measured['ttft_p50_ms']:7.1f} ms "
                      f"p95 {measured['ttft_p95_ms']:7.1f} ms, {measured['tokens_per_second']:6.0f} tok/s", file=sys.stderr)
        shared = results["shared_prompt"]
        shared["ttft_p50_ratio"] = shared["uncached"]["ttft_p50_ms"] / shared["cached"]["ttft_p50_ms"]
        print(f"  prefix caching: {shared['ttft_p50_ratio']:.1f}x lower TTFT p50", file=sys.stderr)

        sizes = {"whole": 10**6, "chunked": Limits.prefill_chunk}  # the default: sized as it runs
        sizes.update({f"chunk {size}": int(size) for size in options.chunks.split(",") if size})
        for name, chunk in sizes.items():
            with serve(folder, "--prefill-chunk", str(chunk), "--prefix-cache-size", "0") as server:
                asyncio.run(shared_prompt_load(server.url, "warm up", 2, 1))
                measured = asyncio.run(long_prompt_among_streams(server.url, long_text))
                (results["long_prompt"] if name in ("whole", "chunked") else results["chunks"])[name] = {"prefill_chunk": chunk, **measured}
                print(f"{LONG_TOKENS}-token prompt among {RUNNING_STREAMS} streams, {name:>10}: ITL before it {measured['itl_steady_p50_ms']:5.1f} ms, "
                      f"while it is read p50 {measured['itl_reading_p50_ms']:6.1f} ms p99 {measured['itl_reading_p99_ms']:6.1f} ms "
                      f"({measured['p99_over_median']:.1f}x) max {measured['itl_reading_max_ms']:6.1f} ms; its TTFT {measured['long_ttft_ms']:7.1f} ms",
                      file=sys.stderr)
    print(json.dumps(results))
    if options.out:
        options.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
