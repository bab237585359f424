"""Scaling out on Ray Serve, in one run on one machine: sentence-similarity with all-MiniLM-L6-v2 (1 source +
3 sentences a request) at concurrency 32, served by

- ``widgetd serve`` (one process, no Ray), for Ray's own cost;
- ``widgetd serve --ray --replicas 1``: one replica on the head node;
- ``widgetd serve --ray --replicas 2 --max-replicas-per-node 1``: one replica on the head node and one on a
  second node in its own network namespace, its traffic crossing a veth pair.

    nox -s benchmark_ray                      # as root (ip netns)
    python benchmarks/ray_scaling.py --seconds 20

Each replica reserves one CPU, so Ray gives its torch one thread; the plain server is run with one thread too.
Load comes from loadgen.py in its own process. Results are printed as a table and written to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from sentence_similarity import make_bodies, run_load, start_server

from widgetd.testing.ray_cluster import BIN, local_cluster, network_namespace, replicas_of

HERE = Path(__file__).parent
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CONCURRENCY = 32


def measure_plain(bodies: Path, seconds: float) -> dict:
    url = "http://127.0.0.1:8771"
    process = start_server(
        [str(BIN / "widgetd"), "serve", "--model-id", MODEL, "--port", "8771"], {"OMP_NUM_THREADS": "1"}, url
    )
    try:
        return run_load(url, CONCURRENCY, seconds, bodies, with_health=False)
    finally:
        process.terminate()
        process.wait(timeout=60)


def measure_on_ray(cluster, arguments: list[str], replicas: int, bodies: Path, seconds: float) -> dict:
    log = HERE / "results" / f"ray-{replicas}-replicas.log"
    with cluster.serving("--model-id", MODEL, *arguments, log=log) as client:
        deadline = time.monotonic() + 120
        while len(placed := replicas_of(client, MODEL)) < replicas and time.monotonic() < deadline:
            time.sleep(1)
        result = run_load(cluster.url, CONCURRENCY, seconds, bodies, with_health=False)
        result["nodes"] = sorted(replica["node_ip"] for replica in placed)
        return result


def table(results: dict[str, dict]) -> str:
    one = results["Ray Serve, 1 replica"]["rps"]
    rows = [
        f"| server (concurrency {CONCURRENCY}) | nodes | requests/s | p50 ms | p99 ms | not 200 | / 1 replica |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        failed = sum(count for status, count in result["statuses"].items() if str(status) != "200")
        rows.append(
            f"| {name} | {', '.join(result.get('nodes', ['(no Ray)']))} | {result['rps']:.1f} | "
            f"{result['p50_ms']:.0f} | {result['p99_ms']:.0f} | {failed} | {result['rps'] / one:.2f}x |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    arguments = parser.parse_args()
    (HERE / "results").mkdir(exist_ok=True)
    bodies = HERE / "results" / "bodies.json"
    bodies.write_text(json.dumps(make_bodies(512)))
    results = {"widgetd serve (no Ray)": measure_plain(bodies, arguments.seconds)}
    env = {**os.environ, "WIDGETD_LOAD_PLUGINS": "sentence-transformers", "RAY_USAGE_STATS_ENABLED": "0"}
    with network_namespace() as namespaced:
        if not namespaced:
            sys.exit("this benchmark needs a network namespace for its second node: run it as root (ip netns)")
        with local_cluster(env, namespaced=True, cpus=1) as cluster:
            results["Ray Serve, 1 replica"] = measure_on_ray(cluster, ["--replicas", "1"], 1, bodies, arguments.seconds)
            cluster.start_node_in_namespace(cpus=1)
            spread = ["--replicas", "2", "--max-replicas-per-node", "1"]
            results["Ray Serve, 2 replicas on 2 nodes"] = measure_on_ray(cluster, spread, 2, bodies, arguments.seconds)
    (HERE / "results" / "ray-scaling.json").write_text(json.dumps(results, indent=2))
    rendered = table(results)
    print(rendered)
    (HERE / "results" / "ray-scaling.md").write_text(rendered + "\n")


if __name__ == "__main__":
    main()
