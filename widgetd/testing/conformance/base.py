"""The checks every task shares, run through a real widgetd server that serves the plugin's model."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable

import httpx
import msgspec
import pytest
from hypothesis import strategies as st

from widgetd.errors import RuntimeNotInstalled
from widgetd.models import ServedModel
from widgetd.tasks import Task
from widgetd.testing.conformance.exchange import Call, Reply, comparable, first_difference, send
from widgetd.testing.conformance.labels import ModelLabels, missing_labels_message
from widgetd.testing.conformance.rules import ContractViolation, expect
from widgetd.testing.conformance.tools import McpTests
from widgetd.testing.server import LiveServer
from widgetd.testing.strategies import invalid_requests_for, requests_for

CLIENT_ERRORS = range(400, 500)


def structs_requests(task: Task) -> st.SearchStrategy[Call]:
    """Requests generated from the task's Structs, media as base64 ``inputs``."""
    media = task.raw_body in ("audio", "image")
    return requests_for(task).map(lambda body: Call(body, carries_media=media))


def plugin_name(plugin: object) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__name__


KIT_PACKAGE = "widgetd.testing"


def is_the_kits(klass: type) -> bool:
    return klass is object or klass.__module__.startswith(KIT_PACKAGE)


def yours_first(cls: type) -> None:
    """What a test class's own bases define (fixtures, knobs, rules) wins over the kit's defaults, whatever
    the order of the bases: ``class TestX(kit.XTests, MyFixtures)`` uses MyFixtures' ``model_labels`` just as
    ``class TestX(MyFixtures, kit.XTests)`` does. Among your own classes, Python's order decides."""
    yours: dict[str, Any] = {}
    for klass in cls.__mro__[1:]:
        if not is_the_kits(klass):
            for name, value in vars(klass).items():
                if not name.startswith("__"):
                    yours.setdefault(name, value)
    for name, value in yours.items():
        owner = next(klass for klass in cls.__mro__ if name in vars(klass))
        if is_the_kits(owner):
            setattr(cls, name, value)


def server_for(model: Any, plugin: object, settings: Any, **options: Any) -> LiveServer:
    """A server for the plugin's model; the class's checks skip, saying what to install, when its
    ``widgetd_runtime`` needs a library that is not installed (a plugin's optional extra)."""
    try:
        return LiveServer.for_models([str(model)], plugins={plugin_name(plugin): plugin}, settings=settings, **options)
    except RuntimeNotInstalled as missing:
        pytest.skip(f"{missing} (the class's widgetd_runtime is {settings.runtime!r})")


@dataclass
class Served:
    """The plugin's model behind a live server, answering one task."""

    server: LiveServer
    task: Task
    model: ServedModel
    client: httpx.Client
    timeout: float
    labels: ModelLabels | None = None
    """The labels the model may answer with (the ``model_labels`` fixture); None: not known."""

    @property
    def route(self) -> str:
        return f"/models/{self.model.model_id}/pipeline/{self.task.name}"

    def send(self, call: Call) -> Reply:
        return send(self.client, self.route, call, self.timeout)

    def batch_counts(self) -> tuple[float, float]:
        """(batches run, requests in them) for this model, from /metrics."""
        text = self.client.get("/metrics").text
        label = re.escape(f'model="{self.model.model_id}"')
        total = re.search(rf"^widgetd_batch_size_sum\{{{label}\}} (\S+)$", text, re.M)
        count = re.search(rf"^widgetd_batch_size_count\{{{label}\}} (\S+)$", text, re.M)
        return (float(count.group(1)) if count else 0.0, float(total.group(1)) if total else 0.0)

    @property
    def max_batch_size(self) -> int:
        return self.model.batcher.max_batch_size if self.model.batcher else 1


