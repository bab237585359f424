"""A generated visual answer's score is its probability as transformers itself computes it
(``compute_transition_scores``), for each answer generated alone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from widgetd import ModelSnapshot
from widgetd_transformers.testing import save_blip_vqa
from widgetd_transformers.vision import VisualQuestionAnswering


@pytest.fixture(scope="module")
def answerer(tmp_path_factory):
    folder = save_blip_vqa(tmp_path_factory.mktemp("blip") / "tiny-blip-vqa")
    return VisualQuestionAnswering.load(ModelSnapshot("tiny-blip-vqa", folder, "visual-question-answering", "cpu"))


def test_a_generated_answer_is_scored_by_its_probability(answerer):
    # Answers of different lengths in one batch: the tokens after a row's end must not count.
    rng = np.random.default_rng(0)
    questions = ["what colour is it ?", "how many ?", "where is the cat ?", "is it a dog ?", "yes", "my name is sarah"] * 2
    pairs = [(Image.fromarray(rng.integers(0, 255, (30 + i, 40, 3), dtype=np.uint8)), q) for i, q in enumerate(questions)]
    batched = answerer.generated_by_length(pairs)
    assert len({len(text.split()) for text, _ in batched}) > 1
    for pair, (text, score) in zip(pairs, batched):
        generated = answerer.model.generate(**answerer.batch([pair]), output_scores=True, return_dict_in_generate=True)
        transitions = answerer.model.compute_transition_scores(generated.sequences, generated.scores, normalize_logits=True)
        assert text == answerer.processor.tokenizer.decode(generated.sequences[0], skip_special_tokens=True).strip()
        assert score == pytest.approx(float(transitions.sum().exp()), rel=1e-3)
