"""A real widgetd HTTP server on loopback, in a thread, for tests.

    with LiveServer.for_models(["org/tiny"], plugins={"mylib": widgetd_mylib}) as server:
        httpx.post(server.url, json={"inputs": "hello"})
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Mapping, Sequence

import httpx
import uvicorn

from widgetd.app import ServerSettings, ServerState, create_app
from widgetd.models import ModelRequest, plan_models
from widgetd.plugins import add_plugin, collect, create_plugin_manager, describe_plugins
from widgetd.serving import uvicorn_config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveServer:
    """Runs the app under uvicorn on 127.0.0.1; ``wait_ready`` blocks until /health is 200."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn_config(create_app(state), state.settings, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="widgetd-test-server", daemon=True)

    @classmethod
    def for_models(
        cls,
        model_ids: Sequence[str],
        *,
        plugins: Mapping[str, object],
        settings: ServerSettings | None = None,
        task: str | None = None,
        library: str | None = None,
        device: str | None = None,
    ) -> LiveServer:
        """A server for ``model_ids`` with only the built-in plugin and ``plugins`` loaded."""
        manager = create_plugin_manager(load_entry_points=False)
        for name, plugin in plugins.items():
            add_plugin(manager, plugin, name)
        registry = collect(manager)
        settings = settings or ServerSettings()
        requests = [
            ModelRequest(
                m,
                task=task,
                library=library,
                device=device,
                trust_remote_code=settings.trust_remote_code,
                runtime=settings.runtime,
            )
            for m in model_ids
        ]
        state = ServerState(
            models=plan_models(requests, registry),
            registry=registry,
            plugins=describe_plugins(manager, registry),
            settings=settings,
        )
        return cls(state)

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def wait_ready(self, timeout: float = 120) -> LiveServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if httpx.get(f"{self.url}/health").json().get("status") == "ok":
                return self
            if any(model.state == "failed" for model in self.state.models):
                problems = [m.problem for m in self.state.models if m.problem]
                raise RuntimeError(f"a model failed to load: {problems}")
            time.sleep(0.05)
        raise TimeoutError(f"models not ready after {timeout}s")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> LiveServer:
        return self.start().wait_ready()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
