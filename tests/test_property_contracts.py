"""Property-based: any request the Structs allow gets a 200 that decodes (or a JSON 4xx the model
explains), any request they forbid gets a 4xx, and nothing gets a 500. Served by the toy plugin."""

from __future__ import annotations

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from widgetd.tasks import BUILTIN_TASKS
from widgetd.testing.strategies import invalid_requests_for, requests_for

CHECKS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("task", BUILTIN_TASKS, ids=lambda task: task.name)
def test_valid_requests_never_fail_the_server(toy_server, task):
    @CHECKS
    @given(requests_for(task))
    def check(body):
        response = httpx.post(f"{toy_server.url}/models/toy-qa/pipeline/{task.name}", json=body, timeout=30)
        assert response.status_code < 500, response.text
        if response.status_code == 200 and task.response_media == "json":
            msgspec.json.decode(response.content, type=task.wire_output)
        elif response.status_code != 200:
            assert response.status_code in (400, 413, 415) and response.json()["error"]

    check()


@pytest.mark.parametrize("task", BUILTIN_TASKS, ids=lambda task: task.name)
def test_invalid_requests_are_4xx(toy_server, task):
    @CHECKS
    @given(invalid_requests_for(task))
    def check(body):
        response = httpx.post(f"{toy_server.url}/models/toy-qa/pipeline/{task.name}", json=body, timeout=30)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert response.json()["error"]

    check()
