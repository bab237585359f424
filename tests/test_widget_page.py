"""The widget page in a real headless Chromium: fill each widget, submit, read the rendered output.

Needs Debian's chromium and the playwright package (installed by .ci/run and nox). Without
them the tests skip, unless WIDGETD_REQUIRE_BROWSER is set (as in CI), where they fail.
A screenshot of every widget is saved under test-artifacts/.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.toy_plugin import ToyPlugin, make_toy_model
from widgetd.testing.audio import encode, tone
from widgetd.testing.server import LiveServer

ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
ZERO_SHOT_EXAMPLES = """widget:
- text: I love my dog
  candidate_labels: dog, cat, fish
  example_title: Pets
"""
TABLE_EXAMPLE = """widget:
- text: How many repositories are there?
  table:
    Repository: [Transformers, Datasets, Tokenizers]
    Stars: [36542, 4512, 3934]
"""
TABULAR_EXAMPLE = """widget:
- structuredData:
    length: [3.5, 12.0]
    width: [1.0, 4.5]
    colour: [red, blue]
"""
MODELS = {
    "toy-qa": {"pipeline_tag": "question-answering"},
    "toy-tokens": {"pipeline_tag": "token-classification"},
    "toy-similarity": {"pipeline_tag": "sentence-similarity"},
    "toy-zero-shot": {"pipeline_tag": "zero-shot-classification", "widget": ZERO_SHOT_EXAMPLES},
    "toy-separation": {"pipeline_tag": "audio-to-audio"},
    "toy-images": {"pipeline_tag": "image-classification"},
    "toy-sounds": {"pipeline_tag": "audio-classification"},
    "toy-zero-shot-images": {"pipeline_tag": "zero-shot-image-classification"},
    "toy-detector": {"pipeline_tag": "object-detection"},
    "toy-segmenter": {"pipeline_tag": "image-segmentation"},
    "toy-captioner": {"pipeline_tag": "image-to-text"},
    "toy-vqa": {"pipeline_tag": "visual-question-answering"},
    "toy-documents": {"pipeline_tag": "document-question-answering"},
    "toy-zero-shot-sounds": {"pipeline_tag": "zero-shot-audio-classification"},
    "toy-depth": {"pipeline_tag": "depth-estimation"},
    "toy-upscaler": {"pipeline_tag": "image-to-image"},
    "toy-tables": {"pipeline_tag": "table-question-answering", "widget": TABLE_EXAMPLE},
    "toy-speech": {"pipeline_tag": "text-to-speech"},
    "toy-tabular": {"pipeline_tag": "tabular-classification", "widget": TABULAR_EXAMPLE},
    "toy-tabular-regression": {"pipeline_tag": "tabular-regression"},
    "toy-painter": {"pipeline_tag": "text-to-image"},
}


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or CHROMIUM is None:
        if os.environ.get("WIDGETD_REQUIRE_BROWSER"):
            pytest.fail("WIDGETD_REQUIRE_BROWSER is set but chromium or playwright is missing")
        pytest.skip("needs Debian's chromium and the playwright package")
    return sync_playwright


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("widget-models")
    folders = [str(make_toy_model(root / name, **card)) for name, card in MODELS.items()]
    with LiveServer.for_models(folders, plugins={"toy": ToyPlugin()}) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _playwright()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def widget_page_at(browser, url: str, width: int = 1400, height: int = 1000):
    """The widget page of the server at ``url``, its widgets drawn; fails if the page raised a JavaScript error."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("section.widget")
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser, page_server):
    with widget_page_at(browser, page_server.url) as page:
        yield page


def widget(page, model_id: str):
    return page.locator(f'section[data-model="{model_id}"]')


def submit_and_wait(card, selector: str):
    card.locator("button[type=submit]").click()
    card.locator(f".output {selector}").first.wait_for(timeout=15000)


