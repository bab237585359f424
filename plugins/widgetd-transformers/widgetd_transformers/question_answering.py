"""Extractive question answering on AutoModelForQuestionAnswering (transformers >= 5.3 has no QA pipeline).

The context is split into overlapping windows (``max_seq_len`` tokens, ``doc_stride`` overlap);
each window scores every (start, end) token pair of the context as p(start) * p(end), spans longer
than ``max_answer_len`` tokens excluded; the best spans over all windows are mapped back to
character offsets, so that ``answer == context[start:end]``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from widgetd import InvalidInput, ModelSnapshot
from widgetd.tasks.question_answering import QuestionAnsweringAnswer, QuestionAnsweringInput
from widgetd_transformers.loading import tokenizer_and_model


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
        windows = [self._request_windows(request) for request in requests]
        logits = self._logits(windows)
        return [
            self._best_answers(request, request_windows, request_logits)
            for request, request_windows, request_logits in zip(requests, windows, logits)
        ]

    def _request_windows(self, request: QuestionAnsweringInput) -> Any:
        options = request.parameters
        if not request.inputs.context.strip():
            raise InvalidInput("inputs.context is empty: there is nothing to answer from", field="inputs.context")
        question = self._shortened_question(request.inputs.question, options.max_question_len)
        return self._windows(question, request.inputs.context, options.max_seq_len, options.doc_stride)

    def _logits(self, windows: Sequence[Any]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """(start, end) logits of each window, padding removed, grouped by request."""
        import torch

        names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in windows[0]]
        flat = {name: [row for request_windows in windows for row in request_windows[name]] for name in names}
        batch = self.tokenizer.pad(flat, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            output = self.model(**batch)
        starts = output.start_logits.float().cpu().numpy()
        ends = output.end_logits.float().cpu().numpy()
        lengths = [len(row) for row in flat["input_ids"]]
        trimmed = iter(
            (start[:length], end[:length]) if self.pad_on_right else (start[-length:], end[-length:])
            for start, end, length in zip(starts, ends, lengths)
        )
        return [[next(trimmed) for _ in request_windows["input_ids"]] for request_windows in windows]

    def _best_answers(self, request, windows, logits) -> list[QuestionAnsweringAnswer]:
        options, context = request.parameters, request.inputs.context
        candidates: dict[tuple[int, int], float] = {}
        null_score = 0.0
        for window, (start_logits, end_logits) in enumerate(logits):
            found, window_null = self._window_candidates(windows, window, start_logits, end_logits, context, options)
            null_score = max(null_score, window_null)
            for span, score in found:
                candidates[span] = max(score, candidates.get(span, 0.0))
        ranked = sorted(candidates.items(), key=lambda item: -item[1])
        answers = [QuestionAnsweringAnswer(context[s:e], score, s, e) for (s, e), score in ranked]
        if options.handle_impossible_answer and (not answers or null_score > answers[0].score):
            answers.insert(0, QuestionAnsweringAnswer("", null_score, 0, 0))
        if not answers:
            raise InvalidInput(
                "inputs.context holds no span this model can read as an answer", field="inputs.context"
            )
        return answers[: options.top_k]

    def _shortened_question(self, question: str, max_tokens: int) -> str:
        encoded = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
        if len(offsets) <= max_tokens:
            return question
        return question[: offsets[max_tokens - 1][1]]

    def _windows(self, question: str, context: str, max_seq_len: int, doc_stride: int) -> Any:
        max_length = min(max_seq_len, self.tokenizer.model_max_length)
        question_tokens = len(self.tokenizer(question)["input_ids"])
        room = max_length - question_tokens - 2
        if room < 8:
            raise InvalidInput(
                f"parameters.max_seq_len {max_length} leaves no room for the context after the question's "
                f"{question_tokens} tokens",
                field="parameters.max_seq_len",
            )
        # The tokenizer refuses a stride as long as the context's share of a window.
        stride = min(doc_stride, room // 2)
        first, second = (question, context) if self.pad_on_right else (context, question)
        return self.tokenizer(
            first,
            second,
            truncation="only_second" if self.pad_on_right else "only_first",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )

    def _window_candidates(self, windows, window, start_logits, end_logits, context, options):
        context_index = 1 if self.pad_on_right else 0
        sequence_ids = windows.sequence_ids(window)
        in_context = np.array([sid == context_index for sid in sequence_ids])
        offsets = windows["offset_mapping"][window]
        start_p = _softmax(np.where(in_context, start_logits, -1e4))
        end_p = _softmax(np.where(in_context, end_logits, -1e4))
        null_score = float(_softmax(start_logits)[0] * _softmax(end_logits)[0])
        scores = np.triu(np.outer(start_p, end_p)) - np.triu(np.outer(start_p, end_p), options.max_answer_len)
        scores[~in_context, :] = 0
        scores[:, ~in_context] = 0
        found = []
        for flat in np.argsort(-scores, axis=None)[: max(options.top_k * 4, 20)]:
            start_token, end_token = np.unravel_index(flat, scores.shape)
            if scores[start_token, end_token] <= 0:
                break
            start, end = offsets[start_token][0], offsets[end_token][1]
            if options.align_to_words:
                start, end = self._word_bounds(windows, window, start_token, end_token, context_index, start, end)
            if end > start:
                found.append(((int(start), int(end)), float(scores[start_token, end_token])))
        return found, null_score

    @staticmethod
    def _word_bounds(windows, window, start_token, end_token, sequence, start, end):
        words = windows.word_ids(window)
        if words[start_token] is None or words[end_token] is None:
            return start, end
        first = windows.word_to_chars(window, words[start_token], sequence_index=sequence)
        last = windows.word_to_chars(window, words[end_token], sequence_index=sequence)
        return first.start, last.end


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()
