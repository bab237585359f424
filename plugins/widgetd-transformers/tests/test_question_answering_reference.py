"""Question answering decodes window logits by the transformers 4.x question-answering pipeline's rules.

The reference is the pipeline's own decoding: ``select_starts_ends`` (softmax over the context and
[CLS], the null score, span scores), which transformers 5 keeps in its document-question-answering
pipeline, and the 4.x ``QuestionAnsweringPipeline.postprocess`` around it (windows in turn, the
lowest null score, word alignment, sorting). Both decode the same windows and the same logits.
The one deliberate difference: widgetd lists a span once, with its best score, where the pipeline
lists it once per window (spec/README.md).
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from transformers.pipelines.document_question_answering import select_starts_ends

from widgetd import ModelSnapshot
from widgetd.tasks.question_answering import QuestionAnsweringInput
from widgetd_transformers.question_answering import QuestionAnswering

CONTEXT = " ".join(
    ["my name is sarah and i live in paris. the cat sat on the mat."] * 6
    + ["where does sarah work? she works in london at the good food market."]
    + ["the dog was great and the movie was terrible."] * 6
)


@pytest.fixture(scope="module")
def qa(model_dirs) -> QuestionAnswering:
    return QuestionAnswering.load(ModelSnapshot("tiny-qa", model_dirs["tiny-qa"], "question-answering", "cpu"))


def request(**parameters) -> QuestionAnsweringInput:
    body = {"inputs": {"question": "where does she work?", "context": CONTEXT}, "parameters": parameters}
    return msgspec.convert(body, QuestionAnsweringInput)


def pipeline_answers(qa: QuestionAnswering, windows, logits, parameters) -> list[dict]:
    """transformers 4.x QuestionAnsweringPipeline.postprocess (fast tokenizer, question first)."""
    min_null_score = 1000000
    answers = []
    for window, (start, end) in enumerate(logits):
        encoding = windows.encodings[window]
        p_mask = np.array([[sequence != 1 for sequence in encoding.sequence_ids]], dtype=int)
        p_mask[0, np.nonzero(np.array(encoding.ids) == qa.tokenizer.cls_token_id)[0]] = 0  # [CLS] stays
        starts, ends, scores, min_null_score = select_starts_ends(
            start[None], end[None], p_mask, np.array([encoding.attention_mask]), min_null_score,
            parameters.top_k, parameters.handle_impossible_answer, parameters.max_answer_len,
        )
        for s, e, score in zip(starts, ends, scores):
            first, last = character_indices(encoding, s, e, parameters.align_to_words)
            answers.append({"score": float(score), "start": first, "end": last, "answer": CONTEXT[first:last]})
    if parameters.handle_impossible_answer:
        answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
    return sorted(answers, key=lambda answer: answer["score"], reverse=True)


def character_indices(encoding, s: int, e: int, align_to_words: bool) -> tuple[int, int]:
    """The 4.x pipeline's ``get_indices``."""
    if align_to_words:
        try:
            start_word, end_word = encoding.token_to_word(s), encoding.token_to_word(e)
            return encoding.word_to_chars(start_word, sequence_index=1)[0], encoding.word_to_chars(end_word, sequence_index=1)[1]
        except Exception:
            pass
    return encoding.offsets[s][0], encoding.offsets[e][1]


def listed_once(answers: list[dict], top_k: int) -> list[tuple[str, int, int, float]]:
    """The pipeline's answers as widgetd lists them: each span once (its best score), none of score 0."""
    seen, kept = set(), []
    for answer in answers:
        span = (answer["start"], answer["end"])
        is_null = span == (0, 0) and answer["answer"] == ""
        if span in seen or (not is_null and (answer["score"] <= 0 or span[1] <= span[0])):
            continue
        seen.add(span)
        kept.append((answer["answer"], answer["start"], answer["end"], answer["score"]))
    return kept[:top_k]


def decoded_both_ways(qa, logits_for, **parameters):
    asked = request(**parameters)
    windows = qa.request_windows(asked)
    logits = logits_for(windows)
    ours = [(a.answer, a.start, a.end, a.score) for a in qa.best_answers(asked, windows, logits)]
    everything = msgspec.structs.replace(asked.parameters, top_k=10_000)
    reference = listed_once(pipeline_answers(qa, windows, logits, everything), asked.parameters.top_k)
    return ours, reference


def assert_same(ours, reference):
    assert [answer[:3] for answer in ours] == [answer[:3] for answer in reference]
    assert np.allclose([answer[3] for answer in ours], [answer[3] for answer in reference], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"top_k": 5},
        {"top_k": 3, "handle_impossible_answer": True},
        {"top_k": 4, "max_answer_len": 3, "align_to_words": False},
        {"top_k": 2, "max_seq_len": 48, "doc_stride": 16, "handle_impossible_answer": True},
        {"max_seq_len": 32, "doc_stride": 0},
    ],
)
def test_the_models_own_logits_decode_as_the_pipeline_decodes_them(qa, parameters):
    ours, reference = decoded_both_ways(qa, lambda windows: qa._logits([windows])[0], **parameters)
    assert len(qa.request_windows(request(**parameters))["input_ids"]) > 1, "the context must span several windows"
    assert_same(ours, reference)


def test_an_answer_in_one_window_beats_the_null_answer_of_the_others(qa):
    """A model that marks every window but one answerless: the null score is the lowest over the
    windows (the answer's window), so the answer wins, as in the pipeline."""
    target = CONTEXT.index("london")

    noise = np.random.default_rng(0)

    def planted(windows):
        logits, planted_once = [], False
        for window in range(len(windows["input_ids"])):
            offsets, sequences = windows["offset_mapping"][window], windows.sequence_ids(window)
            start, end = (noise.normal(0, 0.5, len(offsets)).astype(np.float32) for _ in range(2))
            holds = [i for i, (s, e) in enumerate(offsets) if sequences[i] == 1 and s == target]
            if holds and not planted_once:
                start[holds[0]] = end[holds[0]] = 9.0
                start[0] = end[0] = 2.0
                planted_once = True
            else:
                start[0] = end[0] = 9.0
            logits.append((start, end))
        return logits

    ours, reference = decoded_both_ways(qa, planted, top_k=8, handle_impossible_answer=True, max_seq_len=48, doc_stride=16)
    assert_same(ours, reference)
    assert ours[0][0] == "london", "the null score is the lowest over the windows, not the highest"


def test_span_scores_share_their_probability_with_the_null_answer(qa):
    """Scores come from a softmax over the context and [CLS]: with a confident [CLS] every span scores low."""

    noise = np.random.default_rng(1)

    def confident_null(windows):
        logits = []
        for ids in windows["input_ids"]:
            start, end = (noise.normal(0, 0.5, len(ids)) for _ in range(2))
            start[0] = end[0] = 12.0
            logits.append((start, end))
        return logits

    ours, reference = decoded_both_ways(qa, confident_null, top_k=3, max_seq_len=64, doc_stride=16)
    assert_same(ours, reference)
    assert all(score < 1e-6 for *_, score in ours)


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"max_seq_len": 32, "doc_stride": 25}, "parameters.doc_stride"),
        ({"max_seq_len": 8}, "parameters.max_seq_len"),
    ],
)
def test_windows_that_cannot_hold_the_stride_are_a_400_naming_it(server, parameters, field):
    import httpx

    body = {"inputs": {"question": "where does she work?", "context": CONTEXT}, "parameters": parameters}
    response = httpx.post(f"{server.url}/models/tiny-qa", json=body)
    assert response.status_code == 400 and response.json()["field"] == field, response.text
