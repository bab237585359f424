"""Text-to-image: the size asked for, the same image for the same seed (whatever runs beside it) and another
for another seed, steps within the server's limit, and progress events that count the steps and end with the
image the plain request gets."""

from __future__ import annotations

import base64
from typing import Any, ClassVar

import pytest
from hypothesis import strategies as st

from widgetd.testing.conformance.base import TaskTests
from widgetd.testing.conformance.exchange import Call, Reply, comparable, first_difference
from widgetd.testing.conformance.media import image_answer, opened_image
from widgetd.testing.conformance.rules import expect
from widgetd.testing.conformance.text import EDGE_TEXTS

PROMPTS = ("a photo of a red cat", "an astronaut riding a horse on the moon", "blue square")


def prompt_call(prompt: str, headers: dict[str, str] | None = None, **parameters: Any) -> Call:
    return Call({"inputs": prompt, "parameters": parameters}, headers or {})


class TextToImageTests(TaskTests):
    """Knobs: ``sizes`` your model makes (width, height; the first is used most), ``steps`` per example (few:
    the kit runs many)."""

    task_name = "text-to-image"
    sizes: ClassVar[tuple[tuple[int, int], ...]] = ((64, 64), (128, 64))
    steps: ClassVar[int] = 2

    def call(self, prompt: str = PROMPTS[0], headers: dict[str, str] | None = None, **parameters: Any) -> Call:
        width, height = self.sizes[0]
        return prompt_call(prompt, headers, **{"width": width, "height": height, "num_inference_steps": self.steps, "seed": 1, **parameters})

    @pytest.fixture
    def examples(self) -> list[Call]:
        (width, height), (other_width, other_height) = self.sizes[0], self.sizes[-1]
        return [
            self.call(),
            self.call(PROMPTS[1], seed=7),
            self.call(PROMPTS[2], width=other_width, height=other_height),
            self.call(negative_prompt="blurry, dark", guidance_scale=5.0),
            self.call(headers={"accept": "image/jpeg"}),
            self.call(headers={"accept": "image/webp"}),
            prompt_call(PROMPTS[0], target_size={"width": other_width, "height": other_height}, num_inference_steps=self.steps, seed=2),
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [self.call(prompt) for prompt in PROMPTS]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [
            *(self.call(text) for text in EDGE_TEXTS.values() if text),
            self.call("word " * 500),
            self.call(width=1, height=1),
            self.call(width=self.sizes[0][0] + 1),
            self.call(scheduler="NoSuchScheduler"),
            self.call(guidance_scale=0.0),
            self.call(num_inference_steps=1),
            self.call(seed=2**63 - 1),
            self.call(negative_prompt=""),
        ]

    @pytest.fixture
    def valid_requests(self) -> st.SearchStrategy[Call]:
        prompts = st.one_of(st.sampled_from(PROMPTS), st.text(min_size=1, max_size=40))
        return st.builds(
            lambda prompt, size, seed, guidance: self.call(prompt, width=size[0], height=size[1], seed=seed, guidance_scale=guidance),
            prompts, st.sampled_from(self.sizes), st.integers(0, 2**32), st.one_of(st.none(), st.floats(0.0, 12.0)),
        )

    def check_answer(self, call: Call, answer: Reply) -> None:
        made = image_answer(call, answer)
        parameters = call.parameters
        target = parameters.get("target_size") or {}
        width, height = parameters.get("width", target.get("width")), parameters.get("height", target.get("height"))
        if width and height:
            expect(made.size == (width, height), f"the request asks for {width}x{height}, the image is {made.size[0]}x{made.size[1]}")

    # -- rules -----------------------------------------------------------------------------------

    def test_another_seed_gives_another_image(self, served):
        first, second = (self.answer(served, self.call(seed=seed)) for seed in (1, 2))
        expect(
            first_difference(comparable(first), comparable(second), self.tolerance) is not None,
            f"{served.task.name}: seeds 1 and 2 made the same image: the seed is not the noise's",
        )

    def test_steps_are_bounded_by_the_server(self, served):
        limit = served.server.state.settings.limits.max_inference_steps
        call = self.call(num_inference_steps=limit + 1)
        reply = served.send(call)
        expect(reply.status == 413, f"{served.task.name}: {limit + 1} steps, over the server's --max-inference-steps {limit}, must get a 413, got {reply.status}")
        expect("num_inference_steps" in reply.error, f"the 413 must name num_inference_steps, it said {reply.error!r}")

    def test_progress_events_count_the_steps_and_end_with_the_image(self, served):
        steps = max(3, self.steps)
        plain = self.answer(served, self.call(num_inference_steps=steps))
        streamed = served.send(self.call(num_inference_steps=steps, headers={"accept": "text/event-stream"}))
        expect(streamed.status == 200 and streamed.streamed, f"{served.task.name}: Accept: text/event-stream must get a 200 event stream, got {streamed.describe()}")
        events = streamed.events()
        expect(events and events[-1] == "[DONE]", f"the event stream must end with [DONE], got {events[-1:]}")
        progress = [event for event in events[:-1] if event["type"] == "progress"]
        expect(progress, "no progress event came before the answer")
        expect([event["step"] for event in progress] == list(range(1, len(progress) + 1)), f"progress steps must count 1, 2, 3, ...: {[event['step'] for event in progress]}")
        expect({event["total"] for event in progress} == {steps} and progress[-1]["step"] == steps,
               f"num_inference_steps={steps}: the events must count {steps} steps, they counted {[(event['step'], event['total']) for event in progress]}")
        elapsed = [event["elapsed"] for event in progress]
        expect(elapsed == sorted(elapsed), f"elapsed must never go back: {elapsed}")
        for event in progress:
            if event.get("preview"):
                opened_image(base64.b64decode(event["preview"]))
        result = events[-2]
        expect(result.get("type") == "result", f"the last event before [DONE] must be the result, got {str(result)[:200]}")
        expect(result["content-type"] == "image/png", f"the result's content-type must be image/png, got {result['content-type']!r}")
        image = Reply(200, "image/png", base64.b64decode(result["blob"]))
        difference = first_difference(comparable(plain), comparable(image), self.tolerance)
        expect(difference is None, f"the streamed result must be the image the plain request gets ({difference})")
        expect(events.index(result) == len(events) - 2 and all(event["type"] == "progress" for event in events[:-2]), "progress events, then one result, then [DONE]")
