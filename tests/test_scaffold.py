"""``widgetd new-plugin``: the plugin it writes passes the conformance kit as written (here in-process; CI also
runs its own ``nox -s conformance`` from a folder outside this repository, ``nox -s template``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

from widgetd.scaffold import ScaffoldError, new_plugin


def test_a_new_plugin_has_everything_a_plugin_needs(tmp_path):
    folder = new_plugin("my-lib", tmp_path)
    assert folder.name == "widgetd-my-lib"
    written = {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}
    assert written == {
        ".github/workflows/conformance.yml", ".gitignore", "README.md", "noxfile.py", "pyproject.toml",
        "tests/test_conformance.py", "widgetd_my_lib/__init__.py", "widgetd_my_lib/backend.py", "widgetd_my_lib/testing.py",
    }
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["widgetd"] == {"my_lib": "widgetd_my_lib"}
    assert project["dependencies"][0].startswith("widgetd>=") and ",<" in project["dependencies"][0]
    assert not list(folder.rglob("*.tmpl")) and "{{" not in "".join(path.read_text() for path in folder.rglob("*") if path.is_file())


def test_its_conformance_tests_pass_as_written(tmp_path):
    folder = new_plugin("demo", tmp_path)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_conformance.py"],
        cwd=folder, env=environment, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0 and "12 passed" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize("name", ["", "My Lib", "1lib", "lib/other"])
def test_a_bad_name_is_refused_saying_why(tmp_path, name):
    with pytest.raises(ScaffoldError, match="use lowercase letters"):
        new_plugin(name, tmp_path)


def test_an_existing_folder_is_never_overwritten(tmp_path):
    new_plugin("demo", tmp_path)
    with pytest.raises(ScaffoldError, match="already there"):
        new_plugin("demo", tmp_path)
