"""Loading a repo's code and checking its requirements, in process."""

from __future__ import annotations

import importlib.metadata

import pytest

from widgetd_endpoint_handler.loading import load_handler
from widgetd_endpoint_handler.requirements import describe_unmet, unmet_requirements
from widgetd_endpoint_handler.testing import write_repo

TOOLKIT_STYLE_PIPELINE = '''
class PreTrainedPipeline:
    def __init__(self, path):
        self.path = path

    def __call__(self, data):
        return {"got": sorted(data)}
'''

HANDLER_USING_SIBLING = '''
from helpers import word


class EndpointHandler:
    def __init__(self, path=""):
        pass

    def __call__(self, data):
        import helpers  # imported again at call time, as some handlers do
        return [word(), helpers.word()]
'''


def test_a_legacy_pipeline_whose_call_reads_data_gets_the_whole_body(tmp_path):
    folder = write_repo(tmp_path / "legacy", {"pipeline.py": TOOLKIT_STYLE_PIPELINE}, None)
    handler, name = load_handler(folder)
    assert name == "pipeline.py's PreTrainedPipeline"
    assert handler({"inputs": "x", "parameters": {}}) == {"got": ["inputs", "parameters"]}


def test_handler_py_wins_over_pipeline_py(tmp_path):
    folder = write_repo(tmp_path / "both", {"pipeline.py": TOOLKIT_STYLE_PIPELINE, "handler.py": HANDLER_USING_SIBLING, "helpers.py": "def word():\n    return 'a'\n"}, None)
    assert load_handler(folder)[1] == "handler.py's EndpointHandler"


def test_two_repos_with_modules_of_one_name_each_import_their_own(tmp_path):
    first = write_repo(tmp_path / "first", {"handler.py": HANDLER_USING_SIBLING, "helpers.py": "def word():\n    return 'first'\n"}, None)
    second = write_repo(tmp_path / "second", {"handler.py": HANDLER_USING_SIBLING, "helpers.py": "def word():\n    return 'second'\n"}, None)
    one, _ = load_handler(first)
    two, _ = load_handler(second)
    assert two({}) == ["second", "second"] and one({}) == ["first", "first"]


def test_a_repo_without_the_class_says_which_class_is_missing(tmp_path):
    folder = write_repo(tmp_path / "empty", {"handler.py": "class Handler:\n    pass\n"}, None)
    with pytest.raises(AttributeError, match="handler.py defines no class EndpointHandler"):
        load_handler(folder)


def test_requirements_the_environment_meets_are_not_listed():
    numpy = importlib.metadata.version("numpy")
    text = "\n".join([
        "# a comment",
        f"numpy=={numpy}",
        "numpy<1.0 ; python_version < '3.0'",
        "--extra-index-url https://example.invalid/simple",
        "-r other.txt",
        "no-such-distribution-anywhere>=2  # needed for diarization",
        "msgspec<0.0.1",
        "",
    ])
    unmet = unmet_requirements(text)
    assert unmet == [("no-such-distribution-anywhere>=2", "not installed"), ("msgspec<0.0.1", f"{importlib.metadata.version('msgspec')} installed")]
    message = describe_unmet("org/repo", unmet)
    assert "python -m pip install 'no-such-distribution-anywhere>=2' 'msgspec<0.0.1'" in message
    assert "never installs" in message and "org/repo" in message
