"""Shared fixtures: real gRPC servers on loopback (in a thread or in a subprocess)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import pytest

from mlipserve.server.app import RunningServer, start_server
from mlipserve.server.config import Settings
from mlipserve.server.serving.registry import Registry


class ServerThread:
    """An mlipserve server on an ephemeral loopback port, its event loop in a thread."""

    def __init__(self, settings: Settings | None = None, registry: Registry | None = None):
        self.settings = (settings or Settings(port=0)).model_copy(update={"rest_port": 0})
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.running: RunningServer = self.call(start_server(self.settings, registry))
        self.address = f"127.0.0.1:{self.running.port}"
        self.rest_url = f"http://127.0.0.1:{self.running.rest_port}"

    def call(self, coro):
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    @property
    def registry(self) -> Registry:
        return self.running.registry

    def stop(self) -> None:
        self.call(self.running.stop(0.1))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@pytest.fixture(scope="session")
def emt():
    """ASE's EMT served in-process (the same adapter the server runs), as a ForceProvider."""
    from mlipserve.server.models.builtin import emt_model
    from mlipserve.server.serving.local import LocalProvider

    return LocalProvider(emt_model())


@pytest.fixture(scope="session")
def server():
    """One shared server with every built-in model."""
    srv = ServerThread(Settings(port=0, models=["emt", "lj", "morse", "lj-ensemble", "lj:float32"]))
    yield srv
    srv.stop()


def free_port() -> int:
    """A port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`mlipserve serve` in a child process (for kill tests)."""

    started: list[subprocess.Popen] = []

    def __init__(self, port: int, *args: str, env: dict[str, str] | None = None):
        self.port = port
        self.address = f"127.0.0.1:{port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log = tempfile.NamedTemporaryFile("w+b", prefix="mlipserve-", suffix=".log")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlipserve.cli",
                "serve",
                "--port",
                str(port),
                "--rest-port",
                "0",
                *args,
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        ServerProcess.started.append(self.proc)
        self.wait_ready()

    @property
    def rest_url(self) -> str:
        """The REST address, read from the server's start line."""
        import re

        if not hasattr(self, "_rest_url"):
            line = next(l for l in self.output().splitlines() if "REST on port" in l)
            self.start_line = line
            port = re.search(r"REST on port (\d+)", line).group(1)
            self._rest_url = f"http://127.0.0.1:{port}"
        return self._rest_url

    def output(self) -> str:
        """Everything the server printed so far."""
        with open(self.log.name, "rb") as fh:
            return fh.read().decode(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        channel = grpc.insecure_channel(self.address)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.output()}")
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                    return
                except grpc.FutureTimeoutError:
                    continue
            raise TimeoutError("server did not start")
        finally:
            channel.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session", autouse=True)
def _no_orphan_servers():
    """Whatever a test left running, kill every child server at the end of the session."""
    yield
    for proc in ServerProcess.started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
