"""Stochastic cell rescaling samples NPT: fluctuation bulk modulus = the EOS's, ⟨P⟩ = P₀.

Served models (a pair potential and EMT) through the `server` fixture. Tolerances: three
standard errors (replicas are independent runs) plus 3 % for the quasi-harmonic difference
between the static B(⟨V⟩) of the equation of state and the isothermal B at T.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import bulk

from mlipserve.simulation.md.barostats import StochasticCellRescaling
from mlipserve.simulation.md.driver import MolecularDynamics
from mlipserve.simulation.md.integrators import BerendsenBarostat, langevin_baoab
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.properties.fluctuations import (
    energy_volume_scan,
    eos_bulk_modulus,
    fluctuation_bulk_modulus,
)
from mlipserve.simulation.provider import RemoteProvider

AXES = StochasticCellRescaling(1.0).axis_pressure  # P_xx, P_yy, P_zz of a state


def _npt(provider, atoms, replicas, temperature_K, dt_fs, steps, barostat, skip=200):
    """Volumes, pressures, conserved energies (steps, R) and axis pressures (steps, R, 3)."""
    state = MDState.from_atoms(
        [atoms.copy() for _ in range(replicas)], temperature_K, range(7, 7 + replicas)
    )
    md = MolecularDynamics(
        provider, state, langevin_baoab(dt_fs * units.fs, temperature_K, 0.02 / units.fs), barostat
    )
    rows: list[tuple] = []
    md.attach(
        lambda: rows.append(
            (md.state.volume, md.state.pressure, md.state.conserved_energy, AXES(md.state))
        )
    )
    md.run(steps)
    volumes, pressures, conserved, axes = (np.array(x) for x in zip(*rows))
    return volumes[skip:], pressures[skip:], conserved, axes[skip:]


def check_npt(volumes, pressures, t, vols, energies, target, p_slack=0.0) -> float:
    """B from volume fluctuations = the EOS's B(⟨V⟩) and ⟨P⟩ = target; returns the EOS's V₀."""
    b, err = fluctuation_bulk_modulus(volumes, t)
    b_eos, v0 = eos_bulk_modulus(vols, energies, at_volume=volumes.mean())
    assert abs(b - b_eos) < 3 * err + 0.03 * b_eos, (b, err, b_eos)
    p_err = pressures.mean(0).std(ddof=1) / np.sqrt(pressures.shape[1])
    assert abs(pressures.mean() - target) < 3 * p_err + p_slack
    return v0


@pytest.fixture(scope="module")
def argon(server):
    provider = RemoteProvider(server.address, "lj")
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True)
    vols, energies = energy_volume_scan(provider, atoms)
    _, v0 = eos_bulk_modulus(vols, energies)
    atoms.set_cell(atoms.cell * (v0 / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
    yield provider, atoms, vols, energies
    provider.close()


def test_isotropic_scr_samples_the_volume_fluctuations_of_npt(argon):
    provider, atoms, vols, energies = argon
    t = 5.0
    scr = StochasticCellRescaling(t, 0.0, tau=100 * units.fs, compressibility=1 / (3 * units.GPa))
    volumes, pressures, conserved, _ = _npt(provider, atoms, 16, t, 5, 1500, scr)
    v0 = check_npt(volumes, pressures, t, vols, energies, 0.0)
    assert abs(volumes.mean() / v0 - 1) < 0.01  # thermal expansion at 5 K is ~0.6 %
    drift = np.abs(conserved[-1] - conserved[0]).max() / len(atoms)
    assert drift < 1e-4, drift  # the barostat's work is booked like the thermostat's


def test_berendsen_does_not_sample_the_fluctuations(argon):
    provider, atoms, vols, energies = argon
    t = 5.0
    weak = BerendsenBarostat(0.0, tau=100 * units.fs, compressibility=1 / (3 * units.GPa))
    volumes, *_ = _npt(provider, atoms, 8, t, 5, 800, weak)
    b, _ = fluctuation_bulk_modulus(volumes, t)
    b_eos, _ = eos_bulk_modulus(vols, energies, at_volume=volumes.mean())
    assert b > 1.5 * b_eos  # too small volume fluctuations: what the test above rules out


def test_anisotropic_scr_brings_each_axis_to_the_target_pressure(argon):
    provider, atoms, vols, energies = argon
    t, target = 5.0, 0.05 * units.GPa
    scr = StochasticCellRescaling(
        t, target, tau=100 * units.fs, compressibility=1 / (3 * units.GPa), anisotropic=True
    )
    volumes, pressures, _, axes = _npt(provider, atoms, 16, t, 5, 1500, scr)
    v0 = check_npt(volumes, pressures, t, vols, energies, target, 0.02 * target)
    per_replica = axes.mean(0)  # (R, 3): each axis is controlled on its own
    errors = per_replica.std(0, ddof=1) / np.sqrt(len(per_replica))
    assert np.all(np.abs(per_replica.mean(0) - target) < 3 * errors + 0.02 * target), (
        per_replica.mean(0) / units.GPa,
        errors / units.GPa,
    )
    assert volumes.mean() < v0  # compressed by P₀ (~1.8 %)


def test_scr_on_a_served_emt_metal(server):
    provider = RemoteProvider(server.address, "emt")
    try:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        vols, energies = energy_volume_scan(provider, atoms)
        _, v0 = eos_bulk_modulus(vols, energies)
        atoms.set_cell(atoms.cell * (v0 / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
        t = 100.0
        scr = StochasticCellRescaling(
            t, 0.0, tau=50 * units.fs, compressibility=1 / (140 * units.GPa)
        )
        volumes, pressures, _, _ = _npt(provider, atoms, 12, t, 2, 500, scr, skip=100)
    finally:
        provider.close()
    check_npt(volumes, pressures, t, vols, energies, 0.0)


def test_bad_barostat_settings_are_refused():
    with pytest.raises(ValueError, match="positive"):
        StochasticCellRescaling(0.0)
    with pytest.raises(ValueError, match="positive"):
        StochasticCellRescaling(300.0, tau=0.0)
    state = MDState.from_atoms(bulk("Cu", cubic=True), 300.0)
    state = state.replace(pbc=np.array([[True, True, False]]))
    with pytest.raises(ValueError, match="periodic"):
        StochasticCellRescaling(300.0).check(state)
