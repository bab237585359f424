"""Extractive question answering on AutoModelForQuestionAnswering (transformers >= 5.3 has no QA pipeline).

The rules are the transformers 4.x question-answering pipeline's, which api-inference-community
served: the context is split into overlapping windows (``max_seq_len`` tokens, ``doc_stride``
overlap); in each window the start and end logits are turned into probabilities over the context's
tokens and [CLS]; a span scores p(start)·p(end), spans longer than ``max_answer_len`` tokens
excluded; the null answer scores p([CLS])², its lowest over the windows. Answers are mapped back to
character offsets, so that ``answer == context[start:end]``. Unlike the pipeline, a span found in
several windows is listed once, with its best score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from widgetd import InvalidInput, ModelSnapshot
from widgetd.tasks.question_answering import QuestionAnsweringAnswer, QuestionAnsweringInput
from widgetd_transformers.loading import in_chunks, tokenizer_and_model

DEFAULT_MAX_SEQ_LEN = 384
DEFAULT_DOC_STRIDE = 128
"""The pipeline's defaults: max_seq_len min(model limit, 384); doc_stride min(max_seq_len // 2, 128)."""
MASKED = -10000.0
"""The logit the pipeline gives tokens that cannot be part of an answer (question, separators, padding)."""


@dataclass
class WindowScores:
    """One window's candidate spans (token start, token end, score) and its null-answer score."""

    spans: list[tuple[int, int, float]]
    null_score: float


