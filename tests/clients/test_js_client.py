"""@huggingface/inference, from npm and run with node, against `widgetd serve`: one task per input kind."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from widgetd.testing.audio import encode, tone

HERE = Path(__file__).parent
PACKAGE = "@huggingface/inference@4.13.30"


@pytest.fixture(scope="session")
def js_client(tmp_path_factory) -> Path:
    if not (shutil.which("node") and shutil.which("npm")):
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed for the JavaScript client tests")
        pytest.skip("needs node and npm")
    folder = tmp_path_factory.mktemp("js-client")
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", PACKAGE], cwd=folder, check=True, timeout=300)
    shutil.copy(HERE / "js_client.mjs", folder)
    return folder / "js_client.mjs"


def test_the_javascript_client_parses_every_input_kind(server, js_client, tmp_path):
    audio = tmp_path / "speech.flac"
    audio.write_bytes(encode(tone(1.0, 22050, 2), 22050, "FLAC"))
    image = tmp_path / "red.jpg"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(image)
    completed = subprocess.run(
        ["node", str(js_client), server.url, str(audio), str(image)], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads(completed.stdout)
    text = "My name is Sarah and I live in London"
    assert results["tokens"] and all(text[e["start"] : e["end"]] == e["word"] for e in results["tokens"])
    context = "My name is Sarah and I live in London."
    answer = results["answer"]
    assert context[answer["start"] : answer["end"]] == answer["answer"]
    assert len(results["similarity"]) == 2 and abs(results["similarity"][0] - 1) < 1e-4
    assert isinstance(results["transcript"]["text"], str)
    assert len(results["sounds"]) == 5 and all(0 <= entry["score"] <= 1 for entry in results["sounds"])
    assert len(results["labels"]) == 5
    assert sorted(entry["label"] for entry in results["zeroShot"]) == ["a cat", "a red square"]
    assert results["objects"] and all(0 <= o["box"]["xmin"] <= o["box"]["xmax"] <= 40 for o in results["objects"])
    assert results["segments"] and all(Image.open(io.BytesIO(base64.b64decode(s["mask"]))).size == (40, 40) for s in results["segments"])
    assert isinstance(results["caption"]["generated_text"], str)
    assert isinstance(results["visualAnswer"]["answer"], str) and 0 <= results["visualAnswer"]["score"] <= 1
    assert results["documentAnswer"]["answer"] in ("total", "99", "total 99")
    assert results["upscaled"] > 0
    # The JS client accepts numbered classes only (it checks for Array<number>): spec/README.md says so.
    assert results["species"] == [0, 2]
    assert results["painted"] > 1000
    assert len(results["weights"]) == 1 and 150 < results["weights"][0] < 350
    table = results["table"]
    assert table["cells"] and table["aggregator"] in ("NONE", "SUM", "AVERAGE", "COUNT")
    chat = results["chat"]["choices"][0]
    streamed = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in results["chatStream"] if chunk["choices"])
    assert chat["finish_reason"] == "length" and streamed == chat["message"]["content"]
    assert results["error"]["isProviderError"] and "[MASK]" in results["error"]["message"]
