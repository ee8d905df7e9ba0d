"""Packaging: every package folder is listed, the stubs are current, the client has no torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for package, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found == listed


@pytest.mark.parametrize("module", ["mlipserve.client", "mlipserve.simulation", "mlipserve.cli"])
def test_thin_client_never_imports_torch(module):
    code = (
        f"import sys, {module}; "
        "bad = [m for m in ('torch', 'vesin', 'fastapi') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_regenerated_stubs_match_committed(tmp_path):
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    out = tmp_path / "protos"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            str(out),
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--pyi_out={out}",
            str(out / "mlipserve/v1/potential.proto"),
        ],
        check=True,
    )
    for name in ("potential_pb2.py", "potential_pb2.pyi", "potential_pb2_grpc.py"):
        committed = (ROOT / "protos/mlipserve/v1" / name).read_text()
        assert (out / "mlipserve/v1" / name).read_text() == committed, name


SOURCE_ROOMS = ("protos/mlipserve", "cli", "client", "server", "simulation")


def test_no_source_module_over_400_lines():
    """Modules stay small (generated protobuf stubs aside); split a long one by what it holds."""
    long = {}
    for room in SOURCE_ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            n = len(path.read_text().splitlines())
            if n > 400 and "_pb2" not in path.name:
                long[str(path.relative_to(ROOT))] = n
    assert not long, long