class QuestionAnswering:
    def __init__(self, tokenizer: Any, model: Any, device: str) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("question answering needs a fast tokenizer (tokenizer.json) for character offsets")
        self.tokenizer, self.model, self.device = tokenizer, model, device
        self.pad_on_right = tokenizer.padding_side == "right"

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> QuestionAnswering:
        return cls(*tokenizer_and_model(snapshot, "AutoModelForQuestionAnswering"), snapshot.device)

    def __call__(self, requests: Sequence[QuestionAnsweringInput]) -> list[list[QuestionAnsweringAnswer]]:
        """Every window of every request in one forward pass."""
        windows = [self.request_windows(request) for request in requests]
        logits = self._logits(windows)
        return [
            self.best_answers(request, request_windows, request_logits)
            for request, request_windows, request_logits in zip(requests, windows, logits)
        ]

    # -- windows -----------------------------------------------------------------------------

    def request_windows(self, request: QuestionAnsweringInput) -> Any:
        """The request's context in overlapping windows, each holding the question (a tokenizer encoding)."""
        options = request.parameters
        if not request.inputs.context.strip():
            raise InvalidInput("inputs.context is empty: there is nothing to answer from", field="inputs.context")
        max_seq_len = min(options.max_seq_len or DEFAULT_MAX_SEQ_LEN, self.tokenizer.model_max_length)
        doc_stride = options.doc_stride if options.doc_stride is not None else min(max_seq_len // 2, DEFAULT_DOC_STRIDE)
        question = shortened(self.tokenizer, request.inputs.question, options.max_question_len)
        room = max_seq_len - self._length(question) - self.tokenizer.num_special_tokens_to_add(pair=True)
        if room < 1:
            raise InvalidInput(
                f"parameters.max_seq_len {max_seq_len} leaves no room for the context after the question "
                f"({self._length(question)} tokens); raise max_seq_len or shorten the question",
                field="parameters.max_seq_len",
            )
        if doc_stride >= room:
            raise InvalidInput(
                f"parameters.doc_stride {doc_stride} must be smaller than the {room} tokens a window holds for the "
                f"context (max_seq_len {max_seq_len} less the question and separators)",
                field="parameters.doc_stride",
            )
        first, second = (question, request.inputs.context) if self.pad_on_right else (request.inputs.context, question)
        return self.tokenizer(
            first,
            second,
            truncation="only_second" if self.pad_on_right else "only_first",
            max_length=max_seq_len,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )

    def _length(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _logits(self, windows: Sequence[Any]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """(start, end) logits of each window, padding removed, grouped by request; the windows of every
        request run together, a chunk at a time."""
        import torch

        names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in windows[0]]
        rows = [
            {name: request_windows[name][row] for name in names}
            for request_windows in windows
            for row in range(len(request_windows["input_ids"]))
        ]

        def run(chunk: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
            batch = self.tokenizer.pad({name: [row[name] for row in chunk] for name in names}, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                output = self.model(**batch)
            starts, ends = output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()
            return [
                (start[:length], end[:length]) if self.pad_on_right else (start[-length:], end[-length:])
                for start, end, length in zip(starts, ends, (len(row["input_ids"]) for row in chunk))
            ]

        trimmed = iter(in_chunks(run, rows, weight=lambda row: 4 * len(row["input_ids"])))  # ~4 characters a token
        return [[next(trimmed) for _ in request_windows["input_ids"]] for request_windows in windows]

    # -- decoding --------------------------------------------------------------------------------

    def best_answers(self, request: QuestionAnsweringInput, windows: Any, logits) -> list[QuestionAnsweringAnswer]:
        """The request's answers from its windows' logits, best first, at most top_k."""
        options, context = request.parameters, request.inputs.context
        candidates: dict[tuple[int, int], float] = {}
        null_score = 1.0
        wanted = max(options.top_k * 4, 20)  # more than top_k per window: spans found twice merge
        for window, (start_logits, end_logits) in enumerate(logits):
            scored = self.window_scores(self.answer_tokens(windows, window), start_logits, end_logits, options.max_answer_len, wanted)
            null_score = min(null_score, scored.null_score)
            for start_token, end_token, score in scored.spans:
                span = self._characters(windows, window, start_token, end_token, options.align_to_words)
                if span[1] > span[0]:
                    candidates[span] = max(score, candidates.get(span, 0.0))
        answers = [QuestionAnsweringAnswer(context[s:e], score, s, e) for (s, e), score in candidates.items()]
        if options.handle_impossible_answer:
            answers.append(QuestionAnsweringAnswer("", null_score, 0, 0))
        if not answers:
            raise InvalidInput("inputs.context holds no span this model can read as an answer", field="inputs.context")
        return sorted(answers, key=lambda answer: -answer.score)[: options.top_k]

    def answer_tokens(self, windows: Any, window: int) -> np.ndarray:
        """Which tokens of a window may take part in an answer: the context's, and [CLS] (the null answer)."""
        context_index = 1 if self.pad_on_right else 0
        allowed = np.array([sequence == context_index for sequence in windows.sequence_ids(window)])
        allowed |= np.array(windows["input_ids"][window]) == self.tokenizer.cls_token_id
        return allowed

    def window_scores(
        self, allowed: np.ndarray, start_logits: np.ndarray, end_logits: np.ndarray, max_answer_len: int, wanted: int
    ) -> WindowScores:
        """The best spans of one window and its null score (p(start) and p(end) of the first token, [CLS])."""
        start_p, end_p = self.token_probabilities(allowed, start_logits, end_logits)
        null_score = float(start_p[0] * end_p[0])
        start_p[0] = end_p[0] = 0.0
        scores = np.tril(np.triu(self.span_scores(start_p, end_p)), max_answer_len - 1)
        scores[~allowed, :] = 0.0
        scores[:, ~allowed] = 0.0
        spans = []
        for flat in np.argsort(-scores, axis=None, kind="stable")[:wanted]:
            start_token, end_token = np.unravel_index(flat, scores.shape)
            if scores[start_token, end_token] <= 0:
                break
            spans.append((int(start_token), int(end_token), float(scores[start_token, end_token])))
        return WindowScores(spans, null_score)

    @staticmethod
    def span_scores(start_p: np.ndarray, end_p: np.ndarray) -> np.ndarray:
        """The probability of each (start, end) token pair: p(start)·p(end)."""
        return np.outer(start_p, end_p)

    def token_probabilities(self, allowed: np.ndarray, start_logits: np.ndarray, end_logits: np.ndarray):
        """p(start) and p(end) over the tokens an answer may use; the rest get none."""
        return _softmax(np.where(allowed, start_logits, MASKED)), _softmax(np.where(allowed, end_logits, MASKED))

    def _characters(self, windows: Any, window: int, start_token: int, end_token: int, align_to_words: bool) -> tuple[int, int]:
        """A token span as character offsets in the context, widened to whole words if asked."""
        sequence = 1 if self.pad_on_right else 0
        offsets = windows["offset_mapping"][window]
        words = windows.word_ids(window)
        if align_to_words and words[start_token] is not None and words[end_token] is not None:
            first = windows.word_to_chars(window, words[start_token], sequence_index=sequence)
            last = windows.word_to_chars(window, words[end_token], sequence_index=sequence)
            return int(first.start), int(last.end)
        return int(offsets[start_token][0]), int(offsets[end_token][1])


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def shortened(tokenizer: Any, question: str, max_tokens: int) -> str:
    """The question's first ``max_tokens`` tokens (``max_question_len``), cut in its own text."""
    offsets = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= max_tokens:
        return question
    return question[: offsets[max_tokens - 1][1]]
