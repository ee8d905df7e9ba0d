"""The command line: serve from settings, eval a structure file, list models."""

from __future__ import annotations

import os
import subprocess
import sys

import ase.io
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from mlipserve.server.config import Settings
from tests.conftest import ServerProcess, free_port


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, **kwargs
) -> subprocess.CompletedProcess:
    """`mlipserve ARGS` in a child process, output captured, rich tables unwrapped."""
    env = {**os.environ, "COLUMNS": "200", **(env or {})}  # rich tables unwrapped
    return subprocess.run(
        [sys.executable, "-m", "mlipserve.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("MLIPSERVE_PORT", "6000")
    monkeypatch.setenv("MLIPSERVE_MODELS", '["lj"]')
    monkeypatch.setenv("MLIPSERVE_BATCHING", "false")
    settings = Settings()
    assert (settings.port, settings.models, settings.batching) == (6000, ["lj"], False)


def test_serve_then_eval_and_models(tmp_path):
    frames = [bulk("Cu", cubic=True) * (2, 1, 1), bulk("Au", cubic=True)]
    for f in frames:
        f.rattle(0.03, seed=2)
    path = tmp_path / "in.extxyz"
    ase.io.write(path, frames)
    server = ServerProcess(free_port())  # embedded defaults
    try:
        out = tmp_path / "out.extxyz"
        done = cli(
            "eval",
            str(path),
            "--target",
            server.address,
            "--model",
            "emt",
            "--stress",
            "--output",
            str(out),
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "emt@ase" in done.stdout
        written = ase.io.read(out, index=":")
        for frame, result in zip(ase.io.read(path, index=":"), written):
            frame.calc = EMT()
            assert np.isclose(result.get_potential_energy(), frame.get_potential_energy())
            assert np.allclose(result.get_forces(), frame.get_forces())
            assert result.info["provenance_model"] == "emt"
            assert result.info["provenance_server"] == server.address
            assert len(result.info["provenance_model_sha256"]) == 64
        listed = cli("models", "list", "--url", server.rest_url)
        assert "lj-ensemble" in listed.stdout and "emt" in listed.stdout, (
            listed.stdout + listed.stderr
        )
        refused = cli("models", "unload", "lj", "builtin-1", "--url", server.rest_url)
        assert refused.returncode == 1 and "default version" in refused.stdout
        bad = cli("eval", str(path), "--target", server.address, "--model", "nope")
        assert bad.returncode == 1 and "unknown model 'nope'" in bad.stdout
    finally:
        server.terminate()
    log = server.output()
    assert "mlipserve gRPC on 127.0.0.1" in log and "lj-ensemble@builtin-1" in log


def test_serve_refuses_an_unknown_model_with_a_clear_message():
    done = cli("serve", "--models", "lj,nope", "--port", "0")
    assert done.returncode == 2
    assert "unknown built-in model 'nope'" in done.stdout


def test_serve_on_a_port_in_use_says_so_in_one_line():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        grpc_busy = cli("serve", "--port", port, "--rest-port", "0", "--models", "lj")
        rest_busy = cli("serve", "--port", "0", "--rest-port", port, "--models", "lj")
    assert grpc_busy.returncode == 2 and rest_busy.returncode == 2
    assert f"cannot listen for gRPC on 127.0.0.1:{port}" in grpc_busy.stdout
    assert f"cannot listen for REST on 127.0.0.1:{port}" in rest_busy.stdout
    for done in (grpc_busy, rest_busy):
        assert "Traceback" not in done.stdout + done.stderr
