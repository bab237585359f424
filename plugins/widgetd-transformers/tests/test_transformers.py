"""Every task of the transformers backend over real HTTP, on tiny models of real architectures."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import msgspec
import numpy as np
import pytest
from PIL import Image

from widgetd.tasks import BUILTIN_TASKS
from widgetd.testing.audio import CONTAINERS, encode, tone

TASKS = {task.name: task for task in BUILTIN_TASKS}
CONTEXT = "My name is Sarah and I live in London. The cat sat on the mat in Paris."


def post(server, model: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.url}/models/{model}", timeout=60, **kwargs)


def wire(response: httpx.Response, task: str):
    assert response.status_code == 200, response.text
    return msgspec.json.decode(response.content, type=TASKS[task].wire_output)


@pytest.mark.parametrize("top_k", [1, 3])
def test_answers_are_spans_of_the_context(server, top_k):
    body = {"inputs": {"question": "Where does Sarah live?", "context": CONTEXT}, "parameters": {"top_k": top_k}}
    answers = wire(post(server, "tiny-qa", json=body), "question-answering")
    answers = answers if isinstance(answers, list) else [answers]
    assert 1 <= len(answers) <= top_k
    for answer in answers:
        assert CONTEXT[answer.start : answer.end] == answer.answer
        assert 0 <= answer.score <= 1
    assert [a.score for a in answers] == sorted((a.score for a in answers), reverse=True)


def test_long_contexts_are_split_into_windows(server):
    context = " ".join([CONTEXT] * 30)
    body = {"inputs": {"question": "Where?", "context": context}, "parameters": {"max_seq_len": 48, "doc_stride": 16, "top_k": 5}}
    answers = wire(post(server, "tiny-qa", json=body), "question-answering")
    assert any(a.start > 1000 for a in answers) or len(answers) == 5
    for answer in answers:
        assert context[answer.start : answer.end] == answer.answer


def test_max_answer_len_bounds_the_answer(server):
    body = {"inputs": {"question": "who", "context": CONTEXT}, "parameters": {"max_answer_len": 1, "top_k": 5, "align_to_words": False}}
    for answer in wire(post(server, "tiny-qa", json=body), "question-answering"):
        assert len(answer.answer.split()) <= 1


def test_impossible_answer_can_be_empty(server):
    body = {"inputs": {"question": "who", "context": CONTEXT}, "parameters": {"handle_impossible_answer": True, "top_k": 3}}
    answers = wire(post(server, "tiny-qa", json=body), "question-answering")
    assert all(CONTEXT[a.start : a.end] == a.answer for a in answers)


def test_empty_context_is_a_400(server):
    response = post(server, "tiny-qa", json={"inputs": {"question": "who", "context": "   "}})
    assert response.status_code == 400 and "context" in response.json()["error"]


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_entity_spans_match_the_text(server, strategy):
    text = "My name is Sarah and I live in London"
    body = {"inputs": text, "parameters": {"aggregation_strategy": strategy, "ignore_labels": []}}
    entities = wire(post(server, "tiny-ner", json=body), "token-classification")
    assert entities, "with no label ignored, every token is an entity"
    for entity in entities:
        assert 0 <= entity.start < entity.end <= len(text)
        assert text[entity.start : entity.end] == entity.word
        assert entity.entity_group.split("-")[-1] in {"O", "PER", "LOC"}
        assert 0 <= entity.score <= 1


def test_unaggregated_entities_carry_the_pipelines_entity_and_index(server, model_dirs):
    from transformers import pipeline

    text = "My name is Sarah and I live in London"
    ner = pipeline("token-classification", model=str(model_dirs["tiny-ner"]))
    reference = ner(text, aggregation_strategy="none", ignore_labels=[])
    body = {"inputs": text, "parameters": {"aggregation_strategy": "none", "ignore_labels": []}}
    answer = post(server, "tiny-ner", json=body).json()
    assert [(e["entity"], e["index"], e["start"], e["end"]) for e in answer] == [
        (r["entity"], r["index"], r["start"], r["end"]) for r in reference
    ]
    assert all(e["entity_group"] == e["entity"] for e in answer)
    grouped = post(server, "tiny-ner", json={"inputs": text, "parameters": {"ignore_labels": []}}).json()
    assert grouped and all("entity" not in e and "index" not in e for e in grouped)


def test_text_classification_is_nested_sorted_and_honours_top_k(server):
    (labels,) = wire(post(server, "tiny-sentiment", json={"inputs": "good movie"}), "text-classification")
    assert {l.label for l in labels} == {"NEGATIVE", "POSITIVE"}
    assert labels[0].score >= labels[1].score and sum(l.score for l in labels) == pytest.approx(1, abs=1e-4)
    (top,) = wire(post(server, "tiny-sentiment", json={"inputs": "good", "parameters": {"top_k": 1, "function_to_apply": "sigmoid"}}), "text-classification")
    assert len(top) == 1


def test_zero_shot_scores_every_candidate(server):
    body = {"inputs": "the cat sat", "parameters": {"candidate_labels": ["cat", "movie", "food"], "multi_label": False}}
    labels = wire(post(server, "tiny-nli", json=body), "zero-shot-classification")
    assert sorted(l.label for l in labels) == ["cat", "food", "movie"]
    assert sum(l.score for l in labels) == pytest.approx(1, abs=1e-4)
    assert [l.score for l in labels] == sorted((l.score for l in labels), reverse=True)


def test_fill_mask_candidates_fill_the_mask(server):
    body = {"inputs": "the cat sat on the [MASK].", "parameters": {"top_k": 3}}
    candidates = wire(post(server, "tiny-mlm", json=body), "fill-mask")
    assert len(candidates) == 3
    for candidate in candidates:
        assert "[MASK]" not in candidate.sequence and candidate.token_str.strip() in candidate.sequence


def test_fill_mask_targets(server):
    body = {"inputs": "the [MASK] sat.", "parameters": {"targets": ["cat", "dog"]}}
    assert {c.token_str for c in wire(post(server, "tiny-mlm", json=body), "fill-mask")} == {"cat", "dog"}


@pytest.mark.parametrize("text", ["no mask here", "two [MASK] [MASK]"])
def test_fill_mask_needs_exactly_one_mask(server, text):
    response = post(server, "tiny-mlm", content=text)
    assert response.status_code == 400 and "[MASK]" in response.json()["error"]


def test_feature_extraction_answers_the_pipelines_vector_per_token(server, model_dirs):
    from transformers import pipeline

    reference = pipeline("feature-extraction", model=str(model_dirs["tiny-embedder"]))("the cat")
    one = post(server, "tiny-embedder", json={"inputs": "the cat"}).json()
    assert np.array(one).shape == np.array(reference[0]).shape == (4, 32)  # [CLS] the cat [SEP]
    assert np.allclose(one, reference[0], atol=1e-5)
    many = post(server, "tiny-embedder", json={"inputs": ["the cat", "a dog sat on the mat"]}).json()
    assert np.allclose(many[0], one, atol=1e-5) and len(many[1]) == 8
    normalized = post(server, "tiny-embedder", json={"inputs": "the cat", "normalize": True}).json()
    assert np.allclose(np.linalg.norm(normalized, axis=1), 1, atol=1e-5)


def test_feature_extraction_refuses_long_texts_unless_truncated(server):
    long_text = "the cat " * 100
    assert post(server, "tiny-embedder", json={"inputs": long_text}).status_code == 400
    assert post(server, "tiny-embedder", json={"inputs": long_text, "truncate": True}).status_code == 200


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (44100, 2), (8000, 1)])
def test_speech_in_every_container_rate_and_channel_count(server, container, rate, channels):
    transcript = wire(post(server, "tiny-asr", content=encode(tone(1.0, rate, channels), rate, container)), "automatic-speech-recognition")
    assert isinstance(transcript.text, str) and transcript.chunks is None


def test_speech_with_word_timestamps(server):
    body = {"inputs": base64.b64encode(encode(tone(1.0, 16000), 16000, "WAV")).decode(), "parameters": {"return_timestamps": True}}
    transcript = wire(post(server, "tiny-asr", json=body), "automatic-speech-recognition")
    assert transcript.chunks is not None
    assert all(0 <= c.timestamp[0] <= c.timestamp[1] <= 1.1 for c in transcript.chunks)


def test_audio_classification_names_the_models_labels_by_the_pipelines_rules(server, model_dirs):
    from transformers import pipeline

    from widgetd.media import decode_audio
    from widgetd_transformers.testing import AUDIO_LABELS

    wav = encode(tone(1.0, 16000), 16000, "WAV")
    labels = wire(post(server, "tiny-keywords", content=wav), "audio-classification")
    clip = decode_audio(wav).samples  # the 16-bit samples the server read
    reference = pipeline("audio-classification", model=str(model_dirs["tiny-keywords"]))({"raw": clip, "sampling_rate": 16000})
    assert [entry.label for entry in labels] == [entry["label"] for entry in reference]
    assert [entry.score for entry in labels] == pytest.approx([entry["score"] for entry in reference], abs=1e-5)
    assert {entry.label for entry in labels} <= set(AUDIO_LABELS) and len(labels) == 5
    body = {"inputs": base64.b64encode(encode(tone(0.5, 44100, 2), 44100, "FLAC")).decode(), "parameters": {"top_k": 2}}
    assert len(wire(post(server, "tiny-keywords", json=body), "audio-classification")) == 2


@pytest.mark.parametrize("body", [b"not audio", b"RIFF\x00\x00\x00\x00WAVEfmt "])
def test_malformed_audio_is_415(server, body):
    assert post(server, "tiny-asr", content=body).status_code == 415


def image_bytes(image_format: str, mode: str = "RGB", size=(48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (120, 30, 200) if mode == "RGB" else 100).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.mark.parametrize(("image_format", "mode"), [("JPEG", "RGB"), ("PNG", "RGBA"), ("WEBP", "RGB"), ("PNG", "L")])
def test_images_are_classified(server, image_format, mode):
    labels = wire(post(server, "tiny-vit", content=image_bytes(image_format, mode)), "image-classification")
    assert len(labels) == 5
    assert [l.score for l in labels] == sorted((l.score for l in labels), reverse=True)
    assert all(0 <= l.score <= 1 for l in labels)


def test_image_top_k_with_base64_json(server):
    body = {"inputs": base64.b64encode(image_bytes("PNG")).decode(), "parameters": {"top_k": 2}}
    assert len(wire(post(server, "tiny-vit", json=body), "image-classification")) == 2


def test_malformed_images_are_415(server):
    assert post(server, "tiny-vit", content=b"\x89PNG\r\n\x1a\nbroken").status_code == 415


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("tiny-sentiment", {"inputs": "good movie"}),
        ("tiny-ner", {"inputs": "Sarah lives in London"}),
        ("tiny-embedder", {"inputs": "the cat sat"}),
        ("tiny-mlm", {"inputs": "the [MASK] sat"}),
        ("tiny-qa", {"inputs": {"question": "who lives in london", "context": CONTEXT}, "parameters": {"top_k": 3}}),
    ],
)
def test_answers_do_not_depend_on_batch_neighbours(server, model, body):
    alone = post(server, model, json=body).json()
    others = [{"inputs": "a dog " * n + "[MASK]" if model == "tiny-mlm" else "a dog " * n} for n in range(1, 12)]
    if model == "tiny-qa":
        others = [{"inputs": {"question": "where " * n, "context": CONTEXT * n}} for n in range(1, 12)]
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda b: post(server, model, json=b), [body, *others, body]))
    for together in (results[0].json(), results[-1].json()):
        assert_close(together, alone)


def assert_close(actual, expected):
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        for key in expected:
            assert_close(actual[key], expected[key])
    elif isinstance(expected, list):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_close(a, e)
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=1e-4)
    else:
        assert actual == expected


GROW = {"generate_parameters": {"min_new_tokens": 3, "max_new_tokens": 6}}


def test_summaries_are_list_wrapped(server):
    body = {"inputs": "my name is sarah and i live in london " * 3, "parameters": GROW}
    (summary,) = wire(post(server, "tiny-summarizer", json=body), "summarization")
    assert isinstance(summary.summary_text, str) and summary.summary_text


def test_translation_and_languages_of_a_one_pair_model(server):
    (translation,) = wire(post(server, "tiny-translator", json={"inputs": "the cat sat", "parameters": GROW}), "translation")
    assert translation.translation_text
    refused = post(server, "tiny-translator", json={"inputs": "the cat", "parameters": {"src_lang": "en_XX", "tgt_lang": "fr_XX"}})
    assert refused.status_code == 400 and "multilingual" in refused.json()["error"]


def test_summarization_refuses_long_inputs_unless_truncated(server):
    long_text = "the cat sat on the mat " * 60
    assert post(server, "tiny-summarizer", json={"inputs": long_text}).status_code == 400
    allowed = {"inputs": long_text, "parameters": {"truncation": "longest_first", **GROW}}
    assert post(server, "tiny-summarizer", json=allowed).status_code == 200


def test_a_summary_with_no_room_past_the_decoder_start_token_is_a_400(server):
    body = {"inputs": "the cat", "parameters": {"generate_parameters": {"max_length": 1}}}
    response = post(server, "tiny-summarizer", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "parameters.generate_parameters.max_length"


@pytest.mark.parametrize(
    ("option", "settings"),
    [("penalty_alpha", {"penalty_alpha": 0.6, "top_k": 4}), ("num_beam_groups", {"num_beams": 2, "num_beam_groups": 2})],
)
def test_generation_that_needs_code_from_the_hub_is_a_400(server, option, settings):
    body = {"inputs": "the cat", "parameters": {"generate_parameters": settings}}
    response = post(server, "tiny-summarizer", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == f"parameters.generate_parameters.{option}"


def test_a_beam_search_past_the_servers_limit_is_refused_before_it_runs(server):
    """Found by schemathesis: 131,073 beams kept the server busy past any client's patience."""
    body = {"inputs": "the cat", "parameters": {"generate_parameters": {"num_beams": 131073, "max_length": 1507919}}}
    response = post(server, "tiny-summarizer", json=body)
    assert response.status_code == 413 and response.json()["field"] == "parameters.generate_parameters.num_beams"
    beams = {"inputs": "the cat", "parameters": {"generate_parameters": {"num_beams": 4, "max_new_tokens": 4}}}
    assert post(server, "tiny-summarizer", json=beams).status_code == 200


