"""widgetd's errors cross processes intact: a Ray replica answers the ingress with the error to raise."""

from __future__ import annotations

import pickle

import pytest

from widgetd.errors import (
    ClientError,
    InvalidAnswer,
    InvalidInput,
    MethodNotAllowed,
    PayloadTooLarge,
    PluginError,
    ServiceUnavailable,
    WidgetdError,
)
from widgetd.on_demand import ModelLoading

ERRORS = [
    InvalidInput("inputs: too long", field="inputs"),
    MethodNotAllowed("/x answers GET requests", allow="GET"),
    PayloadTooLarge("the answer is too large", field="inputs"),
    ServiceUnavailable("model m is overloaded", 1),
    ModelLoading("org/name", 12.3),
    InvalidAnswer("backend 'b'", "fill-mask", "score must be a number"),
    PluginError("broken", "failed to import"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_an_error_survives_pickling_with_its_message_and_attributes(error: WidgetdError):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert vars(copy) == vars(error)
    if isinstance(error, ClientError):
        assert (copy.status, copy.field, copy.headers) == (error.status, error.field, error.headers)
