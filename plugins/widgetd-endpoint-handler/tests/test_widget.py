"""The widget page's JSON editor for a custom handler, in a real headless Chromium (see tests/test_widget_page.py)."""

from __future__ import annotations

import json

import pytest

import widgetd_endpoint_handler
from tests.test_widget_page import CHROMIUM, CHROMIUM_FLAGS, _playwright, screenshot, submit_and_wait, widget, widget_page_at
from widgetd.app import ServerSettings
from widgetd.testing.server import LiveServer


@pytest.fixture(scope="module")
def custom_page(repos):
    sync_playwright = _playwright()
    settings = ServerSettings(trust_remote_code=True)
    with LiveServer.for_models([str(repos["custom"])], plugins={"endpoint-handler": widgetd_endpoint_handler}, settings=settings) as server:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            with widget_page_at(browser, server.url, 1200, 900) as page:
                yield page
            browser.close()


def send_json(page, body) -> object:
    card = widget(page, "custom")
    card.locator("textarea.json-editor").fill(json.dumps(body))
    return card


def test_the_json_editor_sends_the_body_and_shows_the_json_answered(custom_page):
    card = send_json(custom_page, {"text": "hi", "times": 2})
    submit_and_wait(card, "pre.json-answer")
    assert json.loads(card.locator(".output pre.json-answer").inner_text()) == {
        "shouted": "HI! HI!", "greeting": "hello from the repo", "lengths": [0, 1],
    }
    screenshot(card, "custom-handler")


def test_an_image_answered_is_shown(custom_page):
    card = send_json(custom_page, {"inputs": "x", "parameters": {"as": "image"}})
    submit_and_wait(card, "img.made")
    card.locator(".output img.made").evaluate("image => image.decode()")
    assert card.locator(".output img.made").evaluate("image => [image.naturalWidth, image.naturalHeight]") == [3, 2]


def test_json_that_does_not_parse_is_refused_on_the_page(custom_page):
    card = widget(custom_page, "custom")
    card.locator("textarea.json-editor").fill("{not json")
    card.locator("button[type=submit]").click()
    card.locator(".output .error").wait_for(timeout=5000)
    assert "not valid JSON" in card.locator(".output .error").inner_text()


def test_a_handler_error_is_shown_with_its_message(custom_page):
    card = send_json(custom_page, {"inputs": "bad"})
    card.locator("button[type=submit]").click()
    card.locator(".output .error").wait_for(timeout=15000)
    assert "400" in card.locator(".output .error").inner_text() and "must not be 'bad'" in card.locator(".output .error").inner_text()
