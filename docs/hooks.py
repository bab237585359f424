"""MkDocs hooks: the reference pages and the task pages are generated from widgetd's code at every build
(``widgetd.reference``), with each task's example calls from ``examples.toml`` and, when the widget page's
browser tests ran first (as in CI), their screenshots."""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path

from mkdocs.structure.files import File, Files

from widgetd.reference import reference_pages, task_overview
from widgetd.tasks import BUILTIN_TASKS, ROUTE_CONTRACTS

DOCS = Path(__file__).parent
SCREENSHOTS = DOCS.parent / "test-artifacts"
BASE = "http://127.0.0.1:8000"


def on_config(config):
    """The Tasks section lists every task's page, however many tasks there are."""
    tasks = [{task.name: f"tasks/{task.name}.md"} for task in sorted(BUILTIN_TASKS, key=lambda task: task.name)]
    routes = [{f"OpenAI {route.path}": f"tasks/openai-{route.name}.md"} for route in ROUTE_CONTRACTS]
    for entry in config["nav"]:
        if isinstance(entry, dict) and "Tasks" in entry:
            entry["Tasks"] = [{"All tasks": "tasks/index.md"}, *tasks, *routes]
    return config


def on_files(files: Files, config) -> Files:
    for path, text in generated_pages().items():
        files.append(File.generated(config, path, content=text))
    for shot in sorted(SCREENSHOTS.glob("widget-*.png")):
        files.append(File.generated(config, f"images/{shot.name}", abs_src_path=str(shot)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri == "tasks/index.md":
        return markdown.replace(TASK_TABLE, task_overview())
    return markdown


TASK_TABLE = "<!-- the table of tasks: generated (docs/hooks.py) -->"
_pages: dict[str, str] | None = None


def generated_pages() -> dict[str, str]:
    global _pages
    if _pages is None:
        examples = tomllib.loads((DOCS / "examples.toml").read_text())
        _pages = reference_pages(examples={name: examples_section(name, example) for name, example in examples.items()})
    return _pages


def examples_section(name: str, example: dict) -> str:
    """The task's example as curl, Python and JavaScript calls, and its widget's screenshot when there is one."""
    model = example.get("model", "org/name")
    route = example.get("route")
    url = f"{BASE}{route}" if route else f"{BASE}/models/{model}"
    tabs = []
    if "request" in example and "<" not in example["request"]:
        body = json.dumps(json.loads(example["request"]))
        tabs.append(("curl", "bash", f"curl {url} \\\n  -H 'Content-Type: application/json' \\\n  -d {shlex.quote(body)}"))
    elif "file" in example:
        tabs.append(("curl", "bash", f"curl {url} --data-binary @{example['file']}"))
    elif route and "request" not in example:
        tabs.append(("curl", "bash", f"curl {url}"))
    if "python" in example:
        tabs.append((
            "Python (huggingface_hub)",
            "python",
            f'from huggingface_hub import InferenceClient\n\nclient = InferenceClient(base_url="{BASE}/models/{model}")\n'
            f"client.{example['python']}",
        ))
    if "js" in example:
        reads = 'import { readFile } from "node:fs/promises";\n' if "readFile" in example["js"] else ""
        tabs.append((
            "JavaScript (@huggingface/inference)",
            "js",
            f'{reads}import {{ InferenceClient }} from "@huggingface/inference";\n\n'
            f'const model = new InferenceClient().endpoint("{BASE}/models/{model}");\n'
            f"console.log(await model.{example['js']});",
        ))
    if "openai" in example:
        tabs.append((
            "Python (openai)",
            "python",
            f'from openai import OpenAI\n\nclient = OpenAI(base_url="{BASE}/v1", api_key="unused")\nclient.{example["openai"]}',
        ))
    lines = ["## Example\n"]
    if "model" in example:
        lines.append(f"Served with `widgetd serve --model-id {model}`:\n")
    if "request" in example and "<" in example["request"]:
        lines.append(f"The request, in JSON (media go in base64):\n\n```json\n{example['request']}\n```\n")
    for title, language, code in tabs:
        indented = "\n".join(f"    {line}" if line else "" for line in code.splitlines())
        lines.append(f'=== "{title}"\n\n    ```{language}\n{indented}\n    ```\n')
    if (SCREENSHOTS / f"widget-{name}.png").exists():
        lines.append(f"The widget page (`GET /` in a browser) shows it so:\n\n![{name} widget](../images/widget-{name}.png)\n")
    return "\n".join(lines)
