"""The sentence-transformers backend served over real HTTP: contracts, options, quality, batching."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from widgetd import ModelSnapshot
from widgetd_sentence_transformers.pipeline import SentenceTransformersPipeline

SOURCE = "A man is eating food."
CLOSE = "A man is eating a piece of bread."
FAR = "The new movie is awesome."


def similarity(server, source, sentences, path=""):
    response = httpx.post(
        f"{server.url}{path}", json={"inputs": {"source_sentence": source, "sentences": sentences}}
    )
    assert response.status_code == 200, response.text
    return response.json()


def embed(server, body, model_id):
    response = httpx.post(f"{server.url}/models/{model_id}/pipeline/feature-extraction", json=body)
    return response


def tiny_id(server):
    return server.state.models[0].model_id


def test_real_model_ranks_the_close_sentence_first(default_model_server):
    close, far = similarity(default_model_server, SOURCE, [CLOSE, FAR])
    assert close > far
    assert close == pytest.approx(0.755, abs=0.01)
    assert far == pytest.approx(-0.05, abs=0.02)


def test_real_model_scores_identical_sentences_about_one(default_model_server):
    (score,) = similarity(default_model_server, SOURCE, [SOURCE])
    assert score == pytest.approx(1.0, abs=1e-5)


def test_one_score_per_sentence_in_order(tiny_server):
    sentences = ["the cat sat on the mat", "hello world", "the cat sat on the mat", ""]
    scores = similarity(tiny_server, "the cat", sentences)
    assert len(scores) == len(sentences)
    assert scores[0] == pytest.approx(scores[2])
    assert all(-1.0 - 1e-5 <= score <= 1.0 + 1e-5 for score in scores)


def test_feature_extraction_of_a_string_is_one_embedding(tiny_server):
    response = embed(tiny_server, {"inputs": "hello world"}, tiny_id(tiny_server))
    assert response.status_code == 200, response.text
    vector = response.json()
    assert len(vector) == 32 and all(isinstance(x, float) for x in vector)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_feature_extraction_of_a_list_is_one_embedding_each(tiny_server):
    response = embed(tiny_server, {"inputs": ["hello", "good dog", "bad cat"]}, tiny_id(tiny_server))
    vectors = response.json()
    assert len(vectors) == 3 and all(len(v) == 32 for v in vectors)


def test_normalize_false_keeps_the_raw_norm(tiny_server):
    raw = embed(tiny_server, {"inputs": "hello world", "normalize": False}, tiny_id(tiny_server)).json()
    unit = embed(tiny_server, {"inputs": "hello world"}, tiny_id(tiny_server)).json()
    assert np.linalg.norm(raw) != pytest.approx(1.0, abs=1e-3)
    assert np.asarray(raw) / np.linalg.norm(raw) == pytest.approx(np.asarray(unit), abs=1e-5)


def test_prompt_name_changes_the_embedding(tiny_server):
    plain = embed(tiny_server, {"inputs": "good dog"}, tiny_id(tiny_server)).json()
    query = embed(tiny_server, {"inputs": "good dog", "prompt_name": "query"}, tiny_id(tiny_server)).json()
    assert not np.allclose(plain, query, atol=1e-4)


def test_unknown_prompt_name_is_a_400_naming_the_field(tiny_server):
    response = embed(tiny_server, {"inputs": "x", "prompt_name": "nope"}, tiny_id(tiny_server))
    assert response.status_code == 400
    assert "prompt_name" in response.json()["error"]
    assert response.json()["field"] == "prompt_name"


def test_too_long_input_needs_truncate(tiny_server):
    long_text = " ".join(["hello world"] * 40)
    refused = embed(tiny_server, {"inputs": long_text}, tiny_id(tiny_server))
    assert refused.status_code == 400
    assert "truncate" in refused.json()["error"]
    left = embed(
        tiny_server,
        {"inputs": "good " * 10 + long_text, "truncate": True, "truncation_direction": "left"},
        tiny_id(tiny_server),
    )
    right = embed(tiny_server, {"inputs": "good " * 10 + long_text, "truncate": True}, tiny_id(tiny_server))
    assert left.status_code == right.status_code == 200
    assert not np.allclose(left.json(), right.json(), atol=1e-4)


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": {"source_sentence": "x", "sentences": []}},
        {"inputs": {"source_sentence": "x"}},
        {"inputs": {"source_sentence": 3, "sentences": ["a"]}},
        {"inputs": {"source_sentence": "x", "sentences": ["a"]}, "parameters": {"top_k": 2}},
    ],
)
def test_invalid_similarity_requests_are_400(tiny_server, body):
    response = httpx.post(tiny_server.url, json=body)
    assert response.status_code == 400
    assert response.json()["error"]


def test_answers_do_not_depend_on_batch_neighbours(tiny_server):
    requests = [
        {"source_sentence": "the cat", "sentences": ["the dog", "a mat"]},
        {"source_sentence": "hello " * 20, "sentences": ["world"]},
        {"source_sentence": "good", "sentences": ["bad", "good movie", "awesome food"]},
    ] * 8
    alone = [similarity(tiny_server, r["source_sentence"], r["sentences"]) for r in requests[:3]]
    with ThreadPoolExecutor(max_workers=16) as pool:
        together = list(
            pool.map(lambda r: similarity(tiny_server, r["source_sentence"], r["sentences"]), requests)
        )
    for index, scores in enumerate(together):
        assert scores == pytest.approx(alone[index % 3], abs=1e-5)


def test_a_batch_is_encoded_longest_first_and_answered_in_order(tiny_model_dir):
    """Chunks of a big batch hold texts of near lengths (as one encode() call orders them), so that short
    texts are not padded to the longest of the batch; answers still come back in request order."""
    pipeline = SentenceTransformersPipeline.load(
        ModelSnapshot(model_id="tiny", path=tiny_model_dir, task="feature-extraction", device="cpu")
    )
    texts = [("word " * (1 + (index * 7) % 23)).strip() for index in range(150)]
    alone = np.stack([pipeline._encode([text], normalize=False)[0] for text in texts])
    chunks = []
    encode = pipeline.model.encode

    def seen(chunk, **options):
        chunks.append(list(chunk))
        return encode(chunk, **options)

    pipeline.model.encode = seen
    together = pipeline._encode(texts, normalize=False)
    assert len(chunks) == 3
    for longer, shorter in zip(chunks, chunks[1:]):
        assert min(map(len, longer)) >= max(map(len, shorter))
    np.testing.assert_allclose(together, alone, atol=1e-5)
