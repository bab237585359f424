"""Sessions: ``tests`` (everything CI runs), ``spec`` (regenerate spec/)."""

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / ".ci" / "constraints.txt"))
PLUGINS = (
    "plugins/widgetd-sentence-transformers[default-model]",
    "plugins/widgetd-asteroid",
)


def install_everything(session: nox.Session) -> None:
    editable = [arg for plugin in PLUGINS for arg in ("-e", plugin)]
    # playwright drives the system's chromium for the widget page tests (no browser download).
    session.install(*CONSTRAINTS, "-e", ".[testing]", *editable, "playwright")
    # asteroid pulls a CUDA torchaudio that breaks `import asteroid` beside CPU torch; nothing needs it.
    session.run("pip", "uninstall", "--yes", "torchaudio")


@nox.session
def tests(session: nox.Session) -> None:
    """The full test suite: the core and every plugin in this repo."""
    install_everything(session)
    session.run("widgetd", "spec", "--check", env={"WIDGETD_LOAD_PLUGINS": ""})
    session.run("pytest", *session.posargs)


@nox.session
def spec(session: nox.Session) -> None:
    """Regenerate spec/ from the task Structs (built-in tasks only)."""
    session.install(*CONSTRAINTS, "-e", ".")
    session.run("widgetd", "spec", "--out", "spec", env={"WIDGETD_LOAD_PLUGINS": ""})
