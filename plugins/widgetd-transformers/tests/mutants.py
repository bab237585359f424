"""The transformers backend with one defect planted in each: mistakes a plugin author could make, each
of which a client would notice. The conformance kit must find every one of them
(test_kit_finds_planted_defects.py); a defect it misses means the kit needs a new rule."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import msgspec
import numpy as np

from widgetd import hookimpl
from widgetd.tasks._common import ClassificationOutput
from widgetd.tasks.automatic_speech_recognition import AutomaticSpeechRecognitionOutput
from widgetd.tasks.token_classification import TokenClassificationEntity
from widgetd_transformers.backend import BACKEND
from widgetd_transformers.question_answering import MASKED

replace = msgspec.structs.replace


class Mutant:
    """The real backend, but ``requests`` changes what the model is asked, ``answers`` what it answers,
    and ``planted`` changes the loaded pipeline itself."""

    def requests(self, requests: Sequence[Any]) -> list[Any]:
        return list(requests)

    def answers(self, requests: Sequence[Any], answers: list[Any]) -> list[Any]:
        return answers

    def planted(self, pipeline: Any) -> Any:
        return pipeline

    def planted_count(self, count_tokens: Any) -> Any:
        """How the pipeline counts the tokens of texts (usage on /v1/embeddings)."""
        return count_tokens

    def planted_engine(self, engine: Any) -> Any:
        """The generation engine the server streams and batches with; None (the default): the mutant does
        not touch generation, and the server answers text-generation through the mutated ``__call__``."""
        return None

    @hookimpl
    def register_backends(self, register) -> None:
        register(dataclasses.replace(BACKEND, load=self.load))

    def load(self, snapshot) -> Any:
        return MutatedPipeline(self, self.planted(BACKEND.load(snapshot)))


class MutatedPipeline:
    def __init__(self, mutant: Mutant, pipeline: Any) -> None:
        self.mutant, self.pipeline, self.tasks = mutant, pipeline, pipeline.tasks
        engine = getattr(pipeline, "engine", None)
        self.engine = mutant.planted_engine(engine) if engine is not None else None
        if hasattr(pipeline, "count_tokens"):
            self.count_tokens = mutant.planted_count(pipeline.count_tokens)

    def __call__(self, task: str, requests: Sequence[Any]) -> list[Any]:
        return self.mutant.answers(requests, self.pipeline(task, self.mutant.requests(requests)))


def _without_generate_parameter(request: Any, name: str) -> Any:
    generation = request.parameters.generate_parameters
    if generation is None:
        return request
    return replace(request, parameters=replace(request.parameters, generate_parameters=replace(generation, **{name: None})))


class SummaryIgnoresMaxNewTokens(Mutant):
    def requests(self, requests):
        return [_without_generate_parameter(request, "max_new_tokens") for request in requests]


class SummaryIgnoresMaxLength(Mutant):
    def requests(self, requests):
        return [_without_generate_parameter(request, "max_length") for request in requests]


class TextGenerationIgnoresMaxNewTokens(Mutant):
    def requests(self, requests):
        return [replace(request, parameters=replace(request.parameters, max_new_tokens=None)) for request in requests]


class SilentSpeechRecognition(Mutant):
    """Always an empty transcript (say, the wrong output decoded)."""

    def answers(self, requests, answers):
        return [AutomaticSpeechRecognitionOutput("", [] if answer.chunks is not None else None) for answer in answers]


class LabelsNotFromTheModel(Mutant):
    """Labels named by index instead of the model's id2label."""

    def answers(self, requests, answers):
        return [[ClassificationOutput(f"LABEL_{rank}", entry.score) for rank, entry in enumerate(labels)] for labels in answers]


class OneAnswerPerBatch(Mutant):
    """Requests with the same parameters run together, and all get the first one's answer."""

    def answers(self, requests, answers):
        first_with: dict[bytes, Any] = {}
        for request, answer in zip(requests, answers):
            first_with.setdefault(msgspec.json.encode(request.parameters), answer)
        return [first_with[msgspec.json.encode(request.parameters)] for request in requests]


class UnnormalizedQuestionAnsweringScores(Mutant):
    """Span scores from exp(logit) without dividing by the sum: not probabilities."""

    def planted(self, pipeline):
        def unnormalized(allowed, start_logits, end_logits):
            return np.exp(np.where(allowed, start_logits, MASKED)), np.exp(np.where(allowed, end_logits, MASKED))

        pipeline.runner.token_probabilities = unnormalized
        return pipeline


class AddedQuestionAnsweringProbabilities(Mutant):
    """A span scored p(start) + p(end) instead of p(start)·p(end): each score below 1, together far above."""

    def planted(self, pipeline):
        pipeline.runner.span_scores = np.add.outer
        return pipeline