def screenshot(card, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    card.screenshot(path=str(ARTIFACTS / f"widget-{name}.png"))


def test_browsers_get_the_page_and_api_clients_get_json(page_server):
    html = httpx.get(page_server.url, headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert html.headers["content-type"].startswith("text/html") and "widgets.js" in html.text
    assert httpx.get(page_server.url).json()["ok"] == "ok"
    assert httpx.get(page_server.url, headers={"accept": "application/json"}).json()["ok"] == "ok"


def test_every_served_model_has_a_widget(page):
    assert sorted(page.locator("section.widget").evaluate_all("(cards) => cards.map((c) => c.dataset.model)")) == sorted(MODELS)


def test_question_answering_highlights_the_answer_in_the_context(page):
    card = widget(page, "toy-qa")
    card.locator("input[name=question]").fill("London?")
    card.locator("textarea[name=context]").fill("My name is Sarah and I live in London")
    submit_and_wait(card, ".answer-text")
    assert card.locator(".answer-text").inner_text() == "London"
    assert card.locator(".output mark").first.inner_text().startswith("London")
    assert "Computed in" in card.locator(".output .time").inner_text()
    screenshot(card, "question-answering")


def test_token_classification_highlights_entity_spans(page):
    card = widget(page, "toy-tokens")
    card.locator("textarea[name=text]").fill("My name is Sarah and I live in London")
    submit_and_wait(card, "mark")
    marks = card.locator(".output mark").all_inner_texts()
    assert any(m.startswith("Sarah") and "PER" in m for m in marks)
    screenshot(card, "token-classification")


def test_sentence_similarity_ranks_sentences(page):
    card = widget(page, "toy-similarity")
    card.locator("input[name=source_sentence]").fill("the cat sat")
    card.locator("textarea[name=sentences]").fill("a dog ran\nthe cat sat\nthe cat")
    submit_and_wait(card, ".bar-row")
    labels = card.locator(".output .bar-row .label").all_inner_texts()
    assert labels == ["the cat sat", "the cat", "a dog ran"]
    screenshot(card, "sentence-similarity")


def test_zero_shot_is_prefilled_from_the_card_examples(page):
    card = widget(page, "toy-zero-shot")
    assert card.locator("textarea[name=text]").input_value() == "I love my dog"
    submit_and_wait(card, ".bar-row")
    assert card.locator(".output .bar-row .label").first.inner_text() == "dog"
    screenshot(card, "zero-shot-classification")


def test_audio_to_audio_plays_each_separated_source(page, tmp_path):
    card = widget(page, "toy-separation")
    recording = tmp_path / "mixture.ogg"
    recording.write_bytes(encode(tone(1.0, 22050, 2), 22050, "OGG"))
    card.locator("input[type=file]").set_input_files(str(recording))
    submit_and_wait(card, ".source audio")
    assert card.locator(".output .source audio").count() == 2
    assert card.locator(".output .source a[download]").first.get_attribute("download") == "label_0.flac"
    screenshot(card, "audio-to-audio")


def test_audio_classification_ranks_the_labels(page, tmp_path):
    card = widget(page, "toy-sounds")
    clip = tmp_path / "long.flac"
    clip.write_bytes(encode(tone(8.0, 16000), 16000, "FLAC"))
    card.locator("input[type=file]").set_input_files(str(clip))
    submit_and_wait(card, ".bar-row")
    assert card.locator(".output .bar-row .label").all_inner_texts()[0] in {"long", "quiet", "loud"}
    assert card.locator(".output .bar-row").count() == 3
    screenshot(card, "audio-classification")


def test_zero_shot_image_classification_scores_the_labels_given(page, tmp_path):
    from PIL import Image

    card = widget(page, "toy-zero-shot-images")
    picture = tmp_path / "blue.png"
    Image.new("RGB", (40, 30), (10, 10, 220)).save(picture)
    card.locator("input[type=file]").set_input_files(str(picture))
    card.locator("input[name=candidate_labels]").fill("a red car, a blue sky")
    submit_and_wait(card, ".bar-row")
    assert card.locator(".output .bar-row .label").all_inner_texts() == ["a blue sky", "a red car"]
    assert card.locator(".output img").count() == 1
    screenshot(card, "zero-shot-image-classification")


def test_object_detection_draws_the_boxes_over_the_image(page, tmp_path):
    from widgetd.testing.images import render_image

    card = widget(page, "toy-detector")
    picture = tmp_path / "square.png"
    picture.write_bytes(render_image(200, 120))
    card.locator("input[type=file]").set_input_files(str(picture))
    submit_and_wait(card, ".detections .box")
    assert card.locator(".output .detections .box").count() == 2
    assert "square" in card.locator(".output .box-label").first.inner_text()
    screenshot(card, "object-detection")


def test_image_segmentation_overlays_the_masks_in_colours_with_a_legend(page, tmp_path):
    from widgetd.testing.images import render_image

    card = widget(page, "toy-segmenter")
    picture = tmp_path / "square.png"
    picture.write_bytes(render_image(200, 120))
    card.locator("input[type=file]").set_input_files(str(picture))
    submit_and_wait(card, ".segments[data-painted=true]")
    assert card.locator(".output .legend .label").all_inner_texts() == ["square", "background"]
    # The square's middle is painted in the first colour, the corner in the second.
    painted = card.locator(".output canvas.overlay").evaluate(
        "c => [[75, 45], [2, 2]].map(([x, y]) => Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data))"
    )
    for pixel, colour in zip(painted, ([225, 29, 72, 150], [37, 99, 235, 150])):
        assert all(abs(a - b) <= 2 for a, b in zip(pixel, colour)), painted  # premultiplied alpha rounds
    screenshot(card, "image-segmentation")


def test_image_to_text_shows_the_caption_under_the_image(page, tmp_path):
    from widgetd.testing.images import render_image

    card = widget(page, "toy-captioner")
    picture = tmp_path / "blue.png"
    picture.write_bytes(render_image(120, 60, colour=(20, 20, 200)))
    card.locator("input[type=file]").set_input_files(str(picture))
    submit_and_wait(card, "figure.captioned figcaption")
    assert card.locator(".output figcaption").inner_text() == "a mostly blue picture wider than tall with a square in it"
    assert card.locator(".output figure img").count() == 1


def test_visual_question_answering_ranks_the_answers(page, tmp_path):
    from widgetd.testing.images import render_image

    card = widget(page, "toy-vqa")
    picture = tmp_path / "red.png"
    picture.write_bytes(render_image(60, 40, colour=(220, 20, 20)))
    card.locator("input[type=file]").set_input_files(str(picture))
    card.locator("input[name=question]").fill("Is it red?")
    submit_and_wait(card, ".bar-row")
    assert card.locator(".output .bar-row .label").all_inner_texts() == ["yes"]


def test_document_question_answering_boxes_the_answer_on_the_page(page, tmp_path):
    import json

    from PIL import Image, ImageDraw

    card = widget(page, "toy-documents")
    page_image = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(page_image).text((20, 20), "Total: $99.50", fill="black")
    picture = tmp_path / "invoice.png"
    page_image.save(picture)
    card.locator("input[type=file]").set_input_files(str(picture))
    card.locator("input[name=question]").fill("the total")
    card.locator("textarea[name=word_boxes]").fill(json.dumps([["Total:", [60, 100, 250, 160]], ["$99.50", [260, 100, 480, 160]]]))
    submit_and_wait(card, ".answer-box")
    assert card.locator(".output .answer-text").inner_text() == "Total:"
    assert card.locator(".output .answer-box").get_attribute("style").startswith("left:6%;top:10%;width:19%;height:6%")
    screenshot(card, "document-question-answering")


def test_zero_shot_audio_classification_scores_the_labels_given(page, tmp_path):
    from widgetd.testing.audio import encode, tone

    card = widget(page, "toy-zero-shot-sounds")
    clip = tmp_path / "clip.wav"
    clip.write_bytes(encode(tone(1.0, 16000), 16000, "WAV"))
    card.locator("input[type=file]").set_input_files(str(clip))
    card.locator("input[name=candidate_labels]").fill("a long label here, short")
    submit_and_wait(card, ".bar-row")
    assert sorted(card.locator(".output .bar-row .label").all_inner_texts()) == ["a long label here", "short"]


def test_depth_estimation_shows_the_depth_beside_the_image(page, tmp_path):
    from widgetd.testing.images import render_image

    card = widget(page, "toy-depth")
    picture = tmp_path / "square.png"
    picture.write_bytes(render_image(90, 60))
    card.locator("input[type=file]").set_input_files(str(picture))
    submit_and_wait(card, "img.depth")
    card.locator(".output img.depth").evaluate("image => image.decode()")
    assert card.locator(".output img.depth").evaluate("image => [image.naturalWidth, image.naturalHeight]") == [90, 60]


def test_image_to_image_shows_the_image_made(page, tmp_path):
    from widgetd.testing.images import render_image

    card = widget(page, "toy-upscaler")
    picture = tmp_path / "small.png"
    picture.write_bytes(render_image(30, 20))
    card.locator("input[type=file]").set_input_files(str(picture))
    submit_and_wait(card, "img.made")
    card.locator(".output img.made").evaluate("image => image.decode()")
    assert card.locator(".output img.made").evaluate("image => [image.naturalWidth, image.naturalHeight]") == [60, 40]


def test_table_question_answering_highlights_the_answer_cells(page):
    card = widget(page, "toy-tables")
    # The card's example fills the question and the table.
    assert card.locator("input[name=question]").input_value() == "How many repositories are there?"
    assert card.locator("textarea[name=table]").input_value().splitlines()[0] == "Repository, Stars"
    card.locator("textarea[name=table]").fill("City\tCountry\nParis\tFrance\nBerlin\tGermany")
    card.locator("input[name=question]").fill("Where is Berlin?")
    submit_and_wait(card, "table.answered")
    assert card.locator(".output table.answered th").all_inner_texts() == ["City", "Country"]
    assert card.locator(".output td.hit").all_inner_texts() == ["Berlin"]
    assert card.locator(".output .answer-text").inner_text() == "Berlin"
    screenshot(card, "table-question-answering")


def test_text_to_image_follows_the_steps_then_shows_the_image(page):
    card = widget(page, "toy-painter")
    card.locator("textarea[name=text]").fill("a red square on a blue sky")
    steps = card.locator("input[name=num_inference_steps]")
    if not steps.is_visible():
        card.locator("details.parameters summary").click()
    steps.fill("6")
    submit_and_wait(card, "img.made")
    assert card.locator(".output img.made").evaluate("image => [image.naturalWidth, image.naturalHeight]") == [64, 64]
    assert "(6 steps)" in card.locator(".output .time").inner_text()
    screenshot(card, "text-to-image")


def test_tabular_classification_shows_each_rows_prediction_beside_it(page):
    card = widget(page, "toy-tabular")
    # The card's structuredData fills the table; a table pasted from a spreadsheet (tabs) replaces it.
    assert card.locator("textarea[name=table]").input_value().splitlines() == ["length, width, colour", "3.5, 1.0, red", "12.0, 4.5, blue"]
    card.locator("textarea[name=table]").fill("colour\tlength\twidth\nred\t2\t1\nblue\t5\t3\ngreen\t1\t1")
    submit_and_wait(card, "table.answered")
    assert card.locator(".output table.answered th").all_inner_texts() == ["colour", "length", "width", "prediction"]
    assert card.locator(".output td.prediction").all_inner_texts() == ["small", "big", "small"]
    screenshot(card, "tabular-classification")


def test_tabular_regression_shows_the_numbers_and_names_a_missing_column(page):
    card = widget(page, "toy-tabular-regression")
    card.locator("textarea[name=table]").fill("length, width, colour\n2, 1.5, blue")
    submit_and_wait(card, "table.answered")
    assert card.locator(".output td.prediction").all_inner_texts() == ["3"]
    card.locator("textarea[name=table]").fill("length, colour\n2, blue")
    card.locator("button[type=submit]").click()
    card.locator(".output .error").first.wait_for(timeout=15000)
    assert "width" in card.locator(".output .error").inner_text()
    screenshot(card, "tabular-regression")


def test_image_classification_shows_the_image_and_its_labels(page, tmp_path):
    from PIL import Image

    card = widget(page, "toy-images")
    picture = tmp_path / "green.png"
    Image.new("RGB", (40, 30), (10, 200, 10)).save(picture)
    card.locator("input[type=file]").set_input_files(str(picture))
    submit_and_wait(card, ".bar-row")
    assert card.locator(".output .bar-row .label").first.inner_text() == "green"
    assert card.locator(".output img").count() == 1
    screenshot(card, "image-classification")


def test_parameters_panel_sends_changed_parameters(page):
    card = widget(page, "toy-images")
    assert card.locator("details.parameters input[name=top_k]").input_value() == "5"
    card = widget(page, "toy-qa")
    card.locator("details.parameters summary").click()
    card.locator("details.parameters input[name=top_k]").fill("0")
    card.locator("input[name=question]").fill("who")
    card.locator("textarea[name=context]").fill("nobody")
    submit_and_wait(card, ".error")
    assert "400" in card.locator(".output .error").inner_text()
    assert "top_k" in card.locator(".output .error").inner_text()
    screenshot(card, "error")


def test_text_to_speech_plays_generated_speech(page):
    card = widget(page, "toy-speech")
    card.locator("textarea[name=text]").fill("hello there")
    submit_and_wait(card, ".source audio")
    assert card.locator(".output a[download]").get_attribute("download") == "speech.flac"
    screenshot(card, "text-to-speech")


def test_a_model_with_several_tasks_can_switch_widgets(page):
    card = widget(page, "toy-similarity")
    card.locator("select[name=task]").select_option("feature-extraction")
    card.locator("textarea[name=text]").fill("hello")
    submit_and_wait(card, ".vector")
    assert "4 dimensions" in card.locator(".output .vector").inner_text()


@pytest.fixture(scope="module")
def chat_page(browser, tmp_path_factory):
    transformers_testing = pytest.importorskip("widgetd_transformers.testing")
    import widgetd_transformers

    root = tmp_path_factory.mktemp("chat-model")
    folder = transformers_testing.save_chat_llama(root / "tiny-chat", transformers_testing.save_byte_level_bpe(root / "bpe"))
    with LiveServer.for_models([str(folder)], plugins={"transformers": widgetd_transformers}) as server:
        server.wait_ready()
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(server.url)
        page.wait_for_selector("section.widget form.chat")
        yield server, page
        page.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def test_chat_streams_the_answer_and_keeps_the_history(chat_page):
    server, page = chat_page
    card = widget(page, "tiny-chat")
    card.locator("details.parameters summary").click()
    card.locator("input[name=max_tokens]").fill("6")
    card.locator("textarea[name=message]").fill("Where does Sarah live?")
    card.locator("button[type=submit]").click()
    card.locator('.message.assistant[data-finish="length"]').wait_for(timeout=15000)
    first = card.locator(".message.assistant .content").first.inner_text()
    expected = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Where does Sarah live?"}], "max_tokens": 6, "temperature": 0},
    ).json()["choices"][0]["message"]["content"]
    assert first == expected
    card.locator("textarea[name=message]").fill("And then?")
    card.locator("button[type=submit]").click()
    card.locator('.message.assistant[data-finish="length"]').nth(1).wait_for(timeout=15000)
    assert card.locator(".message").count() == 4
    screenshot(card, "chat")


def test_the_stop_button_ends_a_stream(chat_page):
    server, page = chat_page
    card = widget(page, "tiny-chat")
    card.locator("button[name=clear]").click()
    card.locator("input[name=max_tokens]").fill("4000")
    card.locator("textarea[name=message]").fill("Tell me everything.")
    card.locator("button[type=submit]").click()
    card.locator(".message.assistant.streaming").wait_for(timeout=15000)
    card.locator("button[name=stop]").click()
    card.locator('.message.assistant[data-finish="stopped"]').wait_for(timeout=15000)
    assert card.locator("button[type=submit]").is_enabled()
