"""Build widgetd and every plugin in plugins/ (sdist and wheel each) into one folder, as a release publishes them.

    python .ci/build_packages.py dist [--tag v0.2.0]

They are released together, with one version: a tag that names another version is refused before anything is built.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [ROOT, *sorted(path.parent for path in (ROOT / "plugins").glob("*/pyproject.toml"))]


def version_of(package: Path) -> str:
    """The version a package's ``__init__`` gives (its pyproject reads it from there)."""
    module = "widgetd" if package == ROOT else package.name.replace("-", "_")
    found = re.search(r'^__version__ = "([^"]+)"', (package / module / "__init__.py").read_text(), re.M)
    if not found:
        sys.exit(f"{package}: no __version__ in {module}/__init__.py")
    return found.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--tag", help="the release tag (vX.Y.Z); every package must have its version")
    arguments = parser.parse_args()
    versions = {package.name: version_of(package) for package in PACKAGES}
    if len(set(versions.values())) != 1:
        sys.exit(f"the packages are released together and must share one version: {versions}")
    if arguments.tag and arguments.tag.removeprefix("v") != next(iter(versions.values())):
        sys.exit(f"tag {arguments.tag} does not name the packages' version {next(iter(versions.values()))}")
    for package in PACKAGES:
        subprocess.run([sys.executable, "-m", "build", "--outdir", str(arguments.outdir.resolve()), str(package)], check=True)


if __name__ == "__main__":
    main()
