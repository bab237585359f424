"""Memory is bounded by the request limits: after 100 maximal requests a server's resident memory is
back within 10% of where it stood after the first."""

from __future__ import annotations

import sys

import httpx
import pytest

from widgetd.testing.process import ServeProcess

MAX_INPUTS, MAX_CHARACTERS = 32, 10_000


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_memory_returns_to_its_baseline_after_maximal_requests(tiny_model_dir):
    args = ["--model-id", str(tiny_model_dir), "--max-inputs", str(MAX_INPUTS), "--max-characters", str(MAX_CHARACTERS)]
    with ServeProcess(args, {"WIDGETD_LOAD_PLUGINS": "sentence-transformers"}) as server:
        url = f"{server.url}/models/{tiny_model_dir.name}/pipeline/feature-extraction"
        maximal = {"inputs": [("word " * MAX_CHARACTERS)[: MAX_CHARACTERS - 2] + f"{n:02d}" for n in range(MAX_INPUTS)], "truncate": True}
        with httpx.Client(timeout=60) as client:
            assert client.post(url, json=maximal).status_code == 200
            baseline = server.resident_bytes()
            for _ in range(100):
                assert client.post(url, json=maximal).status_code == 200
        after = server.resident_bytes()
    assert after <= baseline * 1.10, f"resident memory grew from {baseline / 2**20:.0f} MiB to {after / 2**20:.0f} MiB"
