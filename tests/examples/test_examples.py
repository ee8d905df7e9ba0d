"""Every script in examples/ runs against a real server (its --small sizes) and says something
that could be wrong: each is checked against physics or a reference value."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A server with the default model, EMT, LJ and Morse, REST and one queue worker."""
    data = tmp_path_factory.mktemp("examples-server")
    env = {"MLIPSERVE_DATA_DIR": str(data), "OMP_NUM_THREADS": "1"}
    srv = ServerProcess(free_port(), "--models", "default,emt,lj,morse", env=env)
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


def test_every_driver_has_an_example_and_a_test():
    names = {p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_")}
    wanted = {"md", "relax", "neb", "pimd", "blending", "umbrella", "metadynamics"}
    assert names == wanted | {"active_learning", "properties"}
    tested = {n.split("test_")[1].split("_example")[0] for n in globals() if n.endswith("_example")}
    assert tested == names


def test_md_example(lab, tmp_path):
    s = run(lab, tmp_path, "md")
    assert 200 < s["mean_temperature_K"] < 700  # started at 600 K, half goes to the potential
    assert 11.0 < s["volume_per_atom_A3"] < 12.6  # Cu: 11.8 Å³
    assert s["provenance"]["model"] == "default"


def test_relax_example(lab, tmp_path):
    s = run(lab, tmp_path, "relax")
    assert s["converged"] and all(abs(a - 3.59) < 0.03 for a in s["lattice_constant_A"])
    assert all(e < 0 for e in s["relaxation_energy_eV"])


def test_neb_example(lab, tmp_path):
    s = run(lab, tmp_path, "neb", "--model", "emt")
    assert s["converged"] and s["barrier_eV"] == pytest.approx(0.37, abs=0.03)  # ASE tutorial


def test_pimd_example(lab, tmp_path):
    s = run(lab, tmp_path, "pimd")
    assert (
        0.5 * s["classical_eV_per_atom"] < s["kinetic_eV_per_atom"] < 5 * s["classical_eV_per_atom"]
    )


def test_blending_example(lab, tmp_path):
    s = run(lab, tmp_path, "blending", "--model", "morse")
    assert s["force_x"] == pytest.approx(s["fd_force_x"], abs=1e-5)


def test_umbrella_example(lab, tmp_path):
    s = run(lab, tmp_path, "umbrella", "--model", "lj")
    assert s["max_deviation_eV"] < 0.05  # MBAR vs U(r) − 2kT ln r; a wrong bias is ~0.5 eV


def test_metadynamics_example(lab, tmp_path):
    s = run(lab, tmp_path, "metadynamics", "--model", "lj")
    assert abs(s["F_stretched_minus_well_eV"] - s["exact_eV"]) < 0.05


def test_active_learning_example(lab, tmp_path):
    s = run(lab, tmp_path, "active_learning")
    assert s["candidates"] >= 1 and s["labelled"] >= 1


def test_properties_example(lab, tmp_path):
    s = run(lab, tmp_path, "properties")
    c11, c12, c44 = s["C11_C12_C44_GPa"]
    assert c11 > c12 > 0 and c44 > 0 and 120 < (c11 + 2 * c12) / 3 < 160  # EMT Cu: B ≈ 134
