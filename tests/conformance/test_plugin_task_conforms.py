"""A task a plugin registers gets the kit too: requests generated from its Structs, its own rules."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest

from widgetd import Backend, InvalidInput, Task, hookimpl
from widgetd.tasks import Answer, Strict
from widgetd.testing import conformance as kit


class TextReversalParameters(Strict):
    upper: bool = False
    repeat: Annotated[int, msgspec.Meta(ge=1, le=3)] = 1


class TextReversalInput(Strict):
    inputs: str
    parameters: TextReversalParameters = msgspec.field(default_factory=TextReversalParameters)


class TextReversalOutput(Answer):
    reversed_text: str


class Reverser:
    def __call__(self, task, requests):
        answers = []
        for request in requests:
            if "\x00" in request.inputs:
                raise InvalidInput("inputs: NUL characters cannot be reversed", field="inputs")
            text = request.inputs[::-1] * request.parameters.repeat
            answers.append(TextReversalOutput(text.upper() if request.parameters.upper else text))
        return answers


class ReversalPlugin:
    @hookimpl
    def register_tasks(self, register):
        register(Task(name="text-reversal", summary="The text, backwards.", input=TextReversalInput, output=TextReversalOutput))

    @hookimpl
    def register_backends(self, register):
        register(Backend(name="reverser", library="reverser", tasks=("text-reversal",), load=lambda snapshot: Reverser(), max_batch_size=8))


class TestTextReversal(kit.TaskTests):
    task_name = "text-reversal"

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return ReversalPlugin()

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        folder = tmp_path_factory.mktemp("reverser")
        (folder / "README.md").write_text("---\nlibrary_name: reverser\npipeline_tag: text-reversal\n---\n")
        return folder

    @pytest.fixture
    def examples(self):
        return [
            kit.Call({"inputs": "hello"}),
            kit.Call({"inputs": "a longer text, to reverse"}),
            kit.Call({"inputs": "Zoë 東京", "parameters": {"upper": True}}),
            kit.Call({"inputs": "ab", "parameters": {"repeat": 3}}),
        ]

    @pytest.fixture
    def edge_cases(self):
        return [kit.Call({"inputs": ""}), kit.Call({"inputs": "nul\x00"}), kit.Call({"inputs": "x" * 50_000})]

    def check_answer(self, call, answer):
        parameters = call.parameters
        expected = call.inputs[::-1] * parameters.get("repeat", 1)
        kit.expect(
            answer.reversed_text == (expected.upper() if parameters.get("upper") else expected),
            f"{answer.reversed_text!r} is not {call.inputs!r} reversed",
        )
