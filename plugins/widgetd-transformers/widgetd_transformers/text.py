"""Text tasks: token and text classification, zero-shot, fill-mask and feature extraction."""

from __future__ import annotations

from typing import Any, Sequence

from widgetd import InvalidInput, ModelSnapshot
from widgetd.errors import PayloadTooLarge
from widgetd.tasks._common import ClassificationOutput
from widgetd.tasks.fill_mask import FillMaskCandidate
from widgetd.tasks.token_classification import TokenClassificationEntity
from widgetd_transformers.loading import grouped, hf_pipeline, in_chunks, token_limit, tokenizer_and_model


def _texts(requests: Sequence[Any], indexes: list[int]) -> list[str]:
    return [requests[index].inputs for index in indexes]


class TokenClassification:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> TokenClassification:
        return cls(hf_pipeline("token-classification", snapshot))

    def __call__(self, requests: Sequence[Any]) -> list[list[TokenClassificationEntity]]:
        answers: list[Any] = [None] * len(requests)
        for options, indexes in grouped(requests, _token_options).items():
            strategy, ignore_labels, stride = options
            kwargs: dict[str, Any] = {"aggregation_strategy": strategy}
            if ignore_labels is not None:
                kwargs["ignore_labels"] = list(ignore_labels)
            if stride is not None:
                if strategy == "none":
                    raise InvalidInput("parameters.stride needs an aggregation_strategy other than none", field="parameters.stride")
                kwargs["stride"] = stride
            texts = _texts(requests, indexes)
            found_in = in_chunks(lambda chunk: self.pipe(chunk, batch_size=len(chunk), **kwargs), texts, weight=len)
            for index, text, found in zip(indexes, texts, found_in):
                answers[index] = [_entity(text, entity) for entity in found if entity.get("start") is not None]
        return answers


def _token_options(request: Any) -> tuple:
    ignore = request.parameters.ignore_labels
    return (request.parameters.aggregation_strategy, tuple(ignore) if ignore is not None else None, request.parameters.stride)


def _entity(text: str, entity: dict) -> TokenClassificationEntity:
    start, end = int(entity["start"]), int(entity["end"])
    # The pipeline's "word" is decoded from tokens (lower-cased, "##"-joined); the span is the truth.
    found = TokenClassificationEntity(entity.get("entity_group") or entity["entity"], float(entity["score"]), text[start:end], start, end)
    if "entity_group" not in entity:  # one token, unaggregated: the pipeline's own fields too
        found.entity, found.index = entity["entity"], int(entity["index"])
    return found


class TextClassification:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> TextClassification:
        return cls(hf_pipeline("text-classification", snapshot))

    def __call__(self, requests: Sequence[Any]) -> list[list[ClassificationOutput]]:
        answers: list[Any] = [None] * len(requests)
        for (top_k, function), indexes in grouped(
            requests, lambda r: (r.parameters.top_k, r.parameters.function_to_apply)
        ).items():
            # A text longer than the model reads is classified on its beginning.
            kwargs: dict[str, Any] = {"top_k": top_k, "truncation": True}
            if function is not None:
                kwargs["function_to_apply"] = function
            texts = _texts(requests, indexes)
            for index, labels in zip(indexes, in_chunks(lambda chunk: self.pipe(chunk, batch_size=len(chunk), **kwargs), texts, weight=len)):
                answers[index] = _ranked(labels)
        return answers


def _ranked(labels: Any) -> list[ClassificationOutput]:
    labels = labels if isinstance(labels, list) else [labels]
    ranked = sorted(labels, key=lambda entry: -entry["score"])
    return [ClassificationOutput(entry["label"], float(entry["score"])) for entry in ranked]


class ZeroShotClassification:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> ZeroShotClassification:
        return cls(hf_pipeline("zero-shot-classification", snapshot))

    def __call__(self, requests: Sequence[Any]) -> list[list[ClassificationOutput]]:
        for request in requests:
            if not request.inputs.strip():
                raise InvalidInput("inputs is empty: there is no text to classify", field="inputs")
        answers: list[Any] = [None] * len(requests)
        for (labels, template, multi_label), indexes in grouped(
            requests,
            lambda r: (tuple(r.parameters.candidate_labels), r.parameters.hypothesis_template, r.parameters.multi_label),
        ).items():
            texts = _texts(requests, indexes)

            def classify(chunk: list[str]) -> list[dict]:
                results = self.pipe(chunk, candidate_labels=list(labels), hypothesis_template=template, multi_label=multi_label)
                return results if isinstance(results, list) else [results]

            for index, result in zip(indexes, in_chunks(classify, texts, weight=lambda text: len(text) * len(labels))):
                answers[index] = [
                    ClassificationOutput(label, float(score)) for label, score in zip(result["labels"], result["scores"])
                ]
        return answers


