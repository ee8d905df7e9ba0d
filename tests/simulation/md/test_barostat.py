"""Stochastic cell rescaling samples NPT: fluctuation bulk modulus = the EOS's, ⟨P⟩ = P₀.

Served models (a pair potential and EMT) through the `server` fixture. Tolerances: three
standard errors (replicas are independent runs) plus 3 % for the quasi-harmonic difference
between the static B(⟨V⟩) of the equation of state and the isothermal B at T. The fully
flexible barostat's shear fluctuations give C44 = k_BT / (⟨V⟩ ⟨γ²⟩) (γ the engineering shear
strain, h_yz/h_zz ...), held to the static stress–strain C44 at ⟨V⟩ within the same three
standard errors plus 3 % (quasi-harmonic, and the ~1 % that the reference's thermal stress
of ~0.02 GPa at ⟨V⟩ puts into the stress–strain coefficient).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import bulk

from mlipserve.simulation.md.barostats import StochasticCellRescaling
from mlipserve.simulation.md.driver import MolecularDynamics
from mlipserve.simulation.md.flexible_cell import pressure_tensor
from mlipserve.simulation.md.integrators import BerendsenBarostat, langevin_baoab
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.properties.elastic import elastic_tensor
from mlipserve.simulation.properties.fluctuations import (
    energy_volume_scan,
    eos_bulk_modulus,
    fluctuation_bulk_modulus,
)
from mlipserve.simulation.provider import RemoteProvider

AXES = StochasticCellRescaling(1.0).axis_pressure  # P_xx, P_yy, P_zz of a state


def _npt(provider, atoms, replicas, temperature_K, dt_fs, steps, barostat, skip=200, extra=None):
    """Volumes, pressures, conserved energies (steps, R), axis pressures (steps, R, 3).

    With `extra` (a function of the state) its values per step come fifth, after `skip`.
    """
    state = MDState.from_atoms(
        [atoms.copy() for _ in range(replicas)], temperature_K, range(7, 7 + replicas)
    )
    md = MolecularDynamics(
        provider, state, langevin_baoab(dt_fs * units.fs, temperature_K, 0.02 / units.fs), barostat
    )
    rows: list[tuple] = []
    extras: list = []
    md.attach(
        lambda: rows.append(
            (md.state.volume, md.state.pressure, md.state.conserved_energy, AXES(md.state))
        )
    )
    if extra is not None:
        md.attach(lambda: extras.append(extra(md.state)))
    md.run(steps)
    volumes, pressures, conserved, axes = (np.array(x) for x in zip(*rows))
    out = volumes[skip:], pressures[skip:], conserved, axes[skip:]
    return out if extra is None else (*out, extras[skip:])


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


def _shear(state: MDState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Engineering shear strains γ_yz γ_xz γ_xy (R, 3), shear pressures (R, 3), cells (R, 3, 3)."""
    c = state.cell  # rows lower triangular: γ_yz = h_yz / h_zz = c[2, 1] / c[2, 2], ...
    gamma = np.stack([c[:, 2, 1] / c[:, 2, 2], c[:, 2, 0] / c[:, 2, 2], c[:, 1, 0] / c[:, 1, 1]], 1)
    return gamma, pressure_tensor(state)[:, [1, 0, 0], [2, 2, 1]], c.copy()


@pytest.fixture(scope="module")
def full_npt(argon):
    """One fully flexible run of served LJ argon for the tests below (32 replicas, 4 ps)."""
    provider, atoms, *_ = argon
    t = 5.0
    scr = StochasticCellRescaling(
        t, 0.0, tau=50 * units.fs, compressibility=1 / (3 * units.GPa), anisotropic="full"
    )
    run = _npt(provider, atoms, 32, t, 5, 800, scr, skip=100, extra=_shear)
    volumes, pressures, conserved, _, extra = run
    gamma, shear_p, cells = (np.array(x) for x in zip(*extra))
    return t, volumes, pressures, conserved, gamma, shear_p, cells


def test_full_scr_reproduces_the_isotropic_npt(argon, full_npt):
    provider, atoms, vols, energies = argon
    t, volumes, pressures, conserved, *_ = full_npt
    v0 = check_npt(volumes, pressures, t, vols, energies, 0.0)
    assert abs(volumes.mean() / v0 - 1) < 0.01
    drift = np.abs(conserved[-1] - conserved[0]).max() / len(atoms)
    assert drift < 1e-4, drift  # six strains' work booked, all six stress components


def test_full_scr_shears_the_cell_at_zero_mean_shear_pressure(full_npt):
    *_, gamma, shear_p, cells = full_npt
    assert np.all(cells[:, :, [0, 0, 1], [1, 2, 2]] == 0)  # stays triangular: no rotation
    assert np.sqrt((gamma**2).mean()) > 0.005  # it shears (~0.015 rms at 5 K), not frozen
    assert np.all(np.abs(gamma).max(axis=(0, 1)) > 0.02)  # in each of the three planes
    per_replica = shear_p.mean(0)  # (R, 3)
    errors = per_replica.std(0, ddof=1) / np.sqrt(len(per_replica))
    assert np.all(np.abs(per_replica.mean(0)) < 3 * errors), (
        per_replica.mean(0) / units.GPa,
        errors / units.GPa,
    )


def test_full_scr_shear_fluctuations_give_c44(argon, full_npt):
    provider, atoms, *_ = argon
    t, volumes, _, _, gamma, _, _ = full_npt
    kt, v = units.kB * t, volumes.mean()
    per_replica = (gamma**2).mean(axis=(0, 2))  # ⟨γ²⟩ of each replica, three planes pooled
    c44 = kt / (v * per_replica.mean()) / units.GPa
    err = c44 * per_replica.std(ddof=1) / np.sqrt(len(per_replica)) / per_replica.mean()
    at_mean = atoms.copy()
    at_mean.set_cell(atoms.cell * (v / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
    static = elastic_tensor(provider, at_mean).C[[3, 4, 5], [3, 4, 5]].mean()
    assert abs(c44 - static) < 3 * err + 0.03 * static, (c44, err, static)


def test_bad_full_scr_input_is_refused():
    state = MDState.from_atoms(bulk("Cu", cubic=True), 300.0)
    full = StochasticCellRescaling(300.0, anisotropic="full")
    for bad in ("shear", 2, None):
        with pytest.raises(ValueError, match="anisotropic must be"):
            StochasticCellRescaling(300.0, anisotropic=bad)
    with pytest.raises(ValueError, match="periodic"):
        full.check(state.replace(pbc=np.array([[True, False, True]])))
    rotated = state.cell @ np.array([[0.8, 0.6, 0.0], [-0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="triangular"):
        full.check(state.replace(cell=rotated))
    with pytest.raises(ValueError, match="right-handed"):
        full.check(state.replace(cell=state.cell * np.array([1.0, 1.0, -1.0])[:, None]))
    with pytest.raises(ValueError, match="stress"):
        full.scale(state, 2 * units.fs)
    stressed = state.replace(stress=np.full((1, 6), 0.1), energy=np.zeros(1))
    soft = StochasticCellRescaling(300.0, compressibility=1e3, anisotropic="full")
    with pytest.raises(ValueError, match="unstable"):
        soft.scale(stressed, 2 * units.fs)
    assert full.mode == "full" and StochasticCellRescaling(1.0, anisotropic=True).mode == "diagonal"
