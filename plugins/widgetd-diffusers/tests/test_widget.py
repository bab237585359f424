"""The text-to-image widget on the tiny Stable Diffusion pipeline, in a real headless Chromium (see
tests/test_widget_page.py): the progress bar and previews while it runs, then the image."""

from __future__ import annotations

import pytest

import widgetd_diffusers
from tests.test_widget_page import CHROMIUM, CHROMIUM_FLAGS, _playwright, screenshot, widget, widget_page_at
from widgetd.testing.server import LiveServer
from widgetd_diffusers.testing import build_pipeline


@pytest.fixture(scope="module")
def painter_page(tmp_path_factory):
    sync_playwright = _playwright()
    folder = build_pipeline(tmp_path_factory.mktemp("widget") / "tiny-sd")
    with LiveServer.for_models([str(folder)], plugins={"diffusers": widgetd_diffusers}) as server:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            with widget_page_at(browser, server.url, 1200, 900) as page:
                yield page
            browser.close()


def test_the_progress_bar_and_previews_show_then_the_image(painter_page):
    card = widget(painter_page, "tiny-sd")
    card.locator("textarea[name=text]").fill("an astronaut riding a horse on the moon")
    card.locator("details.parameters summary").click()
    card.locator("input[name=num_inference_steps]").fill("60")
    card.locator("input[name=width]").fill("128")
    card.locator("input[name=height]").fill("128")
    card.locator("button[type=submit]").click()
    # While it runs: the bar moves and a preview of the latents appears.
    card.locator(".output img.preview:not([hidden])").wait_for(timeout=30000)
    assert 0 < card.locator(".output progress.job").evaluate("bar => bar.value") <= 60
    card.locator(".output img.made").wait_for(timeout=60000)
    assert card.locator(".output img.made").evaluate("image => image.decode().then(() => [image.naturalWidth, image.naturalHeight])") == [128, 128]
    assert "(60 steps)" in card.locator(".output .time").inner_text()
    screenshot(card, "text-to-image-diffusers")
