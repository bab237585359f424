"""document-question-answering: the transformers pipeline on LayoutLM models, on the words and boxes a request
sends, or on those OCR reads where the server has an OCR engine (pytesseract and tesseract)."""

from __future__ import annotations

import shutil
from typing import Any, Sequence

from widgetd import InvalidInput, ModelSnapshot
from widgetd.media import decode_image
from widgetd.tasks.document_question_answering import DocumentQuestionAnsweringAnswer, DocumentQuestionAnsweringInput
from widgetd_transformers.loading import hf_pipeline, in_chunks
from widgetd_transformers.question_answering import shortened

SPECIAL_TOKENS = 3
"""[CLS] question [SEP] words [SEP]."""


def has_ocr() -> bool:
    from transformers.utils import is_pytesseract_available

    return is_pytesseract_available() and shutil.which("tesseract") is not None


class DocumentQuestionAnswering:
    """Extractive answers as word spans: ``start`` and ``end`` index the document's words. The question is cut
    to ``max_question_len`` tokens here: the pipeline no longer reads that option."""

    def __init__(self, pipe: Any, ocr: bool) -> None:
        self.pipe, self.ocr = pipe, ocr
        self.most_tokens = pipe.tokenizer.model_max_length

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> DocumentQuestionAnswering:
        pipe = hf_pipeline("document-question-answering", snapshot)
        if type(pipe.model).__name__.startswith("VisionEncoderDecoder"):
            raise RuntimeError("Donut-style models generate answers with no word span; widgetd-transformers serves LayoutLM models for document-question-answering")
        return cls(pipe, has_ocr())

    def __call__(self, requests: Sequence[DocumentQuestionAnsweringInput]) -> list[list[DocumentQuestionAnsweringAnswer]]:
        return in_chunks(lambda chunk: [self.answer(request) for request in chunk], requests, size=1)

    def answer(self, request: DocumentQuestionAnsweringInput) -> list[DocumentQuestionAnsweringAnswer]:
        options = request.parameters
        if options.word_boxes is None and not self.ocr:
            raise InvalidInput(
                "parameters.word_boxes: this server has no OCR engine (pytesseract and tesseract) to read the document's "
                "words; send them with their boxes", field="parameters.word_boxes",
            )
        question = shortened(self.pipe.tokenizer, request.inputs.question, options.max_question_len)
        kwargs = {name: getattr(options, name) for name in ("doc_stride", "max_seq_len", "lang") if getattr(options, name) is not None}
        kwargs["max_seq_len"] = self.window(question, kwargs.get("max_seq_len"), kwargs.get("doc_stride"))
        if options.word_boxes is not None:
            kwargs["word_boxes"] = [(word, [round(c) for c in box]) for word, box in options.word_boxes]
            if not self.pipe.tokenizer([word for word, _ in options.word_boxes], is_split_into_words=True, add_special_tokens=False)["input_ids"]:
                raise InvalidInput("parameters.word_boxes: none of the words is text the model reads", field="parameters.word_boxes")
        found = self.pipe(
            image=decode_image(request.inputs.image), question=question, top_k=options.top_k,
            max_answer_len=options.max_answer_len, handle_impossible_answer=options.handle_impossible_answer, **kwargs,
        )
        found = found if isinstance(found, list) else [found]
        return [DocumentQuestionAnsweringAnswer(f["answer"], float(f["score"]), int(f["start"]), int(f["end"])) for f in found]

    def window(self, question: str, max_seq_len: int | None, doc_stride: int | None) -> int:
        """The window length, checked to hold the question and some words, and more than the stride."""
        max_seq_len = min(max_seq_len or self.most_tokens, self.most_tokens)
        question_tokens = len(self.pipe.tokenizer(question, add_special_tokens=False)["input_ids"])
        room = max_seq_len - question_tokens - SPECIAL_TOKENS
        if room < 1:
            raise InvalidInput(
                f"parameters.max_seq_len {max_seq_len} leaves no room for the document after the question ({question_tokens} tokens)",
                field="parameters.max_seq_len",
            )
        stride = doc_stride if doc_stride is not None else min(max_seq_len // 2, 256)
        if stride >= room:
            raise InvalidInput(
                f"parameters.doc_stride {stride} must be smaller than the {room} tokens a window holds for the document",
                field="parameters.doc_stride",
            )
        return max_seq_len
