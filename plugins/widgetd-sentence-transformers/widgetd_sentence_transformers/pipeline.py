"""Answering sentence-similarity and feature-extraction with one SentenceTransformer."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

from widgetd import InvalidInput, ModelSnapshot
from widgetd.cancellation import longest_first
from widgetd.tasks.feature_extraction import FeatureExtractionInput
from widgetd.tasks.sentence_similarity import SentenceSimilarityInput
from widgetd_sentence_transformers.runtimes import load_sentence_transformer

ENCODE_BATCH_SIZE = 64


class SentenceTransformersPipeline:
    """Encodes every text of a batch of requests in one ``encode`` call per option set."""

    tasks = ("sentence-similarity", "feature-extraction")

    def __init__(self, model: Any, runtime: str = "torch") -> None:
        self.model = model
        self.runtime = runtime
        self.token_counter = token_counter(model.tokenizer)

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> SentenceTransformersPipeline:
        return cls(*load_sentence_transformer(snapshot))

    def __call__(self, task: str, requests: Sequence[Any]) -> list[Any]:
        if task == "sentence-similarity":
            return self.similarities(requests)
        if task == "feature-extraction":
            return self.embeddings(requests)
        raise ValueError(f"unsupported task {task!r}")

    def count_tokens(self, texts: Sequence[str]) -> int:
        """The tokens ``texts`` are read as (special tokens included, at most the model's limit each)."""
        limit = self.model.max_seq_length or 10**9
        counter = self.token_counter
        if counter is None:
            return sum(min(len(ids), limit) for ids in self.model.tokenizer(list(texts), add_special_tokens=True)["input_ids"])
        return sum(min(len(encoding.ids), limit) for encoding in counter.encode_batch(list(texts), add_special_tokens=True))

    def similarities(self, requests: Sequence[SentenceSimilarityInput]) -> list[list[float]]:
        texts = list(
            dict.fromkeys(
                text
                for request in requests
                for text in (request.inputs.source_sentence, *request.inputs.sentences)
            )
        )
        vectors = dict(zip(texts, self._encode(texts, normalize=True)))
        return [
            # float16 on CUDA can push a unit vector's dot product just past 1.
            np.clip(
                np.stack([vectors[s] for s in request.inputs.sentences])
                @ vectors[request.inputs.source_sentence],
                -1.0,
                1.0,
            ).tolist()
            for request in requests
        ]

    def embeddings(self, requests: Sequence[FeatureExtractionInput]) -> list[Any]:
        answers: list[Any] = [None] * len(requests)
        groups: dict[tuple, list[tuple[int, FeatureExtractionInput]]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(_options(request), []).append((index, request))
        for options, group in groups.items():
            texts = [text for _, request in group for text in _texts(request)]
            vectors = iter(self._embed(texts, *options))
            for index, request in group:
                if isinstance(request.inputs, str):
                    answers[index] = next(vectors).tolist()
                else:
                    answers[index] = [next(vectors).tolist() for _ in request.inputs]
        return answers

    def _embed(
        self, texts: list[str], normalize: bool, truncate: bool, direction: str, prompt_name: str | None
    ) -> np.ndarray:
        prompt = self._prompt(prompt_name)
        with self._truncation_side(direction):
            if not truncate:
                self._refuse_long(texts, prompt)
            return self._encode(texts, normalize=normalize, prompt=prompt)

    def _prompt(self, prompt_name: str | None) -> str | None:
        if prompt_name is None:
            return None
        prompts = getattr(self.model, "prompts", None) or {}
        if prompt_name not in prompts:
            raise InvalidInput(
                f"prompt_name {prompt_name!r} is not one of this model's prompts: {sorted(prompts)}",
                field="prompt_name",
            )
        return prompts[prompt_name]

    def _refuse_long(self, texts: list[str], prompt: str | None) -> None:
        limit = self.model.max_seq_length
        if not limit:
            return
        prompted = [(prompt or "") + text for text in texts]
        lengths = [len(ids) for ids in self.model.tokenizer(prompted, add_special_tokens=True)["input_ids"]]
        too_long = [(i, n) for i, n in enumerate(lengths) if n > limit]
        if too_long:
            index, length = too_long[0]
            raise InvalidInput(
                f"inputs: text {index} is {length} tokens long, more than this model's limit of "
                f"{limit}; shorten it or pass truncate=true",
                field="inputs",
            )

    @contextmanager
    def _truncation_side(self, direction: str) -> Iterator[None]:
        tokenizer = self.model.tokenizer
        before = tokenizer.truncation_side
        tokenizer.truncation_side = direction
        try:
            yield
        finally:
            tokenizer.truncation_side = before

    def _encode(self, texts: list[str], *, normalize: bool, prompt: str | None = None) -> np.ndarray:
        # A chunk at a time, bounded by its characters: a batch whose requests were all given up
        # (timed out, client gone) stops before the next chunk.
        encoded = longest_first(
            lambda chunk: self.model.encode(
                chunk, prompt=prompt, batch_size=ENCODE_BATCH_SIZE, convert_to_numpy=True, show_progress_bar=False
            ),
            texts,
            weight=len,
            most=ENCODE_BATCH_SIZE,
        )
        vectors = np.array(encoded, dtype=np.float32)
        if normalize:
            # In float32: normalising float16 (CUDA) embeddings in float16 leaves norms 1e-3 off.
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors


def token_counter(tokenizer: Any) -> Any:
    """A copy of a fast tokenizer's Rust core that never pads or truncates, for /v1/embeddings' usage: it
    counts without building Python lists of ids (which took a tenth of the model thread's time under load).
    None for a tokenizer without one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    counter = Tokenizer.from_str(backend.to_str())
    counter.no_padding()
    counter.no_truncation()
    return counter


def _options(request: FeatureExtractionInput) -> tuple:
    return (
        request.normalize is not False,  # sentence embeddings are unit length unless asked otherwise (TEI)
        request.truncate,
        request.truncation_direction,
        request.prompt_name,
    )


def _texts(request: FeatureExtractionInput) -> list[str]:
    return [request.inputs] if isinstance(request.inputs, str) else list(request.inputs)
