"""Does a server do what its /openapi.json says? schemathesis, every check, against a live server.

    with LiveServer.for_models([...], plugins={...}) as server:
        assert_openapi_holds(server.url, max_examples=10)

Requests are generated deterministically (the same on every run). ``schemathesis.toml`` beside this
module tells schemathesis what a schema cannot say: a request it allows may still get a 400 (a text
without the model's mask token), a 413 (over the server's limits) or a 415 (bytes that are not audio).
Needs ``schemathesis`` (the CLI) installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CONFIG = Path(__file__).with_name("schemathesis.toml")


def schemathesis_command() -> str | None:
    """The schemathesis CLI beside this Python, or on PATH."""
    return shutil.which("schemathesis", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def check_openapi(
    url: str, *, max_examples: int = 10, timeout: float = 900, exclude_paths: str | None = None
) -> subprocess.CompletedProcess:
    """schemathesis against ``url``; ``exclude_paths`` (a regex) leaves out operations meant to fail (a
    model that is broken on purpose)."""
    command = schemathesis_command()
    if command is None:
        raise FileNotFoundError("the schemathesis CLI is not installed: pip install schemathesis")
    return subprocess.run(
        [
            command, "--config-file", str(CONFIG), "run", f"{url}/openapi.json",
            "--checks", "all", "--max-examples", str(max_examples), "--generation-deterministic", "--no-color",
            *(["--exclude-path-regex", exclude_paths] if exclude_paths else []),
        ],
        capture_output=True, text=True, timeout=timeout,
    )


def assert_openapi_holds(url: str, *, max_examples: int = 10, exclude_paths: str | None = None) -> None:
    """A pytest check: schemathesis finds no disagreement (``WIDGETD_OPENAPI_EXAMPLES`` overrides how many
    requests per operation). Without the CLI it skips, and fails in CI."""
    import pytest

    if schemathesis_command() is None:
        if os.environ.get("CI"):
            pytest.fail("schemathesis is not installed, and CI must run it (pip install schemathesis)")
        pytest.skip("needs the schemathesis CLI (pip install schemathesis)")
    examples = int(os.environ.get("WIDGETD_OPENAPI_EXAMPLES", max_examples))
    result = check_openapi(url, max_examples=examples, exclude_paths=exclude_paths)
    assert result.returncode == 0, result.stdout[-6000:]
