"""Conductivity of molten NaCl on the served Fumi–Tosi rigid-ion model: Einstein and
Green–Kubo from one batched NVE run agree within their error bars; the CLI writes them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from typer.testing import CliRunner

from mlipserve.cli import app
from mlipserve.server.config import Settings
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import langevin_baoab
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.properties.conductivity import conductivity_md
from mlipserve.simulation.provider import RemoteProvider
from tests.conftest import ServerThread

CHARGES = {"Na": 1.0, "Cl": -1.0}


@pytest.fixture(scope="module")
def served():
    srv = ServerThread(Settings(port=0, models=["nacl-rigid-ion"]))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def melt(served):
    """64 ions at the melt's density, disordered by 150 Langevin steps at 3000 K."""
    crystal = bulk("NaCl", "rocksalt", a=5.64 * 1.1, cubic=True) * (2, 2, 2)
    provider = RemoteProvider(served.address, "nacl-rigid-ion")
    state = MDState.from_atoms([crystal], temperature_K=3000, seeds=[1])
    md = MolecularDynamics(
        provider, state, langevin_baoab(2 * units.fs, temperature_K=3000, friction=0.05 / units.fs)
    )
    md.run(150)
    atoms = md.state.to_atoms(0)
    atoms.set_momenta(np.zeros((len(atoms), 3)))
    provider.close()
    return atoms


def test_einstein_and_green_kubo_agree_on_the_served_rigid_ion_melt(served, melt):
    provider = RemoteProvider(served.address, "nacl-rigid-ion")
    run = conductivity_md(
        provider, melt, CHARGES, temperature_K=1500, replicas=4, dt_fs=2.5,
        equilibration_steps=120, steps=500, sample_every=2, seed=3,
    )  # fmt: skip
    res = run.result
    assert run.calls == 1 + 120 + 500  # one call per step for all four replicas
    assert 1200 < run.temperature_K < 1800
    einstein, gk = res.einstein_S_m, res.green_kubo_S_m
    assert gk is not None
    combined = np.hypot(einstein.error, gk.error)
    assert abs(einstein.value - gk.value) < 2.5 * combined, (einstein, gk)
    # molten NaCl: ~360 S/m measured near 1100 K; the Fumi–Tosi melt is of that order
    assert 80 < einstein.value < 1500 and 80 < gk.value < 1500, (einstein, gk)
    for d in res.tracer_A2_ps.values():  # ~1 Å²/ps (1e-4 cm²/s) in the melt
        assert 0.1 < d.value < 5.0, res.tracer_A2_ps
    assert 0.1 < res.haven.value < 3.0


def test_cli_writes_conductivity_json_and_png(served, melt, tmp_path):
    structure = tmp_path / "melt.extxyz"
    melt.write(structure)
    out = tmp_path / "sigma.json"
    args = ["props", "conductivity", str(structure), "--charges", "Na=1,Cl=-1",
            "--replicas", "2", "--steps", "40", "--equilibration", "0", "--sample-every", "1",
            "--target", served.address, "--model", "nacl-rigid-ion",
            "--output", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["provenance"]["model"] == "nacl-rigid-ion"
    assert data["force_calls"] == 41
    assert "Haven ratio" in result.output and out.with_suffix(".png").stat().st_size > 10_000
    bad = CliRunner().invoke(app, [*args[:4], "Na=1", *args[5:]])
    assert bad.exit_code == 2 and "no charge for Cl" in bad.output
