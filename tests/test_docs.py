"""The documentation's reference pages follow the code: a new option, setting, metric, error or task shows up
in them with nothing written by hand (``nox -s docs`` builds the site, strictly, with these pages)."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

import msgspec

from widgetd.cli import command_line
from widgetd.errors import error_codes
from widgetd.metrics import Metrics
from widgetd.options import serve_parser
from widgetd.reference import reference_pages, task_overview
from widgetd.tasks import BUILTIN_TASKS, ROUTE_CONTRACTS, Strict, Task

ROOT = Path(__file__).parents[1]


def test_every_command_and_option_is_in_the_command_reference():
    page = reference_pages()["reference/cli.md"]
    for command in ("serve", "plugins", "tasks", "spec", "new-plugin", "config", "config check"):
        assert f"## `widgetd {command}`" in page
    for action in serve_parser()._actions:
        for flag in action.option_strings:
            assert f"`{flag}" in page or flag in ("-h", "--help"), flag
    assert "|  |" not in page, "an option without help text"


def test_a_new_option_appears_in_the_command_and_settings_references():
    parser = command_line()
    serve = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction)).choices["serve"]
    serve.add_argument("--frobnicate-level", type=int, default=3, help="how hard to frobnicate")
    pages = reference_pages(parser=parser)
    assert "| `--frobnicate-level FROBNICATE_LEVEL` | how hard to frobnicate |" in pages["reference/cli.md"]
    row = "| `frobnicate_level` | `--frobnicate-level FROBNICATE_LEVEL` | `WIDGETD_FROBNICATE_LEVEL` | `3` | how hard to frobnicate |"
    assert row in pages["reference/settings.md"]
    assert "frobnicate" not in reference_pages()["reference/settings.md"]


def test_every_setting_has_its_environment_variable_and_config_key():
    page = reference_pages()["reference/settings.md"]
    for action in serve_parser()._actions:
        if action.option_strings and action.dest != "help":
            assert f"`WIDGETD_{action.dest.upper()}`" in page


def test_every_metric_family_and_error_code_is_listed():
    metrics = reference_pages()["reference/metrics.md"]
    for name in re.findall(r"^# TYPE (\S+)", Metrics().render([]), re.MULTILINE):
        assert f"`{name}`" in metrics
    assert "`widgetd_replicas`" in metrics
    errors = reference_pages()["reference/errors.md"]
    for kind in error_codes():
        assert f"| {kind.status} | `{kind.code}` |" in errors
    assert "``" not in errors


class ShoutInput(Strict):
    inputs: str
    volume: int = 11


def test_a_new_task_gets_its_page_with_its_schemas():
    shout = Task(name="text-shouting", summary="The text, louder.", input=ShoutInput, output=str)
    pages = reference_pages(tasks=[*BUILTIN_TASKS, shout], examples={"text-shouting": "## Example\n\nSHOUT"})
    page = pages["tasks/text-shouting.md"]
    assert page.startswith("<!-- generated") and "# text-shouting" in page and "The text, louder." in page
    assert '"volume"' in page and "## Example\n\nSHOUT" in page
    assert msgspec.json.encode(msgspec.json.schema(ShoutInput)["$defs"]["ShoutInput"]["properties"]["volume"]) in msgspec.json.encode(
        msgspec.json.decode(page.split("```json\n")[1].split("```")[0])
    )
    assert "[text-shouting](text-shouting.md)" in task_overview([*BUILTIN_TASKS, shout])


def test_every_task_and_openai_route_has_a_page_and_an_example():
    pages = reference_pages()
    examples = tomllib.loads((ROOT / "docs" / "examples.toml").read_text())
    for task in BUILTIN_TASKS:
        assert f"tasks/{task.name}.md" in pages and task.name in examples, task.name
    for route in ROUTE_CONTRACTS:
        assert f"tasks/openai-{route.name}.md" in pages and route.name in examples, route.name
    for name, example in examples.items():
        if "request" in example and "<" not in example["request"]:
            msgspec.json.decode(example["request"])


def test_the_readme_is_short_and_links_to_the_site():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in re.findall(r"\]\(docs/([^)#]+)", readme):
        assert (ROOT / "docs" / page).is_file(), page
