"""Every built-in task contract end to end over HTTP, served by the toy plugin: wire shapes and 4xx."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import msgspec
import pytest
import soundfile
from PIL import Image

from widgetd.tasks import BUILTIN_TASKS
from widgetd.testing.audio import CONTAINERS, encode, tone

SAMPLES = Path(__file__).parents[1].parent / "shared" / "reference" / "media-samples"
TASKS = {task.name: task for task in BUILTIN_TASKS}


def png(color=(200, 10, 10), size=(16, 12), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 128).save(buffer, format="PNG")
    return buffer.getvalue()


def wav(seconds=0.5, rate=16000, channels=1) -> bytes:
    return encode(tone(seconds, rate, channels), rate, "WAV")


VALID = {
    "question-answering": {"inputs": {"question": "Who?", "context": "Sarah lives in London"}},
    "token-classification": {"inputs": "My name is Sarah and I live in London"},
    "text-classification": {"inputs": "a good movie", "parameters": {"top_k": 2}},
    "zero-shot-classification": {
        "inputs": "I love my dog",
        "parameters": {"candidate_labels": ["dog", "cat"], "multi_label": False},
    },
    "fill-mask": {"inputs": "The [MASK] sat on the mat.", "parameters": {"top_k": 3}},
    "sentence-similarity": {"inputs": {"source_sentence": "a b", "sentences": ["a", "b c"]}},
    "feature-extraction": {"inputs": ["one", "two"], "normalize": False},
    "summarization": {"inputs": "one two three four five six seven"},
    "translation": {"inputs": "hello world", "parameters": {"src_lang": "en", "tgt_lang": "fr"}},
    "text-generation": {"inputs": "Once upon a time", "parameters": {"max_new_tokens": 5}, "stream": False},
    "automatic-speech-recognition": {"inputs": base64.b64encode(wav()).decode(), "parameters": {"return_timestamps": True}},
    "text-to-speech": {"inputs": "hello"},
    "audio-to-audio": {"inputs": base64.b64encode(wav()).decode(), "parameters": {}},
    "image-classification": {"inputs": base64.b64encode(png()).decode(), "parameters": {"top_k": 2}},
    "audio-classification": {"inputs": base64.b64encode(wav()).decode(), "parameters": {"top_k": 2, "function_to_apply": "softmax"}},
    "zero-shot-image-classification": {"inputs": base64.b64encode(png()).decode(), "parameters": {"candidate_labels": ["red", "a blue sky"]}},
    "object-detection": {"inputs": base64.b64encode(png()).decode(), "parameters": {"threshold": 0.1}},
    "image-segmentation": {"inputs": base64.b64encode(png()).decode(), "parameters": {"subtask": "semantic", "mask_threshold": 0.4}},
    "table-question-answering": {"inputs": {"question": "Which city?", "table": {"city": ["Paris", "Berlin"], "n": ["1", "2"]}}},
    "tabular-classification": {"table": {"length": ["1", "12"], "width": ["1", "3"], "colour": ["red", "blue"]}, "parameters": {}},
    "tabular-regression": {"inputs": {"data": {"length": [1.5], "width": [2], "colour": ["red"]}}},
    "conversational": {"inputs": {"past_user_inputs": ["hi"], "generated_responses": ["hello"], "text": "how are you"}, "parameters": {"max_length": 8}},
    "text-to-image": {"inputs": "a red square", "parameters": {"width": 20, "height": 10, "num_inference_steps": 3, "seed": 2, "negative_prompt": "blue"}},
    "image-to-text": {"inputs": base64.b64encode(png()).decode(), "parameters": {"max_new_tokens": 5, "generation_parameters": {"do_sample": False}}},
    "visual-question-answering": {"inputs": base64.b64encode(png()).decode(), "question": "What colour?", "parameters": {"top_k": 2}},
    "zero-shot-audio-classification": {"inputs": base64.b64encode(wav()).decode(), "parameters": {"candidate_labels": ["dog", "music"]}},
    "depth-estimation": {"inputs": base64.b64encode(png()).decode()},
    "image-to-image": {"inputs": base64.b64encode(png()).decode(), "parameters": {"target_size": {"width": 20, "height": 10}}},
    "document-question-answering": {"inputs": {"image": base64.b64encode(png()).decode(), "question": "Total?"}, "parameters": {"word_boxes": [["Total", [0, 0, 10, 10]], ["9", [12, 0, 20, 10]]], "top_k": 2}},
}

INVALID = {
    "question-answering": {"inputs": {"question": "q", "context": "c"}, "parameters": {"max_answer_len": 0}},
    "token-classification": {"inputs": "x", "parameters": {"aggregation_strategy": "loudest"}},
    "text-classification": {"inputs": "x", "parameters": {"function_to_apply": "tanh"}},
    "zero-shot-classification": {"inputs": "x", "parameters": {"candidate_labels": []}},
    "fill-mask": {"inputs": "x [MASK]", "parameters": {"targets": []}},
    "sentence-similarity": {"inputs": {"source_sentence": "x", "sentences": "not a list"}},
    "feature-extraction": {"inputs": [], "normalize": True},
    "summarization": {"inputs": "x", "parameters": {"truncation": "sometimes"}},
    "translation": {"inputs": "x", "parameters": {"generate_parameters": {"num_beams": 0}}},
    "text-generation": {"inputs": "x", "parameters": {"temperature": 0}},
    "automatic-speech-recognition": {"inputs": "@@not base64@@", "parameters": {}},
    "text-to-speech": {"inputs": ""},
    "audio-to-audio": {"inputs": 42},
    "image-classification": {"inputs": base64.b64encode(png()).decode(), "parameters": {"top_k": -1}},
    "audio-classification": {"inputs": base64.b64encode(wav()).decode(), "parameters": {"function_to_apply": "tanh"}},
    "zero-shot-image-classification": {"inputs": base64.b64encode(png()).decode(), "parameters": {"candidate_labels": []}},
    "object-detection": {"inputs": base64.b64encode(png()).decode(), "parameters": {"threshold": 2}},
    "image-segmentation": {"inputs": base64.b64encode(png()).decode(), "parameters": {"subtask": "everything"}},
    "table-question-answering": {"inputs": {"question": "Which city?", "table": {"city": ["Paris", "Berlin"], "n": ["1"]}}},
    "tabular-classification": {"table": {"length": ["1", "12"], "width": ["1"], "colour": ["red", "blue"]}},
    "tabular-regression": {"inputs": {"data": {"length": [1.5]}}, "table": {"length": [1.5]}},
    "conversational": {"inputs": {"past_user_inputs": ["hi"], "generated_responses": [], "text": "how are you"}},
    "text-to-image": {"inputs": "a red square", "parameters": {"width": 32, "target_size": {"width": 32, "height": 32}}},
    "image-to-text": {"inputs": base64.b64encode(png()).decode(), "parameters": {"max_new_tokens": 0}},
    "visual-question-answering": {"inputs": {"image": base64.b64encode(png()).decode()}},
    "zero-shot-audio-classification": {"inputs": base64.b64encode(wav()).decode(), "parameters": {"candidate_labels": ["dog"], "hypothesis_template": "{} {}"}},
    "depth-estimation": {"inputs": base64.b64encode(png()).decode(), "parameters": {"threshold": 0.5}},
    "image-to-image": {"inputs": base64.b64encode(png()).decode(), "parameters": {"target_size": {"width": 0, "height": 10}}},
    "document-question-answering": {"inputs": {"image": base64.b64encode(png()).decode(), "question": "Total?"}, "parameters": {"word_boxes": [["Total", [0, 0, 10, 2000]]]}},
}


def post(server, task: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.url}/models/toy-qa/pipeline/{task}", timeout=30, **kwargs)


def test_every_built_in_task_is_covered():
    assert set(VALID) == set(INVALID) == set(TASKS)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_valid_request_gets_a_200_that_decodes_under_the_wire_schema(toy_server, task):
    response = post(toy_server, task, json=VALID[task])
    assert response.status_code == 200, response.text
    if TASKS[task].response_media == "audio":
        assert response.headers["content-type"] == "audio/flac"
        samples, rate = soundfile.read(io.BytesIO(response.content))
        assert rate == 16000 and len(samples) > 0
    elif TASKS[task].response_media == "image":
        assert response.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(response.content)).size == (20, 10)
    else:
        msgspec.json.decode(response.content, type=TASKS[task].wire_output)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_an_invalid_request_gets_a_400_naming_the_problem(toy_server, task):
    response = post(toy_server, task, json=INVALID[task])
    assert response.status_code == 400, response.text
    assert "$." in response.json()["error"] or response.json().get("field")


def test_text_classification_is_nested_and_sorted(toy_server):
    (labels,) = post(toy_server, "text-classification", json={"inputs": "good good"}).json()
    assert [entry["label"] for entry in labels] == ["POSITIVE", "NEGATIVE"]
    assert labels[0]["score"] >= labels[1]["score"]


def test_token_spans_are_the_text_they_claim(toy_server):
    text = VALID["token-classification"]["inputs"]
    found = post(toy_server, "token-classification", content=text).json()
    assert [e["word"] for e in found] == ["My", "Sarah", "I", "London"]
    assert all(text[e["start"] : e["end"]] == e["word"] for e in found)


def test_list_wrapped_generations(toy_server):
    assert post(toy_server, "summarization", content="a b c d e f g").json() == [{"summary_text": "a b c d e"}]
    assert post(toy_server, "translation", content="a b").json() == [{"translation_text": "b a"}]


def test_asr_chunks_only_with_timestamps(toy_server):
    plain = post(toy_server, "automatic-speech-recognition", content=wav(1.0)).json()
    assert plain == {"text": "1.00 seconds"}
    timed = post(toy_server, "automatic-speech-recognition", json=VALID["automatic-speech-recognition"]).json()
    assert timed["chunks"] == [{"text": "0.50 seconds", "timestamp": [0.0, 0.5]}]


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (44100, 2)])
def test_raw_audio_in_every_container_with_or_without_content_type(toy_server, container, rate, channels):
    body = encode(tone(1.0, rate, channels), rate, container)
    for headers in ({}, {"content-type": "audio/x-wav"}, {"content-type": "application/octet-stream"}):
        response = post(toy_server, "automatic-speech-recognition", content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["text"].endswith("seconds")


def test_the_accept_header_picks_the_audio_format(toy_server):
    sources = post(toy_server, "audio-to-audio", content=wav(), headers={"accept": "audio/wav"}).json()
    assert [s["content-type"] for s in sources] == ["audio/wav", "audio/wav"]
    assert soundfile.info(io.BytesIO(base64.b64decode(sources[0]["blob"]))).format == "WAV"
    speech = post(toy_server, "text-to-speech", json={"inputs": "hi"}, headers={"accept": "audio/ogg"})
    assert speech.headers["content-type"] == "audio/ogg"


@pytest.mark.parametrize("body", [b"garbage bytes", b"RIFF\x00\x00WAVEfmt", b"ID3\x03\x00\x00\x00"])
def test_undecodable_audio_is_415(toy_server, body):
    response = post(toy_server, "automatic-speech-recognition", content=body)
    assert response.status_code == 415
    assert "audio" in response.json()["error"]


@pytest.mark.parametrize("body", [b"\x89PNG\r\n\x1a\nbroken", b"GIF89a", b"not an image"])
def test_undecodable_images_are_415(toy_server, body):
    response = post(toy_server, "image-classification", content=body)
    assert response.status_code == 415
    assert "image" in response.json()["error"]


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_images_of_any_mode_are_accepted(toy_server, mode):
    response = post(toy_server, "image-classification", content=png(mode=mode), headers={"content-type": "image/png"})
    assert response.status_code == 200
    assert len(response.json()) == 3


def test_fill_mask_without_a_mask_token_is_a_clear_400(toy_server):
    response = post(toy_server, "fill-mask", content="no mask here")
    assert response.status_code == 400
    assert "[MASK]" in response.json()["error"]


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="the reference media samples (../shared) are not beside this checkout")
@pytest.mark.parametrize(
    ("sample", "task", "statuses"),
    [
        ("sample1.flac", "automatic-speech-recognition", {200}),
        ("sample1_dual.ogg", "automatic-speech-recognition", {200}),
        ("sample1.webm", "automatic-speech-recognition", {200, 415}),
        ("malformed.flac", "automatic-speech-recognition", {415}),
        ("sample1_dual.ogg", "audio-to-audio", {200}),
        ("plane.jpg", "image-classification", {200}),
        ("plane2.jpg", "image-classification", {200}),
    ],
)
def test_api_inference_community_media_samples(toy_server, sample, task, statuses):
    response = post(toy_server, task, content=(SAMPLES / sample).read_bytes())
    assert response.status_code in statuses, response.text
    assert "error" not in response.json() if response.status_code == 200 else response.json()["error"]


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="the reference media samples (../shared) are not beside this checkout")
def test_base64_image_with_parameters(toy_server):
    body = {"inputs": base64.b64encode((SAMPLES / "plane.jpg").read_bytes()).decode(), "parameters": {"top_k": 1}}
    labels = post(toy_server, "image-classification", json=body).json()
    assert len(labels) == 1 and 0 <= labels[0]["score"] <= 1
