"""``widgetd serve`` as a real process on loopback, for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

import httpx

from widgetd.testing.server import free_port


class ServeProcess:
    """Starts ``widgetd serve ARGS`` on a free port; ``output`` holds what it printed."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "widgetd", "serve", "--port", str(self.port), *args]
        # A file, not a pipe: progress bars could fill a pipe nobody reads and stall the server.
        self._log = tempfile.TemporaryFile(mode="w+")
        self._process = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdout=self._log, stderr=subprocess.STDOUT, text=True
        )
        self.output = ""

    def wait_ready(self, timeout: float = 180) -> ServeProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"widgetd serve exited with {self._process.returncode}:\n{self.stop()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).json().get("status") == "ok":
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"widgetd serve not ready after {timeout}s:\n{self.stop()}")

    @property
    def pid(self) -> int:
        return self._process.pid

    def resident_bytes(self) -> int:
        """The process's resident memory (Linux), for tests of how much it keeps."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kilobytes) * 1024

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stops a server; ``wait_exit`` then waits for it to end."""
        self._process.terminate()

    def wait_exit(self, timeout: float = 120) -> int:
        self._process.wait(timeout=timeout)
        self.stop()
        return self._process.returncode

    def stop(self) -> str:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
        if not self._log.closed:
            self._log.seek(0)
            self.output = self._log.read()
            self._log.close()
        return self.output

    def __enter__(self) -> ServeProcess:
        return self.wait_ready()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