class FillMask:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.mask = pipe.tokenizer.mask_token
        self.limit = token_limit(pipe.tokenizer, pipe.model)
        self.vocabulary_size = int(pipe.model.config.vocab_size)

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> FillMask:
        return cls(hf_pipeline("fill-mask", snapshot))

    def __call__(self, requests: Sequence[Any]) -> list[list[FillMaskCandidate]]:
        for request in requests:
            count = request.inputs.count(self.mask)
            if count != 1:
                raise InvalidInput(
                    f"inputs must contain this model's mask token {self.mask} exactly once (found {count})",
                    field="inputs",
                )
            length = len(self.pipe.tokenizer(request.inputs)["input_ids"])
            if length > self.limit:
                raise InvalidInput(
                    f"inputs is {length} tokens long, more than this model's limit of {self.limit}", field="inputs"
                )
            self._check_targets(request.parameters.targets or ())
        answers: list[Any] = [None] * len(requests)
        for (top_k, targets), indexes in grouped(
            requests, lambda r: (r.parameters.top_k, tuple(r.parameters.targets or ()))
        ).items():
            kwargs: dict[str, Any] = {"top_k": min(top_k, len(targets) or self.vocabulary_size)}
            if targets:
                kwargs["targets"] = list(targets)
            texts = _texts(requests, indexes)

            def fill(chunk: list[str]) -> list[list[dict]]:
                results = self.pipe(chunk, batch_size=len(chunk), **kwargs)
                return [results] if len(chunk) == 1 else results  # one text: the pipeline answers it unlisted

            for index, candidates in zip(indexes, in_chunks(fill, texts, weight=len)):
                answers[index] = [
                    FillMaskCandidate(c["sequence"], float(c["score"]), int(c["token"]), c["token_str"])
                    for c in candidates
                ]
        return answers

    def _check_targets(self, targets: Sequence[str]) -> None:
        """Each target must be one token of the vocabulary: the pipeline would silently answer the first
        token of a longer one, a word the client did not ask for."""
        tokenizer = self.pipe.tokenizer
        for target in targets:
            ids = tokenizer(target, add_special_tokens=False)["input_ids"]
            if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
                read_as = tokenizer.convert_ids_to_tokens(ids)
                raise InvalidInput(
                    f"parameters.targets: {target!r} is not one token of this model's vocabulary (it reads as {read_as})",
                    field="parameters.targets",
                )


class FeatureExtraction:
    """One vector per token (the model's last hidden states), as the transformers pipeline and the Hub
    API answered for transformers models: ``[tokens][hidden]`` for a text, a list of those for a list."""

    BYTES_A_NUMBER = 20
    """A float as JSON writes it, with its comma."""

    def __init__(self, tokenizer: Any, model: Any, device: str, max_answer_bytes: int = 64 * 1024 * 1024) -> None:
        self.tokenizer, self.model, self.device = tokenizer, model, device
        self.limit = token_limit(tokenizer, model)
        self.max_answer_bytes = max_answer_bytes

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> FeatureExtraction:
        return cls(*tokenizer_and_model(snapshot, "AutoModel"), snapshot.device, snapshot.limits.max_response_bytes)

    def __call__(self, requests: Sequence[Any]) -> list[Any]:
        for request in requests:
            if request.prompt_name is not None:
                raise InvalidInput("prompt_name: this model defines no prompts", field="prompt_name")
        answers: list[Any] = [None] * len(requests)
        for (normalize, truncate, direction), indexes in grouped(
            requests, lambda r: (bool(r.normalize), r.truncate, r.truncation_direction)
        ).items():
            texts = [t for i in indexes for t in ([requests[i].inputs] if isinstance(requests[i].inputs, str) else requests[i].inputs)]
            self._refuse_answers_too_large(requests, indexes)
            embedded = iter(in_chunks(lambda chunk: self._embed(chunk, normalize, truncate, direction), texts, weight=len))
            for index in indexes:
                inputs = requests[index].inputs
                answers[index] = next(embedded) if isinstance(inputs, str) else [next(embedded) for _ in inputs]
        return answers

    def _refuse_answers_too_large(self, requests: Sequence[Any], indexes: list[int]) -> None:
        """A vector per token is large: refuse, before any work, a request whose answer this server would not send."""
        for index in indexes:
            inputs = requests[index].inputs
            texts = [inputs] if isinstance(inputs, str) else inputs
            tokens = sum(min(len(ids), self.limit) for ids in self.tokenizer(texts)["input_ids"])
            size = tokens * self.model.config.hidden_size * self.BYTES_A_NUMBER
            if size > self.max_answer_bytes:
                raise PayloadTooLarge(
                    f"inputs: {tokens} tokens make an answer of about {size} bytes (a vector per token), more than the "
                    f"{self.max_answer_bytes} this server sends; send fewer or shorter texts",
                    field="inputs",
                )

    def _embed(self, texts: list[str], normalize: bool, truncate: bool, direction: str) -> list[list[list[float]]]:
        import torch

        if not truncate:
            for position, ids in enumerate(self.tokenizer(texts)["input_ids"]):
                if len(ids) > self.limit:
                    raise InvalidInput(
                        f"inputs: text {position} is {len(ids)} tokens long, more than this model's limit of "
                        f"{self.limit}; shorten it or pass truncate=true",
                        field="inputs",
                    )
        self.tokenizer.truncation_side = direction
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.limit, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state.float()
        if normalize:
            hidden = torch.nn.functional.normalize(hidden, dim=-1)
        # Padding is dropped, whichever side the tokenizer pads.
        return [states[mask.bool()].cpu().tolist() for states, mask in zip(hidden, batch["attention_mask"])]
