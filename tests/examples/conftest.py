"""The examples' server (a real process with the models they use) and their runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A server with the default metal and molecular models, EMT, LJ, Morse, REST, a worker."""
    data = tmp_path_factory.mktemp("examples-server")
    env = {"MLIPSERVE_DATA_DIR": str(data), "OMP_NUM_THREADS": "1"}
    srv = ServerProcess(free_port(), "--models", "default,emt,lj,morse,default-molecular", env=env)
    srv.wait_ready()
    yield srv
    srv.terminate()


def run(lab, tmp_path, name: str, *args: str) -> dict:
    """Run examples/NAME.py --small and return its JSON summary."""
    out = tmp_path / name
    cmd = [sys.executable, str(EXAMPLES / f"{name}.py"), "--target", lab.address]
    cmd += ["--url", lab.rest_url, "--small", "--output", str(out), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (
        json.loads(next(out.glob("*.json")).read_text())
        if name != "active_learning"
        else (json.loads((out / "active_learning.json").read_text()))
    )
    assert summary["provenance"]["server"] == lab.address
    assert len(summary["provenance"]["model_sha256"]) == 64
    return summary
