"""huggingface_hub's InferenceClient and AsyncInferenceClient against `widgetd serve`, unchanged.

One `widgetd serve` process serves a tiny model for every task of the three plugins; each client
points at `/models/{id}` and the parsed results are checked, not only the status.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from huggingface_hub import AsyncInferenceClient, InferenceClient
from huggingface_hub.errors import BadRequestError

from widgetd.testing.audio import encode, tone

CONTEXT = "My name is Sarah and I live in London."


def client(server, model: str) -> InferenceClient:
    return InferenceClient(base_url=f"{server.url}/models/{model}")


def wav() -> bytes:
    return encode(tone(1.0, 16000), 16000, "WAV")


def test_question_answering(server):
    answer = client(server, "tiny-qa").question_answering(question="Where does Sarah live?", context=CONTEXT)
    assert CONTEXT[answer.start : answer.end] == answer.answer and 0 <= answer.score <= 1
    answers = client(server, "tiny-qa").question_answering(question="Who?", context=CONTEXT, top_k=2)
    assert isinstance(answers, list) and 1 <= len(answers) <= 2


def test_token_classification(server):
    text = "My name is Sarah and I live in London"
    entities = client(server, "tiny-ner").token_classification(text, aggregation_strategy="simple", ignore_labels=[])
    assert entities and all(text[e.start : e.end] == e.word and e.entity_group for e in entities)


def test_text_classification(server):
    labels = client(server, "tiny-sentiment").text_classification("good movie")
    assert {label.label for label in labels} == {"NEGATIVE", "POSITIVE"}
    assert len(client(server, "tiny-sentiment").text_classification("good", top_k=1)) == 1


def test_zero_shot_classification(server):
    labels = client(server, "tiny-nli").zero_shot_classification("the cat sat", candidate_labels=["cat", "movie"])
    assert sorted(label.label for label in labels) == ["cat", "movie"]


def test_fill_mask(server):
    candidates = client(server, "tiny-mlm").fill_mask("the [MASK] sat.", top_k=3)
    assert len(candidates) == 3 and all("[MASK]" not in c.sequence for c in candidates)


def test_feature_extraction(server):
    tokens = client(server, "tiny-embedder").feature_extraction("the cat")
    assert tokens.shape == (4, 32)  # a transformers model: one vector per token, [CLS] the cat [SEP]
    many = client(server, "tiny-st").feature_extraction(["hello world", "good dog"], normalize=True)
    assert many.shape == (2, 32)


def test_sentence_similarity(server):
    scores = client(server, "tiny-st").sentence_similarity("the cat sat", other_sentences=["the cat sat", "a dog"])
    assert len(scores) == 2 and scores[0] == pytest.approx(1.0, abs=1e-4)


def test_automatic_speech_recognition(server):
    transcript = client(server, "tiny-asr").automatic_speech_recognition(wav())
    assert isinstance(transcript.text, str)


def test_audio_classification(server):
    labels = client(server, "tiny-keywords").audio_classification(encode(tone(1.0, 22050, 2), 22050, "FLAC"), top_k=3)
    assert len(labels) == 3 and labels[0].score >= labels[-1].score and all(0 <= label.score <= 1 for label in labels)


def test_audio_to_audio(server):
    sources = client(server, "convtasnet").audio_to_audio(encode(tone(1.0, 8000), 8000, "FLAC"))
    assert [s.label for s in sources] == ["label_0", "label_1"]
    assert all(s.content_type == "audio/flac" and s.blob[:4] == b"fLaC" for s in sources)


def test_image_classification(server):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(buffer, format="PNG")
    labels = client(server, "tiny-vit").image_classification(buffer.getvalue(), top_k=3)
    assert len(labels) == 3 and all(0 <= label.score <= 1 for label in labels)


def test_zero_shot_image_classification(server):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), (30, 30, 200)).save(buffer, format="JPEG")
    labels = client(server, "tiny-clip").zero_shot_image_classification(buffer.getvalue(), candidate_labels=["a cat", "a blue sky", "a dog"])
    assert sorted(label.label for label in labels) == ["a blue sky", "a cat", "a dog"]
    assert sum(label.score for label in labels) == pytest.approx(1.0, abs=1e-4)


def test_object_detection(server):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (120, 60), (200, 30, 30)).save(buffer, format="PNG")
    found = client(server, "tiny-detector").object_detection(buffer.getvalue(), threshold=0.0)
    assert found and all(0 <= o.box.xmin <= o.box.xmax <= 120 and 0 <= o.box.ymin <= o.box.ymax <= 60 for o in found)


def test_image_segmentation(server):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (90, 70), (200, 30, 30)).save(buffer, format="JPEG")
    for subtask in ("panoptic", "semantic"):
        segments = client(server, "tiny-segmenter").image_segmentation(buffer.getvalue(), subtask=subtask, threshold=0.0)
        assert segments and all(segment.mask.size == (90, 70) for segment in segments)
        assert all((segment.score is None) == (subtask == "semantic") for segment in segments)


def test_image_to_text(server):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (50, 40), (30, 30, 200)).save(buffer, format="PNG")
    caption = client(server, "tiny-captioner").image_to_text(buffer.getvalue())
    assert isinstance(caption.generated_text, str) and caption.generated_text.strip()


def test_visual_question_answering(server):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (50, 40), (30, 30, 200)).save(buffer, format="PNG")
    answers = client(server, "tiny-vilt").visual_question_answering(buffer.getvalue(), "what colour is it ?", top_k=3)
    assert len(answers) == 3 and all(0 <= a.score <= 1 for a in answers) and answers[0].score >= answers[-1].score


def test_document_question_answering(server):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(buffer, format="PNG")
    words = [["invoice", [10, 10, 100, 30]], ["number", [110, 10, 200, 30]], ["1234", [220, 10, 300, 30]], ["total", [10, 50, 100, 70]]]
    answers = client(server, "tiny-layoutlm").document_question_answering(buffer.getvalue(), "what is the invoice number ?", word_boxes=words, top_k=2)
    assert len(answers) == 2
    assert all(a.answer == " ".join(word for word, _ in words[a.start : a.end + 1]) for a in answers)


def test_image_to_image(server):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (13, 7), (30, 30, 200)).save(buffer, format="PNG")
    assert client(server, "tiny-upscaler").image_to_image(buffer.getvalue()).size == (26, 14)
    resized = client(server, "tiny-upscaler").image_to_image(buffer.getvalue(), target_size={"width": 20, "height": 30})
    assert resized.size == (20, 30)


def test_table_question_answering(server):
    table = {"city": ["paris", "london", "berlin"], "population": ["2", "9", "4"]}
    answer = client(server, "tiny-tapas").table_question_answering(table, "how many city ?", truncation=True)
    assert answer.cells == [table[list(table)[column]][row] for row, column in answer.coordinates]
    assert answer.aggregator in ("NONE", "SUM", "AVERAGE", "COUNT") and answer.answer.endswith(", ".join(answer.cells))


def test_summarization_and_translation(server):
    growing = {"min_new_tokens": 2, "max_new_tokens": 5}
    summary = client(server, "tiny-summarizer").summarization("my name is sarah and i live in london", generate_parameters=growing)
    assert summary.summary_text
    translation = client(server, "tiny-translator").translation("the cat sat", generate_parameters=growing)
    assert translation.translation_text


def test_text_generation(server):
    text = client(server, "tiny-gpt2").text_generation("the cat", max_new_tokens=4)
    assert isinstance(text, str) and text


def test_text_generation_streams_tokens_and_details(server):
    tgi = client(server, "tiny-chat")
    whole = tgi.text_generation("the cat sat", max_new_tokens=6, details=True)
    assert whole.details.finish_reason == "length" and whole.details.generated_tokens == len(whole.details.tokens) == 6
    pieces = list(tgi.text_generation("the cat sat", max_new_tokens=6, stream=True))
    assert "the cat sat" + "".join(pieces) == whole.generated_text  # return_full_text: the pipeline's default, true
    events = list(tgi.text_generation("the cat sat", max_new_tokens=6, stream=True, details=True))
    assert [event.token.id for event in events] == [token.id for token in whole.details.tokens]
    assert events[-1].generated_text == whole.generated_text and events[-1].details.finish_reason == "length"
    assert all(event.details is None for event in events[:-1])


def test_chat_completion_streamed_and_not(server):
    messages = [{"role": "user", "content": "Where does Sarah live?"}]
    for chat in (client(server, "tiny-chat"), InferenceClient(base_url=server.url)):
        answer = chat.chat_completion(messages, model="tiny-chat", max_tokens=8, temperature=0)
        assert answer.choices[0].finish_reason == "length" and answer.usage.completion_tokens == 8
        chunks = list(chat.chat_completion(messages, model="tiny-chat", max_tokens=8, temperature=0, stream=True))
        assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == answer.choices[0].message.content
        assert chunks[-1].choices[0].finish_reason == "length"


def test_chat_completion_refusals_are_bad_requests(server):
    with pytest.raises(BadRequestError, match="tool_choice.function.name"):
        client(server, "tiny-chat").chat_completion(
            [{"role": "user", "content": "hi"}], tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
            tool_choice={"type": "function", "function": {"name": "g"}},
        )
    with pytest.raises(BadRequestError, match="chat template"):
        client(server, "tiny-gpt2").chat_completion([{"role": "user", "content": "hi"}])


def test_text_to_speech(server):
    audio = client(server, "tiny-tts").text_to_speech("hello there")
    assert audio[:4] == b"fLaC"


def test_health_check_and_endpoint_info(server):
    endpoint = InferenceClient(model=f"{server.url}/models/tiny-qa", provider="hf-inference")
    assert endpoint.health_check()
    info = endpoint.get_endpoint_info()
    assert info["models"][0]["task"] == "question-answering"


def test_errors_surface_as_bad_request_with_our_message(server):
    with pytest.raises(BadRequestError, match=r"mask token \[MASK\]"):
        client(server, "tiny-mlm").fill_mask("no mask here")
    with pytest.raises(BadRequestError, match="candidate_labels"):
        client(server, "tiny-nli").zero_shot_classification("x", candidate_labels=[])


def test_the_async_client(server):
    async def ask() -> tuple:
        qa = AsyncInferenceClient(model=f"{server.url}/models/tiny-qa", provider="hf-inference")
        st = AsyncInferenceClient(base_url=f"{server.url}/models/tiny-st")
        return await asyncio.gather(
            qa.question_answering(question="Who?", context=CONTEXT),
            st.sentence_similarity("a b", other_sentences=["a b"]),
            qa.health_check(),
        )

    answer, scores, healthy = asyncio.run(ask())
    assert CONTEXT[answer.start : answer.end] == answer.answer
    assert scores[0] == pytest.approx(1.0, abs=1e-4) and healthy


def test_tabular_classification(server):
    """The Python client sends {"table": ...} with every cell as text; one label per row comes back."""
    fish = {"Length": ["23.2", "40.1", "18.5"], "Height": ["11.5", "7.0", "6.1"], "Width": ["4.02", "4.2", "3.1"]}
    assert client(server, "classifier-skops").tabular_classification(table=fish) == ["Bream", "Pike", "Roach"]
    with pytest.raises(BadRequestError, match="Width"):
        client(server, "classifier-skops").tabular_classification(table={"Length": ["23.2"], "Height": ["11.5"]})


def test_tabular_regression_answers_the_body_the_python_client_would_send(server):
    """huggingface_hub 2.4 refuses tabular_regression for its hf-inference provider before sending anything
    (its task table lists tabular-classification only), so the body its tabular_regression builds is sent
    as it is."""
    table = {"Species": ["Bream", "Pike"], "Length": ["23.2", "40.1"], "Height": ["11.5", "7.0"], "Width": ["4.02", "4.2"]}
    weights = httpx.post(f"{server.url}/models/regressor-skops", json={"parameters": {}, "table": table}).json()
    assert len(weights) == 2 and all(isinstance(weight, float) for weight in weights) and weights[0] < weights[1]


def test_text_to_image(server):
    image = client(server, "tiny-sd").text_to_image("a red cat", width=64, height=128, num_inference_steps=2, seed=4, negative_prompt="blue")
    assert image.size == (64, 128)
    again = client(server, "tiny-sd").text_to_image("a red cat", width=64, height=128, num_inference_steps=2, seed=4, negative_prompt="blue")
    assert list(image.getdata()) == list(again.getdata())
    with pytest.raises(BadRequestError, match="scheduler"):
        client(server, "tiny-sd").text_to_image("a red cat", scheduler="NoSuchScheduler")