def test_text_generation_continues_the_prompt(server):
    body = {"inputs": "the cat", "parameters": {"max_new_tokens": 5, "do_sample": False}, "stream": False}
    (generated,) = wire(post(server, "tiny-gpt2", json=body), "text-generation")
    assert generated.generated_text.startswith("the cat") and len(generated.generated_text) > len("the cat")
    again = wire(post(server, "tiny-gpt2", json=body), "text-generation")
    assert again[0].generated_text == generated.generated_text


def test_text_generation_options(server):
    new_only = {"inputs": "the cat", "parameters": {"max_new_tokens": 4, "return_full_text": False}}
    (generated,) = wire(post(server, "tiny-gpt2", json=new_only), "text-generation")
    assert not generated.generated_text.startswith("the cat")
    sampled = {"inputs": "hello", "parameters": {"max_new_tokens": 4, "do_sample": True, "seed": 7, "temperature": 0.8, "top_k": 5}}
    first, second = (post(server, "tiny-gpt2", json=sampled).json() for _ in range(2))
    assert first == second
    streamed = post(server, "tiny-gpt2", json={"inputs": "x", "stream": True, "parameters": {"max_new_tokens": 3}})
    assert streamed.headers["content-type"].startswith("text/event-stream") and streamed.text.endswith("data: [DONE]\n\n")


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        # A penalty float32 rounds to 0 divides the scores by zero, sampling or not.
        ("tiny-gpt2", {"inputs": "", "parameters": {"do_sample": True, "repetition_penalty": 2.96e-66}}, "parameters.repetition_penalty"),
        ("tiny-gpt2", {"inputs": "the cat", "parameters": {"repetition_penalty": 1e-60, "max_new_tokens": 3}}, "parameters.repetition_penalty"),
        ("tiny-gpt2", {"inputs": "the cat", "parameters": {"do_sample": True, "temperature": 1e-45}}, "parameters.temperature"),
        (
            "tiny-summarizer",
            {"inputs": "the cat sat", "parameters": {"generate_parameters": {"do_sample": True, "temperature": 1e-44}}},
            "parameters.generate_parameters.temperature",
        ),
    ],
)
def test_options_that_make_probabilities_non_finite_are_a_400_naming_them(server, model, body, field):
    response = post(server, model, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert post(server, model, json={"inputs": "the cat", "parameters": {}}).status_code == 200


def test_a_tiny_temperature_without_sampling_changes_nothing(server):
    greedy = {"inputs": "the cat", "parameters": {"max_new_tokens": 4}}
    cold = {"inputs": "the cat", "parameters": {"max_new_tokens": 4, "temperature": 1e-45}}
    assert post(server, "tiny-gpt2", json=cold).json() == post(server, "tiny-gpt2", json=greedy).json()


def test_the_full_text_keeps_the_prompt_as_sent_when_only_its_end_is_read(server):
    body = {"inputs": "00 the cat", "parameters": {"return_full_text": True, "truncate": 1, "max_new_tokens": 3}}
    (generated,) = wire(post(server, "tiny-gpt2", json=body), "text-generation")
    new_only = {"inputs": "00 the cat", "parameters": {"return_full_text": False, "truncate": 1, "max_new_tokens": 3}}
    (continuation,) = wire(post(server, "tiny-gpt2", json=new_only), "text-generation")
    assert generated.generated_text == "00 the cat" + continuation.generated_text


def test_the_default_length_is_the_models_generation_config(model_dirs, tmp_path):
    import shutil

    import widgetd_transformers
    from transformers import GenerationConfig
    from widgetd.testing.server import LiveServer

    folder = tmp_path / "gpt2-short"
    shutil.copytree(model_dirs["tiny-gpt2"], folder)
    GenerationConfig(max_new_tokens=3, eos_token_id=-1).save_pretrained(str(folder))
    with LiveServer.for_models([str(folder)], plugins={"transformers": widgetd_transformers}) as live:
        url = f"{live.url}/models/gpt2-short"

        def generated(parameters: dict) -> str:
            return httpx.post(url, json={"inputs": "the cat", "parameters": parameters}).json()[0]["generated_text"]

        assert generated({}) == generated({"max_new_tokens": 3}) != generated({"max_new_tokens": 50})


def test_text_to_speech_answers_audio_in_the_accepted_format(server):
    import soundfile

    for accept, container in (("audio/flac", "FLAC"), ("audio/wav", "WAV")):
        response = post(server, "tiny-tts", json={"inputs": "hello there"}, headers={"accept": accept})
        assert response.status_code == 200 and response.headers["content-type"] == accept
        info = soundfile.info(io.BytesIO(response.content))
        assert info.format == container and info.samplerate == 16000 and info.frames > 0


def test_a_hub_model_downloads_only_what_pytorch_needs(local_hub, hub_env, model_dirs, tmp_path):
    import shutil
    from pathlib import Path

    from widgetd.testing.process import ServeProcess

    repo = tmp_path / "repo"
    shutil.copytree(model_dirs["tiny-sentiment"], repo)
    (repo / "tf_model.h5").write_bytes(b"tensorflow weights")
    (repo / "onnx").mkdir()
    (repo / "onnx" / "model.onnx").write_bytes(b"onnx weights")
    local_hub.publish("org/tiny-sentiment", repo)
    with ServeProcess(["--model-id", "org/tiny-sentiment"], {**hub_env, "WIDGETD_LOAD_PLUGINS": "transformers"}) as process:
        (labels,) = httpx.post(process.url, json={"inputs": "good"}).json()
        assert len(labels) == 2
    snapshots = Path(hub_env["HF_HUB_CACHE"]) / "models--org--tiny-sentiment" / "snapshots"
    files = {p.name for p in snapshots.rglob("*") if p.is_file()}
    assert "model.safetensors" in files and "config.json" in files
    assert not files & {"tf_model.h5", "model.onnx"}


@pytest.mark.parametrize(
    ("model", "task"),
    [("tiny-qa", "question-answering"), ("tiny-ner", "token-classification"), ("tiny-mlm", "fill-mask"),
     ("tiny-asr", "automatic-speech-recognition"), ("tiny-vit", "image-classification"), ("tiny-gpt2", "text-generation"),
     ("tiny-embedder", "feature-extraction"), ("tiny-tts", "text-to-speech")],
)
def test_a_model_folder_without_a_card_gets_its_task_from_config(model_dirs, model, task, tmp_path):
    import shutil

    from widgetd.hub import choose_backend, choose_task, locate_model
    from widgetd_transformers.backend import BACKEND

    folder = tmp_path / model
    shutil.copytree(model_dirs[model], folder)
    (folder / "README.md").unlink()
    source = locate_model(str(folder), {})
    assert choose_backend(source, {"transformers": BACKEND}) is BACKEND
    assert choose_task(source, BACKEND) == task


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("tiny-sentiment", {"inputs": "good movie " * 200}),
        ("tiny-ner", {"inputs": "Sarah lives in London " * 100}),
        ("tiny-nli", {"inputs": "the cat " * 200, "parameters": {"candidate_labels": ["cat"]}}),
        ("tiny-mlm", {"inputs": "the cat " * 200 + "[MASK]"}),
        ("tiny-gpt2", {"inputs": "the cat " * 200}),
        ("tiny-gpt2", {"inputs": "the cat", "parameters": {"max_new_tokens": 5000}}),
        ("tiny-summarizer", {"inputs": "the cat", "parameters": {"generate_parameters": {"max_new_tokens": 5000}}}),
    ],
)
def test_inputs_longer_than_the_model_get_an_answer_or_a_4xx(server, model, body):
    response = post(server, model, json=body)
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text


