"""The soak test: mixed traffic against one ``widgetd serve`` for ``WIDGETD_SOAK_SECONDS`` (90 s in CI;
``nox -s soak`` runs an hour) and nothing leaks.

Traffic, from several clients at once: embeddings (sentence-transformers), text classification
(transformers), chat whole and streamed (a tiny Llama), streams dropped after a token or two, hostile bodies,
models loaded on demand and evicted (``--max-models``), and admin reloads of a pinned model.

It asserts: no 5xx and no broken connection (every request got its answer or a clean JSON error), the
queue and generation gauges and every model's requests in flight back to zero, and the server's resident
memory, open file descriptors and threads back within a stated bound of their warm level (measured the same
way, quiet, after a warm-up round of the same traffic): the bounds are below.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.test_on_demand import TIMED_PLUGIN, publish
from tests.test_plugins import install_fake_distribution
from widgetd.testing.process import ServeProcess

SECONDS = float(os.environ.get("WIDGETD_SOAK_SECONDS", "90"))
WARM_UP_SHARE = 0.25
CLIENTS = 6
MEMORY_SLACK = 64 * 1024 * 1024
"""The bound on resident memory: the warm level plus 64 MiB or 10%, whichever is more (allocators keep some)."""
MEMORY_SHARE = 0.10
FD_SLACK = 8
THREAD_SLACK = 8
"""Threads and file descriptors: the warm level plus 8 (the event loop's executor may start idle workers up
to its bound, min(32, CPUs + 4), the first time that many decodes overlap)."""
INFERENCE_KEY, ADMIN_KEY = "soak-inference-key", "soak-admin-key"
ON_DEMAND = [f"org/timed-{index}" for index in range(4)]
TEXTS = ["a fine day", "the service was slow", "stocks fell sharply", "I loved it", "never again", "ok"]


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, action: str, outcome: str, failure: str | None = None) -> None:
        with self.lock:
            self.outcomes[(action, outcome)] += 1
            if failure and len(self.failures) < 50:
                self.failures.append(f"{action}: {failure}")


def judged(tally: Tally, action: str, response: httpx.Response) -> None:
    """A status below 500, and for an error, a JSON body with ``error`` (a clean error)."""
    if response.status_code >= 500:
        return tally.add(action, str(response.status_code), f"{response.status_code} {response.text[:200]}")
    if response.status_code >= 400:
        try:
            clean = isinstance(response.json().get("error"), (str, dict))
        except ValueError:
            clean = False
        if not clean:
            return tally.add(action, "unclean", f"{response.status_code} without a JSON error: {response.text[:200]}")
    tally.add(action, str(response.status_code))


class Traffic:
    def __init__(self, url: str, tally: Tally, seed: int) -> None:
        self.url, self.tally, self.random = url, tally, random.Random(seed)
        self.client = httpx.Client(base_url=url, headers={"authorization": f"Bearer {INFERENCE_KEY}"}, timeout=60)

    def one(self) -> None:
        action = self.random.choices(
            ["embed", "classify", "chat", "chat_stream", "chat_dropped", "hostile"], weights=[4, 4, 2, 2, 2, 3]
        )[0]
        try:
            getattr(self, action)()
        except httpx.TransportError as error:
            self.tally.add(action, "broken", f"{type(error).__name__}: {error}")

    def embed(self) -> None:
        texts = self.random.sample(TEXTS, self.random.randint(1, 3))
        response = self.client.post("/v1/embeddings", json={"model": "tiny-embedder", "input": texts})
        judged(self.tally, "embed", response)
        if response.status_code == 200 and len(response.json()["data"]) != len(texts):
            self.tally.add("embed", "wrong", "not one vector a text")

    def classify(self) -> None:
        judged(self.tally, "classify", self.client.post("/models/tiny-sentiment", json={"inputs": self.random.choice(TEXTS)}))

    def chat_body(self, **extra) -> dict:
        return {"model": "tiny-chat", "messages": [{"role": "user", "content": self.random.choice(TEXTS)}], "max_tokens": self.random.randint(2, 8), **extra}

    def chat(self) -> None:
        judged(self.tally, "chat", self.client.post("/v1/chat/completions", json=self.chat_body()))

    def chat_stream(self) -> None:
        with self.client.stream("POST", "/v1/chat/completions", json=self.chat_body(stream=True)) as response:
            lines = [line for line in response.iter_lines() if line]
        judged(self.tally, "chat_stream", response)
        if response.status_code == 200 and lines[-1] != "data: [DONE]":
            self.tally.add("chat_stream", "unfinished", f"the stream ended with {lines[-1:]}")

    def chat_dropped(self) -> None:
        """A client that leaves after a token or two: the server must free its sequence."""
        with self.client.stream("POST", "/v1/chat/completions", json=self.chat_body(stream=True, max_tokens=64)) as response:
            for index, _ in enumerate(response.iter_lines()):
                if index >= self.random.randint(0, 2):
                    break
        self.tally.add("chat_dropped", "left")

    HOSTILE = [
        ("/models/tiny-sentiment", b'{"inputs": "unterminated', "application/json"),
        ("/models/tiny-sentiment", b'{"inputs": 5}', "application/json"),
        ("/models/tiny-sentiment", b'{"inputs": "x", "parameters": {"top_k": "many"}}', "application/json"),
        ("/models/tiny-sentiment", json.dumps({"inputs": ["x"] * 100}).encode(), "application/json"),
        ("/models/tiny-sentiment/pipeline/image-classification", os.urandom(256), "image/png"),
        ("/v1/chat/completions", b'{"model": "tiny-chat", "messages": "hi"}', "application/json"),
        ("/v1/chat/completions", b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "a"}], "max_tokens": -1}', "application/json"),
        ("/v1/embeddings", b'{"model": "tiny-embedder", "input": "a", "encoding_format": "hex"}', "application/json"),
        ("/models/nobody/nothing", b'{"inputs": "a"}', "application/json"),
        ("/models/tiny-sentiment", b"x" * (3 * 1024 * 1024), "text/plain"),
    ]

    def hostile(self) -> None:
        path, body, content_type = self.random.choice(self.HOSTILE)
        headers = {"content-type": content_type} if content_type else {}
        response = self.client.post(path, content=body, headers=headers)
        judged(self.tally, "hostile", response)
        if response.status_code < 400:
            self.tally.add("hostile", "accepted", f"{path} {body[:60]!r} answered {response.status_code}")

    def on_demand(self) -> None:
        """One client only, so that the models on demand are idle when the next must make room."""
        model = self.random.choice(ON_DEMAND)
        response = self.client.post(f"/models/{model}", json={"inputs": "abcd"}, headers={"x-wait-for-model": "true"})
        judged(self.tally, "on_demand", response)

    def reload(self) -> None:
        response = self.client.post("/models/tiny-sentiment/reload", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        judged(self.tally, "reload", response)


def drive(url: str, seconds: float, tally: Tally, seed: int) -> None:
    """Every kind of traffic at once for ``seconds``."""
    deadline = time.monotonic() + seconds

    def loop(traffic: Traffic, step, pause: float = 0.0) -> None:
        while time.monotonic() < deadline:
            step(traffic)
            time.sleep(pause)

    jobs = [(Traffic(url, tally, seed * 100 + index), Traffic.one, 0.0) for index in range(CLIENTS)]
    jobs += [(Traffic(url, tally, seed * 100 + 90), Traffic.on_demand, 0.2), (Traffic(url, tally, seed * 100 + 91), Traffic.reload, 5.0)]
    threads = [threading.Thread(target=loop, args=job, daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
        assert not thread.is_alive(), "a client is stuck: a request got no answer two minutes after the end"


def gauges(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {INFERENCE_KEY}"}).text
    found = re.findall(r"^(widgetd_(?:queue_depth|generating_sequences)\{[^}]*\}) (\S+)$", text, re.MULTILINE)
    return {name: float(value) for name, value in found}


def in_flight(url: str) -> dict[str, int]:
    models = httpx.get(f"{url}/models", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["models"]
    return {model["model_id"]: model.get("in_flight", 0) for model in models if model["state"] == "ready"}


def quiet_level(server: ServeProcess) -> dict[str, int]:
    """Once the gauges and requests in flight are back to zero: resident memory, open files, threads."""
    deadline = time.monotonic() + 60
    while any(gauges(server.url).values()) or any(in_flight(server.url).values()):
        assert time.monotonic() < deadline, f"still busy a minute after the traffic: {gauges(server.url)}, {in_flight(server.url)}"
        time.sleep(0.25)
    time.sleep(1)  # what the last answers freed is freed
    status = Path(f"/proc/{server.pid}/status").read_text()
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE).group(1))
    return {"rss": server.resident_bytes(), "fds": len(os.listdir(f"/proc/{server.pid}/fd")), "threads": threads}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads a process's memory and files from Linux's /proc")
def test_hours_of_mixed_traffic_leave_nothing_behind(local_hub, hub_env, tmp_path):
    from widgetd_sentence_transformers.testing import build_tiny_sentence_transformer
    from widgetd_transformers.testing import build_model
    from widgetd_transformers.tiny_chat import write_tiny_chat

    models = [
        str(build_tiny_sentence_transformer(tmp_path / "tiny-embedder")),
        str(build_model("text-classification", tmp_path)),
        str(write_tiny_chat(tmp_path / "tiny-chat")),
    ]
    for repo in ON_DEMAND:
        publish(local_hub, tmp_path, repo, scale=1, load_seconds=0.2, hold_bytes=16 * 1024 * 1024)
    site = tmp_path / "site"
    site.mkdir()
    install_fake_distribution(site, "widgetd-timed", TIMED_PLUGIN)
    env = {
        **hub_env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "WIDGETD_LOAD_PLUGINS": "widgetd-timed,transformers,sentence-transformers",
    }
    args = [
        *(argument for model in models for argument in ("--model-id", model)),
        "--allow-model", "org/*", "--max-models", str(len(models) + 2),
        "--api-key", INFERENCE_KEY, "--admin-key", ADMIN_KEY,
        "--max-inputs", "32", "--max-body-size", str(2 * 1024 * 1024), "--log-level", "warning",
    ]
    seed = random.randrange(1 << 16)
    print(f"soak: {SECONDS:g} s, seed {seed}")
    with ServeProcess(args, env) as server:
        warm_up = Tally()
        drive(server.url, max(15.0, SECONDS * WARM_UP_SHARE), warm_up, seed)
        warm = quiet_level(server)
        tally = Tally()
        started = time.monotonic()
        drive(server.url, SECONDS, tally, seed + 1)
        took = time.monotonic() - started
        final = quiet_level(server)
        final_gauges, final_in_flight = gauges(server.url), in_flight(server.url)
        metrics = httpx.get(f"{server.url}/metrics", headers={"authorization": f"Bearer {INFERENCE_KEY}"}).text
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
        output = server.stop()

    report = {
        "seconds": round(took), "seed": seed, "requests": sum(tally.outcomes.values()),
        "outcomes": {f"{action} {outcome}": count for (action, outcome), count in sorted(tally.outcomes.items())},
        "warm": warm, "final": final,
    }
    print("soak:", json.dumps(report))
    if os.environ.get("WIDGETD_SOAK_REPORT"):
        Path(os.environ["WIDGETD_SOAK_REPORT"]).write_text(json.dumps(report, indent=2))
    failures = warm_up.failures + tally.failures
    assert not failures, "\n".join(sorted(set(failures))) + "\n" + output[-3000:]
    actions = {action for action, _ in tally.outcomes}
    assert actions == {"embed", "classify", "chat", "chat_stream", "chat_dropped", "hostile", "on_demand", "reload"}, actions
    assert not any(final_gauges.values()) and not any(final_in_flight.values()), (final_gauges, final_in_flight)
    assert final["rss"] <= warm["rss"] + max(MEMORY_SLACK, MEMORY_SHARE * warm["rss"]), report
    assert final["fds"] <= warm["fds"] + FD_SLACK, report
    assert final["threads"] <= warm["threads"] + THREAD_SLACK, report
    evicted = sum(float(value) for value in re.findall(r"^widgetd_model_evictions_total\{[^}]*\} (\S+)$", metrics, re.MULTILINE))
    assert evicted >= 2, f"the models on demand were not evicted to make room ({evicted}): the soak did not churn them"
