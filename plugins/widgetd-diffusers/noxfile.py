"""`nox -s conformance`: widgetd's conformance kit (widgetd.testing.conformance) against this plugin."""

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"

REPO = Path(__file__).resolve().parents[2]
# The widgetd core beside this plugin; a plugin living elsewhere installs "widgetd[testing]" instead.
CORE = f"{REPO}[testing]"
CPU_TORCH = ("-c", str(REPO / ".ci" / "constraints.txt"))


@nox.session
def conformance(session: nox.Session) -> None:
    """Every task this plugin claims, served over HTTP and checked against its contract."""
    session.install(*CPU_TORCH, "-e", CORE, "-e", ".")
    session.run("pytest", "tests/test_conformance.py", *session.posargs)
