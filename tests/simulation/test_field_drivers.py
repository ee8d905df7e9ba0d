"""Field sweep and constant-potential MD on a served field-conditioned model (biased weights)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import molecule

from mlipserve.server.models.builtin import load_builtin
from mlipserve.server.models.families import native_potential
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation.md.constant_potential import constant_potential_md
from mlipserve.simulation.md.integrators import velocity_verlet
from mlipserve.simulation.properties.field_sweep import field_sweep, plot_field_sweep
from tests.server.models.test_field import field_module


@pytest.fixture(scope="module")
def provider():
    return LocalProvider(native_potential(field_module(), "field"))


def test_field_sweep_in_one_call_matches_single_fields(provider, tmp_path):
    water = molecule("H2O")
    sweep = field_sweep(provider, water, direction=(1, 1, 0), max_field=0.08, points=5)
    assert sweep.fields.shape == (5, 3) and np.allclose(sweep.fields[0], -sweep.fields[-1])
    single = water.copy()
    single.info["external_field"] = sweep.fields[1]
    ref = provider.evaluate([single], ["energy", "forces", "dipole", "born_charges"])[0]
    assert np.allclose(sweep.dipole[1], ref["dipole"], atol=1e-12)
    assert np.allclose(sweep.born_charges[1], ref["born_charges"], atol=1e-12)
    # the polarizability from the dipole's slope equals dμ/dE by finite differences
    h = 1e-4
    plus, minus = water.copy(), water.copy()
    plus.info["external_field"], minus.info["external_field"] = h * np.eye(3)[0], -h * np.eye(3)[0]
    mu = [provider.evaluate([a], ["dipole"])[0]["dipole"] for a in (plus, minus)]
    alpha_x = (mu[0] - mu[1]) / (2 * h)
    sweep_x = field_sweep(provider, water, direction=(1, 0, 0), max_field=1e-3, points=3)
    assert np.allclose(sweep_x.polarizability()[:, 0], alpha_x, rtol=1e-3, atol=1e-6)
    png = plot_field_sweep(sweep, tmp_path / "sweep.png", title="H2O")
    assert png.stat().st_size > 10_000


def test_constant_potential_md_conserves_omega_and_moves_the_charge():
    """On the shipped (trained) field model: water at two Fermi levels, NVE."""
    provider = LocalProvider(load_builtin("field-molecules-xtb:float64"))
    water = molecule("H2O")
    md, log = constant_potential_md(
        provider, [water, water], fermi_level=[-5.0, -4.0],
        integrator=velocity_verlet(0.5 * units.fs), temperature_K=300, seeds=[0, 0],
    )  # fmt: skip
    md.run(200)
    data = log.arrays()
    charge = data["charge"]  # (T, R)
    assert charge.shape == (201, 2)
    assert np.ptp(charge[:, 0]) > 1e-4  # the electron number follows the geometry
    assert charge[0, 0] > charge[0, 1]  # same start: a higher μe holds more electrons
    drift = np.abs(data["conserved"] - data["conserved"][0]).max()
    swing = np.ptp(data["grand_potential"], axis=0).min()
    assert drift < 0.05 * swing, (drift, swing)  # Ω + kinetic energy is conserved
    last = md.state.to_atoms(0)  # the logged charge is the model's at that state
    assert last.info["fermi_level"] == -5.0
    direct = provider.evaluate([last], ["energy", "charges"])[0]["charges"].sum()
    assert direct == pytest.approx(charge[-1, 0], abs=1e-10)
