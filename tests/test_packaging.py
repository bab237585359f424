"""What the packages promise, checked from the source tree (``nox -s dist`` builds and installs them): one
version for all, every package listed, plugins that say which widgetd and which hook API they are for."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import widgetd
from widgetd.hookspecs import HOOK_API

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(path.parent for path in (ROOT / "plugins").glob("*/pyproject.toml"))


def project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def test_the_wheel_lists_every_package_of_widgetd():
    listed = set(project(ROOT)["tool"]["setuptools"]["packages"])
    on_disk = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "widgetd").rglob("__init__.py")}
    assert on_disk | {"widgetd.schemas"} == listed


@pytest.mark.parametrize("folder", [ROOT, *PLUGINS], ids=lambda folder: folder.name)
def test_every_package_has_complete_metadata(folder):
    metadata = project(folder)["project"]
    for field in ("description", "readme", "requires-python", "license", "license-files", "classifiers", "urls"):
        assert metadata.get(field), f"{folder.name}: pyproject.toml's [project] has no {field}"
    assert metadata["dynamic"] == ["version"] and (folder / "LICENSE").is_file()


@pytest.mark.parametrize("folder", PLUGINS, ids=lambda folder: folder.name)
def test_a_plugin_says_which_widgetd_and_which_hook_api_it_is_for(folder):
    requirement = next(Requirement(line) for line in project(folder)["project"]["dependencies"] if line.startswith("widgetd"))
    assert requirement.specifier.contains(widgetd.__version__, prereleases=True), requirement
    assert requirement.specifier.contains("1.0", prereleases=True) is False, f"{requirement}: no upper bound"
    module = importlib.import_module(folder.name.replace("-", "_"))
    assert module.__version__ == widgetd.__version__, "the packages are released together, with one version"
    assert module.widgetd_hook_api == HOOK_API
