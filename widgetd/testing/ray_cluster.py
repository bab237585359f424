"""A real Ray cluster on this machine, for tests and benchmarks of widgetd on Ray Serve (``widgetd serve --ray``).

    with network_namespace() as namespaced, LocalRayCluster.started(env, namespaced) as cluster:
        with cluster.serving("--model-id", "org/name", "--replicas", "2", log=path) as client:
            assert client.get("/health").status_code == 200
        cluster.start_node_in_namespace()      # a second node behind a veth pair (needs root)

The head node runs in a temporary folder of its own and ``ray stop --force`` ends it: that stops every Ray
process on the machine, so do not use it beside a cluster you care about. Ray workers load widgetd's plugins
by entry point: ``env`` must let them import what the served models need (``PYTHONPATH``, ``HF_HOME``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import httpx

BIN = Path(sys.executable).parent
NAMESPACE = "widgetd-ray"
HEAD_IP, NODE_IP = "10.77.0.1", "10.77.0.2"
"""The veth pair's ends: the head node's (in this namespace) and the second node's (in its own)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(*command: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, text=True, **options)


@contextlib.contextmanager
def network_namespace() -> Iterator[bool]:
    """A namespace joined to this one by a veth pair, or False where the machine does not allow it."""
    commands = [
        ("ip", "link", "add", "wd-ray0", "type", "veth", "peer", "name", "wd-ray1"),
        ("ip", "addr", "add", f"{HEAD_IP}/24", "dev", "wd-ray0"),
        ("ip", "link", "set", "wd-ray0", "up"),
        ("ip", "netns", "add", NAMESPACE),
        ("ip", "link", "set", "wd-ray1", "netns", NAMESPACE),
        ("ip", "netns", "exec", NAMESPACE, "ip", "addr", "add", f"{NODE_IP}/24", "dev", "wd-ray1"),
        ("ip", "netns", "exec", NAMESPACE, "ip", "link", "set", "wd-ray1", "up"),
        ("ip", "netns", "exec", NAMESPACE, "ip", "link", "set", "lo", "up"),
    ]
    _remove_namespace()
    try:
        for command in commands:
            run(*command)
        made = True
    except (OSError, subprocess.CalledProcessError):
        _remove_namespace()
        made = False
    try:
        yield made
    finally:
        if made:
            _remove_namespace()


def _remove_namespace() -> None:
    subprocess.run(["ip", "netns", "del", NAMESPACE], capture_output=True)
    subprocess.run(["ip", "link", "del", "wd-ray0"], capture_output=True)


@dataclass
class Cluster:
    temp_dir: Path
    head_ip: str
    port: int
    env: dict[str, str]
    http_port: int = field(default_factory=free_port)
    has_namespace: bool = False
    cpus: int = 6

    @property
    def address(self) -> str:
        return f"{self.head_ip}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start_head(self) -> None:
        run(
            str(BIN / "ray"), "start", "--head", f"--node-ip-address={self.head_ip}", f"--port={self.port}",
            f"--num-cpus={self.cpus}", f"--temp-dir={self.temp_dir}", "--dashboard-host=0.0.0.0", f"--dashboard-port={free_port()}",
            "--disable-usage-stats", env=self.env, timeout=120,
        )
        # Serve's HTTP proxy on this cluster's port, for `widgetd serve --ray` and `serve run` alike.
        run(
            str(BIN / "serve"), "start", f"--address={self.address}", "--http-host=127.0.0.1", f"--http-port={self.http_port}",
            env=self.env, timeout=120,
        )

    def start_node_in_namespace(self, cpus: int = 2) -> None:
        """A second node, in the network namespace; returns once the cluster counts it."""
        run(
            "ip", "netns", "exec", NAMESPACE, str(BIN / "ray"), "start", f"--address={self.address}",
            f"--node-ip-address={NODE_IP}", f"--num-cpus={cpus}", "--disable-usage-stats", env=self.env, timeout=120,
        )
        wait_for(lambda: self.nodes_alive() == 2, 60, "the second node to join")

    def stop_node_in_namespace(self) -> None:
        pids = subprocess.run(["ip", "netns", "pids", NAMESPACE], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)

    def stop(self) -> None:
        if self.has_namespace:
            self.stop_node_in_namespace()
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, env=self.env, timeout=120)

    def nodes_alive(self) -> int:
        script = "import ray; ray.init(address=%r, logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))" % self.address
        return int(run(sys.executable, "-c", script, env=self.env, timeout=120).stdout.split()[-1])

    def kill_actor(self, name: str) -> None:
        script = (
            "import ray; ray.init(address=%r, logging_level='ERROR'); "
            "ray.kill(ray.get_actor(%r, namespace='serve'), no_restart=True)" % (self.address, name)
        )
        run(sys.executable, "-c", script, env=self.env, timeout=120)

    def serving(self, *arguments: str, log: Path) -> contextlib.AbstractContextManager[httpx.Client]:
        """``widgetd serve --ray ARGUMENTS`` on this cluster: see ``running``."""
        return self.running([str(BIN / "widgetd"), "serve", "--ray", "--port", str(self.http_port), *arguments], log=log)

    @contextlib.contextmanager
    def running(self, command: list[str], *, log: Path, ready_timeout: float = 240) -> Iterator[httpx.Client]:
        """``command`` (``widgetd serve --ray``, ``serve run``) deploying widgetd on this cluster, until its /health
        says ok (every model); at the end it gets Ctrl-C, on which both delete the application."""
        with open(log, "w") as output:
            process = subprocess.Popen(
                command, env={**self.env, "RAY_ADDRESS": self.address}, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            with httpx.Client(base_url=self.url, timeout=60) as client:
                wait_for(lambda: healthy(client) or process.poll() is not None, ready_timeout, f"widgetd on Ray to be healthy (log: {log})")
                assert process.poll() is None, log.read_text()[-4000:]
                yield client
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()


def healthy(client: httpx.Client) -> bool:
    """Whether the server answers /health with every model serving."""
    try:
        health = client.get("/health")
        return health.status_code == 200 and health.json()["status"] == "ok"
    except (httpx.HTTPError, ValueError, KeyError):
        return False


def replicas_of(client: httpx.Client, model_id: str, state: str | None = "RUNNING") -> list[dict]:
    """The replicas of ``model_id``'s deployment in ``state`` (None: in any), as the server's /info lists them."""
    info = client.get(f"/models/{model_id}/info").json()
    return [replica for replica in info["models"][0]["deployment"]["replicas"] if state is None or replica["state"] == state]


def wait_for(condition, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = condition()
        if outcome:
            return outcome
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@contextlib.contextmanager
def local_cluster(env: Mapping[str, str], *, namespaced: bool, cpus: int = 6) -> Iterator[Cluster]:
    """A head node (on the veth pair's address when ``namespaced``), stopped and its folder removed at the end."""
    # Ray's socket paths must stay short: its own folder under /tmp.
    temp_dir = Path(tempfile.mkdtemp(prefix="wdray", dir="/tmp"))
    cluster = Cluster(temp_dir, HEAD_IP if namespaced else "127.0.0.1", free_port(), dict(env), has_namespace=namespaced, cpus=cpus)
    cluster.start_head()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
