"""Every answer is checked against its task's output type before it is encoded."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.toy_plugin import ANSWERERS
from widgetd.answers import checked_answer
from widgetd.decoding import convert_request
from widgetd.errors import InvalidAnswer
from widgetd.media import Audio, Picture
from widgetd.tasks import BUILTIN_TASKS
from widgetd.tasks._common import ClassificationOutput
from widgetd.tasks.audio_to_audio import SeparatedSource
from widgetd.tasks.question_answering import QuestionAnsweringAnswer
from widgetd.testing.audio import encode, tone
from widgetd.testing.images import render_image

TASKS = {task.name: task for task in BUILTIN_TASKS}
REQUESTS = {
    "question-answering": {"inputs": {"question": "where", "context": "here and there"}},
    "sentence-similarity": {"inputs": {"source_sentence": "a", "sentences": ["a", "b"]}},
    "feature-extraction": {"inputs": ["one", "two"]},
    "zero-shot-classification": {"inputs": "a text", "parameters": {"candidate_labels": ["text", "image"]}},
    "fill-mask": {"inputs": "a [MASK] here"},
    "automatic-speech-recognition": {"inputs": encode(tone(0.2, 8000), 8000, "WAV"), "parameters": {"return_timestamps": True}},
    "audio-to-audio": {"inputs": encode(tone(0.2, 8000), 8000, "WAV")},
    "image-classification": {"inputs": render_image(8, 8)},
    "audio-classification": {"inputs": encode(tone(0.2, 8000), 8000, "WAV")},
    "zero-shot-image-classification": {"inputs": render_image(8, 8), "parameters": {"candidate_labels": ["red", "green"]}},
    "object-detection": {"inputs": render_image(16, 16)},
    "image-segmentation": {"inputs": render_image(16, 16), "parameters": {"threshold": 0.5}},
    "visual-question-answering": {"inputs": {"image": render_image(16, 16), "question": "is it red?"}},
    "document-question-answering": {"inputs": {"image": render_image(16, 16), "question": "total?"}, "parameters": {"word_boxes": [["total", [0, 0, 5, 5]], ["9", [6, 0, 9, 5]]]}},
    "zero-shot-audio-classification": {"inputs": encode(tone(0.2, 8000), 8000, "WAV"), "parameters": {"candidate_labels": ["dog", "music"]}},
    "depth-estimation": {"inputs": render_image(16, 16)},
    "image-to-image": {"inputs": render_image(16, 16)},
    "image-to-text": {"inputs": render_image(16, 16), "parameters": {"max_new_tokens": 3}},
    "table-question-answering": {"inputs": {"query": "how many cities", "table": {"city": ["Paris", "Berlin"]}}},
    "tabular-classification": {"table": {"length": ["1", "12"], "width": [1, 3], "colour": ["red", "blue"]}},
    "tabular-regression": {"inputs": {"data": {"length": [1.5], "width": [2], "colour": ["red"]}}},
    "conversational": {"inputs": {"past_user_inputs": ["hi"], "generated_responses": ["hello"], "text": "how are you"}},
    "text-to-image": {"inputs": "a red square", "parameters": {"width": 16, "height": 8}},
}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_valid_answer_of_every_task_passes_unchanged(name):
    task = TASKS[name]
    request = convert_request(task, REQUESTS.get(name, {"inputs": "Hello Berlin, a good day"}))
    answer = ANSWERERS[name](request)
    checked = checked_answer(task, "toy", answer)
    if isinstance(answer, Audio):
        assert checked.sample_rate == answer.sample_rate and np.array_equal(checked.samples, answer.samples)
    elif name == "audio-to-audio":
        assert [s.label for s in checked] == [s.label for s in answer]
    elif isinstance(answer, Picture):
        assert checked is answer
    else:
        assert checked == answer


@pytest.mark.parametrize(
    ("task", "answer", "field", "problem"),
    [
        ("text-classification", ["not a list of labels"], "answer[0]", "Expected `object`, got `str`"),
        ("question-answering", [QuestionAnsweringAnswer("a", "very sure", 0, 1)], "answer[0].score", "Expected `float`, got `str`"),
        ("question-answering", QuestionAnsweringAnswer("a", 0.5, 0, 1), "answer", "Expected `array`, got `object`"),
        ("sentence-similarity", [0.5, None], "answer[1]", "Expected `float`, got `null`"),
        ("feature-extraction", [[0.1], "x"], "answer[1]", "Expected"),
        ("text-generation", {"text": "no"}, "answer", "missing required field `generated_text`"),
        ("text-to-speech", Audio(np.array([0.1, np.nan], dtype=np.float32), 16000), "answer.samples", "finite"),
        ("text-to-speech", Audio(np.zeros(3, dtype=np.float32), 0), "answer.sample_rate", "Expected `int` >= 1"),
        ("audio-to-audio", [SeparatedSource("a", "not audio")], "answer[0].audio", "Expected `object`, got `str`"),
        ("image-classification", [ClassificationOutput("cat", object())], "answer", "is not data the contract knows"),
        ("image-to-image", Picture(np.zeros((4, 4, 3), dtype=np.float32)), "answer", "uint8"),
        ("image-to-image", Picture(np.zeros((0, 4), dtype=np.uint8)), "answer", "shaped"),
    ],
)
def test_an_answer_that_breaks_its_contract_names_backend_task_and_field(task, answer, field, problem):
    with pytest.raises(InvalidAnswer) as caught:
        checked_answer(TASKS[task], "backend 'mylib'", answer)
    error = caught.value
    assert (error.answered_by, error.task, error.field) == ("backend 'mylib'", task, field)
    assert problem in error.message and "backend 'mylib'" in error.message


def test_numpy_numbers_are_plain_numbers_on_the_wire():
    checked = checked_answer(TASKS["text-classification"], "mylib", [ClassificationOutput("cat", np.float32(0.5))])
    assert checked == [ClassificationOutput("cat", 0.5)] and type(checked[0].score) is float


def test_a_picture_with_alpha_is_encoded_in_every_format():
    from PIL import Image

    from widgetd.media import IMAGE_FORMATS, encode_image

    picture = checked_answer(TASKS["image-to-image"], "mylib", Picture(np.full((3, 5, 4), 200, dtype=np.uint8)))
    for image_format in IMAGE_FORMATS:
        assert Image.open(io.BytesIO(encode_image(picture, image_format))).size == (5, 3)
