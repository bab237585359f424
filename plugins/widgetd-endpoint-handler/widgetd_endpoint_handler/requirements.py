"""What a repo's ``requirements.txt`` asks for that this environment lacks. widgetd never installs it."""

from __future__ import annotations

import importlib.metadata
import shlex

from packaging.requirements import InvalidRequirement, Requirement

REQUIREMENTS_FILE = "requirements.txt"


def unmet_requirements(text: str) -> list[tuple[str, str]]:
    """Each requirement line the installed packages do not satisfy, with why (``not installed``,
    ``1.2.0 installed``). Pip options (``-r``, ``--extra-index-url``) and lines pip alone can read
    (editable or URL installs without a name) are left to the operator."""
    unmet = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            unmet.append((line, "not installed"))
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            unmet.append((line, f"{installed} installed"))
    return unmet


def describe_unmet(model_id: str, unmet: list[tuple[str, str]]) -> str:
    listed = "; ".join(f"{line} ({why})" for line, why in unmet)
    command = "python -m pip install " + " ".join(shlex.quote(line) for line, _ in unmet)
    return (
        f"model {model_id!r} needs packages this environment lacks, by its {REQUIREMENTS_FILE}: {listed}. "
        f"widgetd never installs a repo's requirements; install them with: {command}"
    )
