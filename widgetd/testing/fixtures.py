"""pytest fixtures that widgetd installs (a ``pytest11`` plugin): a local Hub, a private HF cache, and
the conformance kit's fixtures and options (``--widgetd-explore``)."""

from __future__ import annotations

import pytest

EXPLORATION = pytest.StashKey()
KIT_TESTS = pytest.StashKey()
"""The node ids of the conformance kit's tests in this run."""
NOT_RUN = pytest.StashKey()
"""Each kit test that was skipped (node id) and why, for the summary."""


def pytest_addoption(parser) -> None:
    group = parser.getgroup("widgetd", "widgetd conformance kit")
    group.addoption(
        "--widgetd-explore", action="store_true",
        help="draw new generated requests (many more) instead of the same ones every run ($WIDGETD_EXPLORE=1)",
    )
    group.addoption("--widgetd-examples", type=int, help="generated requests per property when exploring ($WIDGETD_EXPLORE_EXAMPLES)")
    group.addoption("--widgetd-seed", type=int, help="the seed to explore with, e.g. to replay a failure ($WIDGETD_SEED)")


def pytest_configure(config) -> None:
    from widgetd.testing.exploration import Exploration

    config.stash[EXPLORATION] = Exploration.from_options(
        config.getoption("widgetd_explore"), config.getoption("widgetd_examples"), config.getoption("widgetd_seed")
    )
    config.stash[KIT_TESTS] = set()
    config.stash[NOT_RUN] = {}


def _is_a_kit_test(item) -> bool:
    cls = getattr(item, "cls", None)
    return cls is not None and any(klass.__module__.startswith("widgetd.testing.conformance") for klass in cls.__mro__)


def pytest_collection_modifyitems(config, items) -> None:
    config.stash[KIT_TESTS].update(item.nodeid for item in items if _is_a_kit_test(item))


def pytest_report_teststatus(report, config) -> None:
    """Notes each skipped kit test with its reason (and leaves the status to pytest)."""
    if report.skipped and report.nodeid in config.stash[KIT_TESTS]:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        config.stash[NOT_RUN][report.nodeid] = reason.removeprefix("Skipped: ")


def pytest_report_header(config) -> str:
    return config.stash[EXPLORATION].describe()


def pytest_terminal_summary(terminalreporter, config) -> None:
    """The kit's checks that did not run, each with why (a skip is never silent), and an explored run's seed,
    at the end, where -q runs and CI logs show them."""
    not_run = config.stash[NOT_RUN]
    if not_run:
        checks = "check" if len(not_run) == 1 else "checks"
        terminalreporter.section(f"widgetd conformance kit: {len(not_run)} {checks} did not run", sep="-")
        for nodeid, reason in not_run.items():
            terminalreporter.write_line(f"{nodeid}: {reason}")
    exploration = config.stash[EXPLORATION]
    if exploration.explore:
        terminalreporter.write_line(exploration.describe())


@pytest.fixture(scope="session")
def widgetd_exploration(pytestconfig):
    """How the kit draws generated requests this run (see widgetd.testing.exploration)."""
    return pytestconfig.stash[EXPLORATION]


@pytest.fixture(scope="session")
def local_hub():
    """A server speaking the Hub's HTTP protocol on loopback; publish tiny models to it."""
    from widgetd.testing.hub import LocalHub

    with LocalHub() as hub:
        yield hub


@pytest.fixture
def hub_env(local_hub, tmp_path) -> dict[str, str]:
    """Environment for a ``widgetd serve`` process: the local Hub and an empty HF cache."""
    return {
        "HF_ENDPOINT": local_hub.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_CACHE": str(tmp_path / "hf-home" / "hub"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "0",
    }


# The conformance kit's fixtures (widgetd.testing.conformance). A plugin's tests override the first
# two, on its test class or in its conftest.py; these defaults say what to supply.


@pytest.fixture(scope="class")
def widgetd_plugin():
    """Your plugin: the module or object holding its ``@widgetd.hookimpl`` functions."""
    pytest.fail(
        "the widgetd conformance kit needs a `widgetd_plugin` fixture (scope='class') returning your "
        "plugin: the module or object with its @widgetd.hookimpl hooks, e.g. `return widgetd_mylib`",
        pytrace=False,
    )


@pytest.fixture(scope="class")
def widgetd_model(request):
    """A small model for the test class's task: a Hub repo id, or a folder your fixture builds."""
    task = getattr(request.cls, "task_name", "the task")
    pytest.fail(
        f"the widgetd conformance kit needs a `widgetd_model` fixture (scope='class') returning a model "
        f"for {task}: a Hub repo id or a folder, e.g. "
        "`return build_tiny_model(request.cls.task_name, tmp_path_factory.mktemp('model'))`",
        pytrace=False,
    )


@pytest.fixture(scope="class")
def widgetd_server_settings(request):
    """Server settings for conformance runs: a short batching window so concurrent requests batch, and the
    test class's ``widgetd_runtime`` (``--runtime``; torch unless the class says otherwise)."""
    from widgetd.app import ServerSettings

    runtime = getattr(request.cls, "widgetd_runtime", "torch")
    return ServerSettings(max_batch_wait=0.05, request_timeout=120, runtime=runtime)


@pytest.fixture(scope="class")
def widgetd_device():
    """Where the kit's server places the model: ``None`` picks as ``widgetd serve`` does."""
    import os

    return os.environ.get("WIDGETD_DEVICE") or None


# What a plugin may supply for some tasks, here so that a fixture on your test class, on any of its bases
# (whatever their order) or in your conftest.py wins over the kit's default.


@pytest.fixture(scope="class")
def model_labels(served):
    """The labels the model answers with: a collection of labels (or ``ModelLabels``); by default those
    config.json names (``id2label``, or timm's ``label_names``); None where they cannot be found."""
    from widgetd.testing.conformance.labels import labels_of_model

    return labels_of_model(served.model.source.path)


@pytest.fixture
def speech_sample():
    """Audio bytes with speech your ASR model transcribes as some text; None: the check is skipped, saying so.
    ``widgetd.testing.audio.speech_like()`` makes a speech-like signal."""
    return None


@pytest.fixture
def mask_token():
    """Your fill-mask model's mask token."""
    return "[MASK]"


@pytest.fixture
def expected_sources():
    """How many sources your separation model outputs; None: the number the first answer has."""
    return None


@pytest.fixture
def expected_scale():
    """The whole factor your image-to-image model scales by; None: the one the first answer has."""
    return None


@pytest.fixture(scope="class")
def prompt_tokens():
    """For ChatTests: a function of the messages giving how many tokens the model's chat template makes of them."""
    pytest.fail(
        "supply a `prompt_tokens` fixture for your ChatTests class: a function of the messages giving "
        "how many tokens the model's chat template makes of them",
        pytrace=False,
    )


@pytest.fixture(scope="class")
def model_table(served):
    """For the tabular tasks: a few valid rows, as ``{column: [values]}``, every column the model reads; by
    default config.json's ``sklearn.example_input`` (what skops writes for a Hub repo); None where absent."""
    from widgetd.testing.conformance.tabular import example_table_of_model

    return example_table_of_model(served.model.source.path)