def test_zero_shot_of_an_empty_text_is_a_400(server):
    response = post(server, "tiny-nli", json={"inputs": " ", "parameters": {"candidate_labels": ["a"]}})
    assert response.status_code == 400 and "empty" in response.json()["error"]


def test_generation_nobody_waits_for_stops_within_a_step(model_dirs, tmp_path):
    import resource
    import shutil
    import time

    from transformers import GPT2Config, GPT2LMHeadModel

    import widgetd_transformers
    from widgetd.app import ServerSettings
    from widgetd.testing.server import LiveServer

    def cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    # A GPT-2 large enough that 16 generations of 500 tokens take seconds.
    folder = tmp_path / "slow-gpt2"
    shutil.copytree(model_dirs["tiny-gpt2"], folder)
    config = GPT2Config.from_pretrained(str(folder))
    config.update({"n_embd": 256, "n_layer": 6, "n_head": 4})
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    settings = ServerSettings(request_timeout=0.5, max_batch_wait=0.05)
    with LiveServer.for_models([str(folder)], plugins={"transformers": widgetd_transformers}, settings=settings) as live:
        bodies = [{"inputs": f"the cat {n}", "parameters": {"max_new_tokens": 500}} for n in range(16)]
        busy_before = cpu_seconds()
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda body: httpx.post(f"{live.url}/models/slow-gpt2", json=body, timeout=60).status_code, bodies))
        # Continuous batching may finish a few within the timeout; the rest are given up mid-generation.
        assert set(statuses) <= {200, 504} and statuses.count(504) >= 8, statuses
        assert cpu_seconds() - busy_before > 0.3, "the model was not busy: the test proves nothing"
        time.sleep(0.5)
        before = cpu_seconds()
        time.sleep(1.0)
        assert cpu_seconds() - before < 0.5  # of two cores; generating for nobody uses about 1


def test_token_vectors_that_would_make_too_large_an_answer_are_refused_before_any_work(model_dirs):
    import widgetd_transformers
    from widgetd.app import ServerSettings
    from widgetd.limits import Limits
    from widgetd.testing.server import LiveServer

    settings = ServerSettings(limits=Limits(max_response_bytes=10_000))
    with LiveServer.for_models([str(model_dirs["tiny-embedder"])], plugins={"transformers": widgetd_transformers}, settings=settings) as live:
        url = f"{live.url}/models/tiny-embedder"
        assert httpx.post(url, json={"inputs": "the cat"}).status_code == 200
        response = httpx.post(url, json={"inputs": ["the cat sat on the mat and the dog was great"] * 10})
        assert response.status_code == 413 and "a vector per token" in response.json()["error"]


def test_every_route_does_what_the_openapi_document_says(server):
    """schemathesis, every check, on each of the twelve models' routes."""
    from widgetd.testing.openapi import assert_openapi_holds

    assert_openapi_holds(server.url, max_examples=5)
