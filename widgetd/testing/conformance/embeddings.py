"""OpenAI's embeddings (``/v1/embeddings``) for a feature-extraction model: the task's own vectors, the same
numbers in base64, ``dimensions`` as Matryoshka truncation, and usage that counts tokens."""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import pytest

from widgetd.testing.conformance.base import Served, TaskTests
from widgetd.testing.conformance.exchange import Call
from widgetd.testing.conformance.ranked import HOW_TO_UNFLATTEN
from widgetd.testing.conformance.rules import expect

TEXTS = ["A man is eating food.", "The new movie is awesome.", "Zoë lives in 東京."]


def cosine(left: np.ndarray, right: np.ndarray) -> float:
    norms = float(np.linalg.norm(left) * np.linalg.norm(right))
    return float(left @ right) / norms if norms else 1.0


class EmbeddingsTests(TaskTests):
    """The OpenAI embeddings route over the task's model (a mixin of FeatureExtractionTests)."""

    def embeddings_route(self, served: Served) -> str:
        return f"/models/{served.model.model_id}/v1/embeddings"

    def embed(self, served: Served, **body: Any) -> dict:
        response = served.client.post(self.embeddings_route(served), json=body, timeout=self.timeout)
        expect(response.status_code == 200, f"/v1/embeddings: a valid request must get a 200, got {response.status_code}: {response.text[:300]}\n  request: {body}")
        answer = response.json()
        expect(
            [item.get("index") for item in answer.get("data", [])] == list(range(len(body["input"]))),
            f"/v1/embeddings: one embedding per input, indexed in order, got {[item.get('index') for item in answer.get('data', [])]}",
        )
        return answer

    def task_vectors(self, served: Served, texts: list[str]) -> list[np.ndarray]:
        call = Call({"inputs": texts})
        vectors = self.answer(served, call).json()
        return [np.asarray(vector, dtype=np.float64) for vector in vectors]

    def one_vector_a_text(self, served: Served) -> list[np.ndarray]:
        vectors = self.task_vectors(served, TEXTS)
        if any(vector.ndim != 1 for vector in vectors):
            pytest.skip("the model gives a vector per token: /v1/embeddings pools them, which has no reference to hold it to")
        return vectors

    def test_the_model_tells_texts_apart(self, served):
        vectors = [vector if vector.ndim == 1 else vector.mean(axis=0) for vector in self.task_vectors(served, TEXTS)]
        nearest = min(cosine(vectors[i], vectors[j]) for i in range(len(vectors)) for j in range(i + 1, len(vectors)))
        expect(
            nearest < 1 - 10 * self.tolerance,
            f"{served.task.name}: the model is too flat to test: the texts {TEXTS} embed to nearly the same vector "
            f"(cosine {nearest:.6f} at least), so a plugin that mixes up texts would pass. {HOW_TO_UNFLATTEN}",
        )

    def test_openai_embeddings_are_the_tasks_vectors(self, served):
        vectors = self.one_vector_a_text(served)
        answer = self.embed(served, input=TEXTS)
        for index, (item, vector) in enumerate(zip(answer["data"], vectors)):
            given = np.asarray(item["embedding"], dtype=np.float64)
            expect(
                given.shape == vector.shape and np.allclose(given, vector, rtol=self.tolerance, atol=self.tolerance),
                f"/v1/embeddings: input {index} ({TEXTS[index]!r}) must embed as the feature-extraction route embeds it; "
                f"they differ by up to {float(np.max(np.abs(given - vector))) if given.shape == vector.shape else given.shape}",
            )
        base64_answer = self.embed(served, input=TEXTS, encoding_format="base64")
        for index, (item, floats) in enumerate(zip(base64_answer["data"], answer["data"])):
            decoded = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
            expect(
                np.array_equal(decoded, np.asarray(floats["embedding"], dtype="<f4")),
                f"/v1/embeddings: encoding_format=base64 must be the same numbers as little-endian float32 (input {index})",
            )

    def test_dimensions_keep_the_first_numbers(self, served):
        vector = self.one_vector_a_text(served)[0]
        width = vector.shape[0]
        for dimensions in sorted({1, max(1, width // 2), width}):
            given = np.asarray(self.embed(served, input=TEXTS[:1], dimensions=dimensions)["data"][0]["embedding"], dtype=np.float64)
            kept = vector[:dimensions]
            unit = math.isclose(float(np.linalg.norm(vector)), 1.0, abs_tol=1e-3)
            expected = kept / np.linalg.norm(kept) if unit and np.linalg.norm(kept) else kept
            expect(
                given.shape == (dimensions,) and np.allclose(given, expected, rtol=self.tolerance, atol=self.tolerance),
                f"/v1/embeddings: dimensions={dimensions} keeps the vector's first {dimensions} numbers"
                f"{', rescaled to length 1 as the whole vector is' if unit else ''}; got {given[:4].tolist()}..., expected {expected[:4].tolist()}...",
            )
        too_many = served.client.post(self.embeddings_route(served), json={"input": TEXTS[:1], "dimensions": width + 1}, timeout=self.timeout)
        expect(
            too_many.status_code == 400 and "dimensions" in too_many.text,
            f"/v1/embeddings: dimensions={width + 1} is more than the model's {width}: a 400 naming dimensions, got {too_many.status_code} {too_many.text[:200]}",
        )

    def test_usage_counts_tokens(self, served):
        def usage(texts: list[str]) -> dict:
            counted = self.embed(served, input=texts)["usage"]
            expect(counted["total_tokens"] == counted["prompt_tokens"], f"/v1/embeddings: total_tokens must equal prompt_tokens (nothing is generated): {counted}")
            return counted

        short, long = ["food"], ["the cat sat on the mat and the dog ate the food"]
        each = [usage([text])["prompt_tokens"] for text in TEXTS]
        expect(all(count > 0 for count in each), f"/v1/embeddings: usage must count the tokens each text is read as, got {each} for {TEXTS} (a pipeline says how with count_tokens)")
        together = usage(TEXTS)["prompt_tokens"]
        expect(together == sum(each), f"/v1/embeddings: the texts together are {together} tokens, each alone {each}: usage counts every text's tokens")
        expect(
            usage(long)["prompt_tokens"] > usage(short)["prompt_tokens"],
            "/v1/embeddings: a text of 12 words must count more tokens than a text of one: usage counts tokens, not texts",
        )
