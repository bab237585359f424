"""api-inference-community's docker-test payload battery, sent to every served model: 200 or a 4xx, never a 500."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from widgetd.testing.audio import encode, tone

SAMPLES = Path(__file__).parents[2].parent / "shared" / "reference" / "media-samples"
MODELS = [
    "tiny-qa", "tiny-ner", "tiny-sentiment", "tiny-nli", "tiny-mlm", "tiny-embedder", "tiny-asr", "tiny-vit",
    "tiny-summarizer", "tiny-translator", "tiny-gpt2", "tiny-tts", "tiny-st", "convtasnet",
]


def jpg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def sample(name: str, fallback: bytes) -> bytes:
    path = SAMPLES / name
    return path.read_bytes() if path.is_file() else fallback


BATTERY = {
    "raw text": ({}, b"This is a test sentence."),
    "mask text": ({}, b"Paris is the [MASK] of France."),
    "qa": ({"content-type": "application/json"}, b'{"inputs": {"question": "Where?", "context": "I live in London"}}'),
    "bare qa": ({}, b'{"question": "Where?", "context": "I live in London"}'),
    "similarity": ({}, b'{"inputs": {"source_sentence": "a cat", "sentences": ["a dog", "a cat"]}}'),
    "zero-shot": ({}, b'{"inputs": "I love dogs", "parameters": {"candidate_labels": ["dogs", "cats"]}}'),
    "flac": ({}, sample("sample1.flac", encode(tone(1.0, 16000), 16000, "FLAC"))),
    "stereo ogg": ({}, sample("sample1_dual.ogg", encode(tone(1.0, 44100, 2), 44100, "OGG"))),
    "webm": ({}, sample("sample1.webm", b"\x1aE\xdf\xa3webm")),
    "malformed flac": ({}, sample("malformed.flac", b"fLaC\x00\x00\x00broken")),
    "jpg": ({"content-type": "image/jpeg"}, jpg()),
    "base64 jpg with parameters": (
        {"content-type": "application/json"},
        ('{"inputs": "%s", "parameters": {"top_k": 2}}' % base64.b64encode(jpg()).decode()).encode(),
    ),
    "empty": ({}, b""),
    "json null": ({"content-type": "application/json"}, b"null"),
    "not json": ({"content-type": "application/json"}, b"{oops"),
}


@pytest.mark.parametrize("model", MODELS)
def test_every_payload_gets_a_200_or_a_json_4xx(server, model):
    failures = []
    for name, (headers, body) in BATTERY.items():
        response = httpx.post(f"{server.url}/models/{model}", content=body, headers=headers, timeout=60)
        if response.status_code >= 500:
            failures.append(f"{name}: {response.status_code} {response.text[:200]}")
        elif response.status_code >= 400 and not response.json().get("error"):
            failures.append(f"{name}: {response.status_code} without a JSON error")
    assert not failures, failures
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_the_root_answers_api_clients(server):
    root = httpx.get(server.url)
    assert root.status_code == 200 and root.json()["ok"] == "ok"
    assert set(MODELS) <= set(root.json()["models"])
