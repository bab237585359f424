"""The kit sends the same generated requests on every run unless asked to explore; exploring draws from
a seed that the run prints and that replays it. Each run is its own pytest process."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RECORDING_PLUGIN = '''
import json, os
import pytest
from tests.conformance import broken_plugins
from tests.toy_plugin import ToyPipeline, ToyPlugin, make_toy_model
from widgetd.testing import conformance as kit


class Recording(ToyPipeline):
    def answer_batch(self, task, requests):
        with open(os.environ["RECORD_TO"], "a") as record:
            for request in requests:
                record.write(json.dumps(request.inputs) + "\\n")
        return super().answer_batch(task, requests)


class RecordingPlugin(ToyPlugin):
    pipeline_class = Recording


class TestRecorded(kit.TextClassificationTests):
    max_examples = 8

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return {plugin}()

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        return make_toy_model(tmp_path_factory.mktemp("toy"), pipeline_tag=cls.task_name)
'''


@pytest.fixture
def kit_run(pytester, monkeypatch):
    """Runs the kit's generated-requests test in a fresh process; returns its output and the inputs it sent."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    for name in ("CI", "WIDGETD_EXPLORE", "WIDGETD_SEED", "WIDGETD_EXPLORE_EXAMPLES"):
        monkeypatch.delenv(name, raising=False)
    runs = iter(range(100))

    def run(*options: str, plugin: str = "RecordingPlugin"):
        record = pytester.path / f"sent-{next(runs)}.txt"
        monkeypatch.setenv("RECORD_TO", str(record))
        pytester.makepyfile(test_plugin=RECORDING_PLUGIN.format(plugin=plugin))
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "generated", *options, timeout=300)
        return result, record.read_text() if record.exists() else ""

    return run


def test_every_run_sends_the_same_requests_unless_exploring(kit_run):
    first, sent_first = kit_run()
    second, sent_second = kit_run()
    assert first.ret == 0 and second.ret == 0, first.stdout.str()
    first.stdout.fnmatch_lines(["*widgetd conformance kit: deterministic*"])
    assert sent_first and sent_first == sent_second

    explored, sent_explored = kit_run("--widgetd-explore", "--widgetd-examples", "12")
    explored.stdout.fnmatch_lines(["*widgetd conformance kit: exploring with seed *"])
    quiet, _ = kit_run("-q", "--widgetd-explore", "--widgetd-seed", "5", "--widgetd-examples", "3")
    quiet.stdout.fnmatch_lines(["*exploring with seed 5*"])
    assert sent_explored != sent_first and len(sent_explored.splitlines()) >= 12


def test_an_explored_seed_replays_the_same_requests(kit_run):
    once, sent_once = kit_run("--widgetd-explore", "--widgetd-seed", "1234", "--widgetd-examples", "10")
    again, sent_again = kit_run("--widgetd-explore", "--widgetd-seed", "1234", "--widgetd-examples", "10")
    other, sent_other = kit_run("--widgetd-explore", "--widgetd-seed", "99", "--widgetd-examples", "10")
    once.stdout.fnmatch_lines(["*exploring with seed 1234*"])
    assert sent_once == sent_again != sent_other


def test_a_failure_found_exploring_says_how_to_replay_it(kit_run):
    """Half the texts the kit generates fail in this plugin: the report names the seed that found it."""
    failing = "type('Fails', (broken_plugins.FailsOnEveryOtherText,), {})"
    result, _ = kit_run("--widgetd-explore", "--widgetd-seed", "77", plugin=f"broken_plugins.plugin_for({failing})")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*explored with seed 77*WIDGETD_SEED=77*"])
    deterministic, _ = kit_run(plugin=f"broken_plugins.plugin_for({failing})")
    deterministic.stdout.fnmatch_lines(["*deterministic run: every run sends these requests*"])