class EntityEndsPastItsWord(Mutant):
    """End offsets one too far (an inclusive end taken as exclusive); the word still sliced from the text."""

    def answers(self, requests, answers):
        return [
            [TokenClassificationEntity(e.entity_group, e.score, request.inputs[e.start : e.end + 1], e.start, e.end + 1) for e in entities]
            for request, entities in zip(requests, answers)
        ]


class ChatWithoutTemplate(Mutant):
    """The messages' texts joined by lines, not rendered by the model's chat template."""

    def planted_engine(self, engine):
        engine._chat_ids = lambda messages, tools=None: engine.tokenizer("\n".join(m["content"] for m in messages))["input_ids"]
        return engine


class PaddingAttended(Mutant):
    """Decoding steps without the attention mask: each row attends to the padding its neighbours cause."""

    def planted_engine(self, engine):
        import torch

        step = engine.step

        def unmasked_step():
            if engine.mask is not None:
                engine.mask = torch.ones_like(engine.mask)
            return step()

        engine.step = unmasked_step
        return engine


class ChatIgnoresMaxTokens(Mutant):
    """Every generation as long as the model's default, whatever max_tokens says."""

    def planted_engine(self, engine):
        admit = engine.admit
        engine.admit = lambda prompt, options: admit(prompt, dataclasses.replace(options, max_new_tokens=None))
        return engine


class BoxesInTheModelsInput(Mutant):
    """Boxes left in the pixels of the model's resized input (its shortest side 32), then clipped to the image."""

    def answers(self, requests, answers):
        from widgetd.media import decode_image

        moved = []
        for request, objects in zip(requests, answers):
            width, height = decode_image(request.inputs).size
            factor = 32 / min(width, height)
            moved.append([
                replace(o, box=replace(o.box, **{side: min(int(getattr(o.box, side) * factor), width if side[0] == "x" else height) for side in ("xmin", "ymin", "xmax", "ymax")}))
                for o in objects
            ])
        return moved


class CandidatesInRequestOrder(Mutant):
    """Zero-shot labels in the order they were sent, beside the scores sorted best first."""

    def answers(self, requests, answers):
        return [
            [ClassificationOutput(label, entry.score) for label, entry in zip(request.parameters.candidate_labels, ranked)]
            for request, ranked in zip(requests, answers)
        ]


class TopKOfTheFirstLabels(Mutant):
    """top_k keeps the first k of the model's labels (by id), then sorts them: not the best k."""

    def requests(self, requests):
        return [replace(request, parameters=replace(request.parameters, top_k=100)) for request in requests]

    def answers(self, requests, answers):
        from widgetd_transformers.testing import VIT_LABELS

        by_id = lambda entry: VIT_LABELS.index(entry.label)  # noqa: E731
        return [
            sorted(sorted(labels, key=by_id)[: request.parameters.top_k or 5], key=lambda entry: -entry.score)
            for request, labels in zip(requests, answers)
        ]


class EmbeddingsCountTexts(Mutant):
    """Usage on /v1/embeddings counting one token a text."""

    def planted_count(self, count_tokens):
        return lambda texts: len(texts)


class CutGenerationSaysStop(Mutant):
    """A generation cut by max_tokens reported as the model's own end (eos_token; chat says stop)."""

    def planted_engine(self, engine):
        token = engine._token

        def mislabelled(row, chosen, logprob, *alternatives):
            made = token(row, chosen, logprob, *alternatives)
            return dataclasses.replace(made, finish="eos_token") if made.finish == "length" else made

        engine._token = mislabelled
        return engine


class AlternativesLeastLikely(Mutant):
    """top_logprobs taken from the wrong end of the distribution (``topk(largest=False)``)."""

    def planted_engine(self, engine):
        from widgetd.generating import Alternative

        def least_likely(row, logprobs):
            if not row.alternatives:
                return ()
            values, ids = logprobs[0].topk(row.alternatives, largest=False)
            return tuple(Alternative(id=i, text=engine.tokenizer.decode([i]), logprob=v) for i, v in zip(ids.tolist(), values.tolist()))

        engine._alternatives = least_likely
        return engine


class StructuredOutputsUnconstrained(Mutant):
    """Structured outputs claimed, but the grammar never reaches the sequence: the model writes what it likes."""

    def planted_engine(self, engine):
        admit = engine.admit
        engine.admit = lambda prompt, options: admit(prompt, dataclasses.replace(options, constraint=None))
        return engine


class ToolParametersIgnored(Mutant):
    """A forced tool call constrained to any JSON list of objects: neither the function's name nor its parameters."""

    def planted_engine(self, engine):
        admit = engine.admit

        def loosely(prompt, options):
            constraint = options.constraint
            if constraint is not None and constraint.field == "tool_choice":
                loose = {"type": "array", "items": {"type": "object"}, "minItems": 1, "maxItems": 1}
                options = dataclasses.replace(options, constraint=dataclasses.replace(constraint, schema=loose))
            return admit(prompt, options)

        engine.admit = loosely
        return engine
