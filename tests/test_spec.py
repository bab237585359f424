"""spec/ is what the Structs generate; every built-in task is in it and in the OpenAPI document."""

import json
from pathlib import Path

from widgetd.spec import OPENAPI_FILE, stale_spec_files
from widgetd.tasks import BUILTIN_TASKS

SPEC = Path(__file__).parents[1] / "spec"


def test_spec_folder_is_up_to_date():
    stale = stale_spec_files(BUILTIN_TASKS, SPEC)
    assert not stale, f"spec/ is stale, run `nox -s spec`: {stale}"


def test_every_task_has_a_route_in_the_openapi_document():
    paths = json.loads((SPEC / OPENAPI_FILE).read_text())["paths"]
    for task in BUILTIN_TASKS:
        assert f"/models/{{model_id}}/pipeline/{task.name}" in paths


def test_every_task_with_its_own_wire_shape_is_documented_as_a_divergence():
    readme = (SPEC / "README.md").read_text()
    reshaped = [task.name for task in BUILTIN_TASKS if task.wire_output is not task.output]
    assert "text-classification" in reshaped
    undocumented = [name for name in reshaped if f"| {name} |" not in readme]
    assert not undocumented, f"add these to spec/README.md's divergences: {undocumented}"
