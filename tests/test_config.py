"""widgetd.toml: a server and its models in one file, errors that name the line, flags and environment."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

from tests.test_on_demand import TIMED_PLUGIN
from tests.test_plugins import env_with_plugin
from widgetd.cli import main
from widgetd.testing.process import ServeProcess

GOOD = """
[server]
max_inputs = 7
allow_models = ["org/*"]
max_models = 3
request_timeout = 30        # a float setting given as an integer
trust_remote_code = false

[[models]]
model_id = "{folder}"
batch_size = 4

[[models]]
model_id = "org/other"
revision = "v2"
task = "feature-extraction"
pinned = false
"""


def config_file(tmp_path: Path, text: str, **values: str) -> Path:
    path = tmp_path / "widgetd.toml"
    path.write_text(textwrap.dedent(text).format(**values))
    return path


def check(path: Path, capsys) -> tuple[int, str]:
    code = main(["config", "check", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_valid_config_checks_ok(tmp_path, capsys):
    code, output = check(config_file(tmp_path, GOOD, folder="/models/a"), capsys)
    assert code == 0 and "ok (5 settings, 2 models)" in output


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("[server]\nport = 80\nmax_queu = 3\n", 3, "server.max_queu is not a setting"),
        ("[server]\n\nmax_queue = \"many\"\n", 3, "server.max_queue must be a int"),
        ("[server]\nallow_models = \"org/*\"\n", 2, "must be a list of strings"),
        ("[[models]]\nmodel_id = \"a/b\"\n\n[[models]]\nmodel_id = \"c/d\"\nbatch = 3\n", 6, "unknown field `batch`"),
        ("[[models]]\nmodel_id = \"a/b\"\n\n[[models]]\ntask = \"fill-mask\"\n", 4, "missing required field `model_id`"),
        ("[[models]]\nmodel_id = \"a/b\"\nbatch_size = \"four\"\n", 3, "Expected `int | null`"),
        ("[server]\nport = = 3\n", 2, "not valid TOML"),
        ("[servers]\nport = 3\n", 1, "unknown table 'servers'"),
        ("[[models]]\nmodel_id = \"a/b\"\ntask = \"no-such-task\"\n", None, "'no-such-task' is not a task"),
        ("[[models]]\nmodel_id = \"a/b\"\nautoscale = \"4\"\n", None, "models[0].autoscale: --autoscale '4': give MIN:MAX"),
        ("[[models]]\nmodel_id = \"a/b\"\nreplicas = \"two\"\n", 3, "Expected `int | null`"),
    ],
)
def test_errors_name_the_file_the_line_and_the_setting(tmp_path, capsys, text, line, fragment):
    path = config_file(tmp_path, text)
    code, output = check(path, capsys)
    assert code == 1 and fragment in output
    if line is not None:
        assert f"{path}:{line}:" in output or f"line {line}" in output


def test_check_lists_every_mistake_in_the_file_not_only_the_first(tmp_path, capsys):
    text = (
        "[server]\nmax_queu = 3\nport = \"80\"\n\n"
        "[[models]]\nmodel_id = \"a/b\"\nbatch = 3\n\n"
        "[[models]]\nmodel_id = \"c/d\"\ntask = \"no-such-task\"\ndevice = \"tpu\"\n"
    )
    path = config_file(tmp_path, text)
    code, output = check(path, capsys)
    assert code == 1
    assert f"{path}: 5 problems" in output
    for fragment in (f"{path}:2: server.max_queu", f"{path}:3: server.port must be a int", f"{path}:7: models[0]",
                     "models[1].task 'no-such-task'", "models[1].device"):
        assert fragment in output, output


@pytest.fixture
def timed_env(hub_env, tmp_path) -> dict[str, str]:
    return env_with_plugin(hub_env, tmp_path / "site", "widgetd-timed", TIMED_PLUGIN)


def timed_folder(tmp_path: Path, name: str, scale: float) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "timed.json").write_text(f'{{"scale": {scale}}}')
    (folder / "README.md").write_text("---\nlibrary_name: timed\npipeline_tag: feature-extraction\n---\n")
    return folder


def test_serve_takes_its_models_and_settings_from_the_file_and_flags_win(tmp_path, timed_env):
    folder = timed_folder(tmp_path, "local-a", 2)
    path = config_file(tmp_path, '[server]\nmax_inputs = 7\nmax_audio_seconds = 12.5\n\n[[models]]\nmodel_id = "{folder}"\nbatch_size = 4\nruntime = "torch"\n', folder=folder)
    with ServeProcess(["--config", str(path), "--max-audio-seconds=3"], {**timed_env, "WIDGETD_MAX_CHARACTERS": "123"}) as server:
        info = httpx.get(f"{server.url}/info").json()
        [model] = info["models"]
        assert (model["model_id"], model["max_batch_size"], model["pinned"], model["runtime"]) == ("local-a", 4, True, "torch")
        limits = info["limits"]
        assert (limits["max_inputs"], limits["max_audio_seconds"], limits["max_characters"]) == (7, 3.0, 123)
        assert httpx.post(server.url, json={"inputs": "abc"}).json() == [6.0]


def test_a_bad_environment_value_names_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("WIDGETD_MAX_QUEUE", "lots")
    assert main(["serve", "--help"]) == 2
    assert "$WIDGETD_MAX_QUEUE is 'lots', not an int" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--autoscale", "3:1"], "--autoscale '3:1': give MIN:MAX replicas, 0 <= MIN <= MAX"),
        (["--autoscale", "0:0"], "MAX >= 1"),
        (["--replicas", "0"], "--replicas 0: a model needs at least 1 replica"),
        (["--target-ongoing-requests", "0"], "--target-ongoing-requests 0: must be more than 0"),
    ],
)
def test_replica_options_are_refused_before_anything_starts(flags, fragment, capsys):
    assert main(["serve", "--ray", *flags]) == 1
    assert fragment in capsys.readouterr().err
