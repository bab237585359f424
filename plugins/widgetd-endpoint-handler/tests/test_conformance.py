"""widgetd's conformance kit against a handler repo for a built-in task (``nox -s conformance``): the
toolkit's own text-classification handler over a tiny BERT, served through this plugin."""

from __future__ import annotations

import pytest

import widgetd_endpoint_handler
from widgetd.app import ServerSettings
from widgetd.testing import conformance as kit
from widgetd_endpoint_handler.testing import save_classifier_repo


class TestTextClassificationHandler(kit.TextClassificationTests):
    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return widgetd_endpoint_handler

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        return save_classifier_repo(tmp_path_factory.mktemp("handler") / "classifier")

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_server_settings(cls):
        return ServerSettings(max_batch_wait=0.05, request_timeout=120, trust_remote_code=True)
