"""A small closed-loop HTTP load generator, run as its own process.

    python loadgen.py URL --concurrency 32 --seconds 10 --bodies bodies.json
Each worker keeps one keep-alive connection and posts the next of a pool of distinct
bodies as soon as its previous answer arrives. Prints one JSON line of results.
With --health it instead GETs URL every 50 ms and reports that latency (until --seconds pass, or with
--until-stdin-closes until its stdin closes, whichever comes first; it then also prints a line once its first
probe is answered, so that a caller can start its load after this process's own start-up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from urllib.parse import urlsplit


async def exchange(reader, writer, request: bytes) -> int:
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


def post(path: str, host: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def worker(url, bodies, offset, deadline, latencies, statuses):
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    index = offset
    while time.perf_counter() < deadline:
        body = bodies[index % len(bodies)]
        index += 7
        started = time.perf_counter()
        status = await exchange(reader, writer, post(parts.path or "/", parts.netloc, body))
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


async def load(url: str, concurrency: int, seconds: float, bodies: list[bytes]) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(worker(url, bodies, i, deadline, latencies, statuses) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, **percentiles(latencies), "statuses": statuses}


async def health(url: str, seconds: float, stopped: threading.Event, announce: bool = False) -> dict:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and not stopped.is_set():
        started = time.perf_counter()
        await exchange(reader, writer, request)
        latencies.append(time.perf_counter() - started)
        if len(latencies) == 1 and announce:
            print("probing", flush=True)
        await asyncio.sleep(0.05)
    writer.close()
    return percentiles(latencies)


def percentiles(latencies: list[float]) -> dict:
    if len(latencies) < 2:
        return {"p50_ms": None, "p99_ms": None}
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50_ms": statistics.median(latencies) * 1000, "p99_ms": cuts[98] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--bodies")
    parser.add_argument("--health", action="store_true")
    parser.add_argument("--until-stdin-closes", action="store_true",
                        help="with --health: print a line once the first probe is answered, stop when stdin closes (or --seconds pass)")
    arguments = parser.parse_args()
    if arguments.health:
        stopped = threading.Event()
        if arguments.until_stdin_closes:
            threading.Thread(target=lambda: (sys.stdin.read(), stopped.set()), daemon=True).start()
        result = asyncio.run(health(arguments.url, arguments.seconds, stopped, announce=arguments.until_stdin_closes))
    else:
        with open(arguments.bodies) as file:
            bodies = [json.dumps(body).encode() for body in json.load(file)]
        result = asyncio.run(load(arguments.url, arguments.concurrency, arguments.seconds, bodies))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