class TaskTests(McpTests):
    """Checks for one task; a mixin per task sets ``task_name``, its examples and its rules.

    For a task your plugin registers, subclass this directly, set ``task_name`` and supply
    an ``examples`` fixture; requests are then generated from the task's Structs.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        yours_first(cls)

    task_name: ClassVar[str]
    tolerance: ClassVar[float] = 1e-3
    """How far two answers to the same request may differ (absolute and relative)."""
    max_examples: ClassVar[int] = 20
    """Generated requests per property."""
    timeout: ClassVar[float] = 120.0

    # -- what a task mixin (or you, for your own task) provides ---------------------------------

    @pytest.fixture
    def examples(self) -> list[Call]:
        """Valid requests that must all get a 200; the first one uses default parameters."""
        pytest.fail(
            f"supply an `examples` fixture on {type(self).__name__}: a list of "
            "widgetd.testing.conformance.Call, valid requests for your task",
            pytrace=False,
        )

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        """Requests at the edges (empty, huge, odd unicode, broken media): a 200 or a 4xx, never a 500."""
        return []

    @pytest.fixture
    def valid_requests(self, served) -> st.SearchStrategy[Call]:
        """Generated valid requests: by default, anything the task's Structs accept."""
        return structs_requests(served.task)

    @pytest.fixture
    def varied_inputs(self, examples) -> list[Call]:
        """Requests with the same parameters and different inputs, which must each be answered as if
        alone when they run in one batch; by default the examples that share the first one's parameters."""
        first = examples[0]
        same = [call for call in examples if call.parameters == first.parameters and call.headers == first.headers]
        return list({repr(call.inputs): call for call in same}.values())

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _check_labels_against(cls, served, model_labels) -> None:
        served.labels = ModelLabels.given(model_labels)

    def check_answer(self, call: Call, answer: Any) -> None:
        """Task rules for one 200 answer (decoded under the task's output type); raise ContractViolation."""

    def answer_labels(self, call: Call, answer: Any) -> Iterable[str]:
        """The model labels an answer names, checked against ``model_labels`` (classification tasks)."""
        return ()

    def allowed_labels(self, labels: frozenset[str]) -> frozenset[str]:
        """The labels an answer may name, given the model's."""
        return labels

    # -- the kit's fixtures ----------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def served(
        cls, request, widgetd_plugin, widgetd_model, widgetd_server_settings, widgetd_device
    ) -> Served:
        task_name = request.cls.task_name
        server = server_for(widgetd_model, widgetd_plugin, widgetd_server_settings, device=widgetd_device, task=task_name)
        with server, httpx.Client(base_url=server.url) as client:
            model = server.state.models[0]
            yield Served(server, server.state.registry.task(task_name), model, client, cls.timeout)

    # -- helpers ---------------------------------------------------------------------------------

    def verify(self, served: Served, call: Call, reply: Reply) -> None:
        """A 200 decodes under the task's output type and follows the task's rules."""
        answer = self.decode(served.task, call, reply)
        try:
            self.check_answer(call, answer)
            self._check_labels(served, call, answer)
        except ContractViolation as violation:
            raise ContractViolation(
                f"{served.task.name}: {violation}\n  request: {call.describe()}\n  reply: {reply.describe()}"
            ) from None

    def _check_labels(self, served: Served, call: Call, answer: Any) -> None:
        if served.labels is None:
            return
        allowed = self.allowed_labels(served.labels.labels)
        for label in self.answer_labels(call, answer):
            expect(
                label in allowed,
                f"label {label!r} is not one of the model's labels {sorted(served.labels.labels)} (model_labels: {served.labels.source})",
            )

    def decode(self, task: Task, call: Call, reply: Reply) -> Any:
        if task.response_media in ("audio", "image"):
            if not reply.content_type.startswith(f"{task.response_media}/"):
                raise ContractViolation(
                    f"{task.name}: the answer must be {task.response_media}, got content-type {reply.content_type!r}\n"
                    f"  request: {call.describe()}"
                )
            return reply
        try:
            return msgspec.json.decode(reply.content, type=task.wire_output)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise ContractViolation(
                f"{task.name}: the answer does not match the task's output type: {error}\n"
                f"  request: {call.describe()}\n  reply: {reply.describe()}"
            ) from None

    def answer(self, served: Served, call: Call) -> Reply:
        """The reply to a request that must succeed, checked against the contract."""
        reply = served.send(call)
        self.expect_no_invalid_answer(served, call, reply)
        if reply.status != 200:
            raise ContractViolation(
                f"{served.task.name}: a valid request must get a 200, got {reply.status}: "
                f"{reply.error or reply.describe()}\n  request: {call.describe()}"
            )
        self.verify(served, call, reply)
        return reply

    def expect_no_invalid_answer(self, served: Served, call: Call, reply: Reply) -> None:
        """The server checks every answer against the task's output type and refuses to send a broken one."""
        if reply.status == 500 and reply.headers.get("x-error-code") == "InvalidAnswer":
            raise ContractViolation(
                f"{served.task.name}: the plugin's answer breaks the task's contract, so the server answered 500 "
                f"instead of sending it: {reply.error}\n  request: {call.describe()}"
            )

    def expect_answer_or_client_error(self, served: Served, call: Call) -> Reply:
        reply = served.send(call)
        if reply.status == 200:
            self.verify(served, call, reply)
        else:
            self.expect_client_error(served, call, reply)
        return reply

    def expect_client_error(self, served: Served, call: Call, reply: Reply) -> None:
        self.expect_no_invalid_answer(served, call, reply)
        if reply.status >= 500:
            raise ContractViolation(
                f"{served.task.name}: the server failed with {reply.status} ({reply.error or 'no message'}); "
                f"a request a client can send must get a 200 or a 4xx\n  request: {call.describe()}"
            )
        if reply.status not in CLIENT_ERRORS or not reply.error:
            raise ContractViolation(
                f"{served.task.name}: a refused request must get a 4xx with a JSON error message, "
                f"got {reply.describe()}\n  request: {call.describe()}"
            )

    def expect_same(self, served: Served, call: Call, first: Reply, second: Reply, defect: str) -> None:
        """Fail, naming ``defect``, where two answers to ``call`` differ beyond ``tolerance``."""
        difference = first_difference(comparable(first), comparable(second), self.tolerance)
        if difference:
            pytest.fail(
                f"{served.task.name}: {defect} ({difference})\n  request: {call.describe()}", pytrace=False
            )

    # -- the checks ------------------------------------------------------------------------------

    def test_examples_are_answered(self, served, examples):
        for call in examples:
            self.answer(served, call)

    def test_generated_requests_are_answered_or_refused(self, served, valid_requests, widgetd_exploration):
        statuses: list[int] = []

        def check(call: Call) -> None:
            statuses.append(self.expect_answer_or_client_error(served, call).status)

        widgetd_exploration.check_all(valid_requests, check, self.max_examples)
        if 200 not in statuses:
            pytest.fail(
                f"{served.task.name}: none of {len(statuses)} generated valid requests got a 200 "
                f"(statuses: {sorted(set(statuses))}); the plugin refuses input its contract allows",
                pytrace=False,
            )

    def test_invalid_requests_are_client_errors(self, served, widgetd_exploration):
        def check(body: dict) -> None:
            call = Call(body)
            reply = served.send(call)
            if reply.status == 200:
                raise ContractViolation(
                    f"{served.task.name}: a request that breaks the contract got a 200\n  request: {call.describe()}"
                )
            self.expect_client_error(served, call, reply)

        widgetd_exploration.check_all(invalid_requests_for(served.task), check, self.max_examples)

    def test_edge_inputs_never_fail_the_server(self, served, edge_cases):
        if not edge_cases:
            pytest.skip(f"no edge cases for {served.task.name}")
        problems = []
        for call in edge_cases:
            try:
                self.expect_answer_or_client_error(served, call)
            except (ContractViolation, httpx.TimeoutException) as problem:
                problems.append(str(problem) or repr(problem))
        assert not problems, f"{len(problems)} of {len(edge_cases)} edge inputs broke the contract:\n" + "\n".join(problems)

    def test_same_request_same_answer(self, served, examples):
        for call in examples:
            first, second = self.answer(served, call), self.answer(served, call)
            self.expect_same(served, call, first, second, "not deterministic: the same request got two different answers")

    def test_batching_does_not_change_answers(self, served, examples):
        self.expect_batch_invariance(served, list(examples) * 2)

    def test_different_inputs_batched_together_get_their_own_answers(self, served, varied_inputs):
        """Requests that share parameters and differ in their inputs run in one batch; each must get the
        answer it gets alone (not, say, the first request's answer for all of them)."""
        if len(varied_inputs) < 2:
            pytest.skip("supply a `varied_inputs` fixture: two or more requests with the same parameters and different inputs")
        self.expect_batch_invariance(served, list(varied_inputs) * 2)

    def expect_batch_invariance(self, served: Served, crowd: list[Call]) -> None:
        """``crowd`` sent at once runs in batches, and each request's answer equals its answer alone."""
        if served.max_batch_size == 1:
            pytest.skip("the backend answers one request at a time (max_batch_size=1): nothing to batch")
        alone = [self.answer(served, call) for call in crowd]
        batches_before, requests_before = served.batch_counts()
        with ThreadPoolExecutor(len(crowd)) as pool:
            together = list(pool.map(lambda call: self.answer(served, call), crowd))
        batches_after, requests_after = served.batch_counts()
        if requests_after - requests_before <= batches_after - batches_before:
            pytest.fail(
                f"{served.task.name}: {len(crowd)} concurrent requests were never run together; "
                "batch invariance could not be checked",
                pytrace=False,
            )
        for call, single, batched in zip(crowd, alone, together):
            self.expect_same(
                served, call, single, batched,
                "batch-dependent: a request answered inside a batch of others differs from its answer alone",
            )

    def test_no_state_leaks_between_requests(self, served, examples, edge_cases):
        first = self.answer(served, examples[0])
        for other in [*examples[1:], *edge_cases]:
            served.send(other)
            self.expect_same(
                served, examples[0], first, self.answer(served, examples[0]),
                f"state leaks between requests: after {other.describe()} the same request got another answer",
            )


class LabelledTests(TaskTests):
    """A task whose answers name the model's labels (classification, entities, detection, segmentation):
    every label an answer names must be one of the model's (the ``model_labels`` fixture; by default
    config.json's ``id2label`` or timm's ``label_names``). When no labels can be found the rule fails,
    saying which fixture to supply; it never quietly stops checking."""

    labels_required: ClassVar[bool] = True
    """False where a model may answer with any text (generative visual question answering)."""

    def test_answers_name_the_models_labels(self, served, examples):
        if served.labels is None:
            if self.labels_required:
                pytest.fail(missing_labels_message(served.model.model_id, served.task.name), pytrace=False)
            pytest.skip(f"model_labels is None: {served.task.name} answers of {served.model.model_id} are not checked against labels")
        named = [label for call in examples for label in self.answer_labels(call, self.decode(served.task, call, self.answer(served, call)))]
        expect(named, f"{served.task.name}: none of the examples' answers named a label, so the labels rule could not run")
