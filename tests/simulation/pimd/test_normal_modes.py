"""Normal modes, exact free ring-polymer steps, NVE conservation and P = 1 = classical MD."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from ase import Atoms, units
from ase.cluster import Icosahedron
from ase.io import read as ase_read

from mlipserve.server.models.analytic import double_well
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import langevin_baoab
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.pimd import (
    PILE_G,
    PILE_L,
    NormalModes,
    PathIntegralMD,
    PIMDIntegrator,
    RingPolymerState,
)
from mlipserve.simulation.pimd.estimators import conserved_quantity, ring_polymer_hamiltonian
from mlipserve.simulation.pimd.normal_modes import HBAR, normal_mode_matrix

T = 300.0


def laplacian(p: int) -> np.ndarray:
    """Cyclic second-difference matrix 2I − S − Sᵀ: Σ_j |q_j − q_{j+1}|² = qᵀ L q."""
    shift = np.roll(np.eye(p), 1, axis=1)
    return 2 * np.eye(p) - shift - shift.T


@pytest.mark.parametrize("p", [1, 2, 5, 8, 32])
def test_transform_is_orthonormal_and_diagonalises_the_springs(p: int) -> None:
    """C is orthonormal (round trip to 1e-12) and CᵀLC = diag(ω_k²/ω_P²) from numpy's eigvalsh."""
    c = normal_mode_matrix(p)
    np.testing.assert_allclose(c.T @ c, np.eye(p), atol=1e-12)
    modes = NormalModes(p, T)
    omega_p = p * units.kB * T / HBAR
    np.testing.assert_allclose(
        c.T @ laplacian(p) @ c, np.diag(modes.omega**2) / omega_p**2, atol=1e-12
    )
    np.testing.assert_allclose(
        np.sort(modes.omega**2 / omega_p**2), np.sort(np.linalg.eigvalsh(laplacian(p))), atol=1e-12
    )
    q = np.random.default_rng(p).normal(size=(3, p, 4, 3))
    np.testing.assert_allclose(modes.to_beads(modes.to_modes(q)), q, atol=1e-12)
    np.testing.assert_allclose(modes.to_modes(q)[:, 0], np.sqrt(p) * q.mean(1), atol=1e-12)


@pytest.mark.parametrize("p", [1, 6])
def test_free_step_matches_the_exact_linear_flow(p: int) -> None:
    """Free step = expm(dt·[[0, 1/m], [−m ω_P² L, 0]]) applied in bead space (rtol 1e-9)."""
    masses = np.array([1.008, 12.0])
    modes = NormalModes(p, T)
    rng = np.random.default_rng(1)
    q = rng.normal(size=(1, p, 2, 3)) * 0.1
    pm = rng.normal(size=(1, p, 2, 3))
    dt = 3 * units.fs
    new_q, new_p = modes.free_step(q, pm, masses, dt)
    for i, m in enumerate(masses):
        z = np.zeros((p, p))
        flow = np.block([[z, np.eye(p) / m], [-m * modes.omega_p**2 * laplacian(p), z]])
        prop = scipy.linalg.expm(flow * dt)
        for d in range(3):
            ref = prop @ np.concatenate([q[0, :, i, d], pm[0, :, i, d]])
            np.testing.assert_allclose(new_q[0, :, i, d], ref[:p], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(new_p[0, :, i, d], ref[p:], rtol=1e-9, atol=1e-12)


def well_state(p: int) -> tuple[LocalProvider, RingPolymerState]:
    """Two H atoms in an anharmonic double well (0.1 eV barrier), beads spread by a rattle."""
    provider = LocalProvider(double_well(height=0.1, a=0.5, k_perp=2.0))
    atoms = Atoms("H2", positions=[[0.4, 0.0, 0.1], [-0.45, 0.1, 0.0]])
    state = RingPolymerState.from_atoms(atoms, p, T, seeds=3)
    rng = np.random.default_rng(4)
    return provider, state.replace(positions=state.positions + rng.normal(0, 0.05, (1, p, 2, 3)))


def energy_error(dt_fs: float, steps: int) -> tuple[float, float]:
    """Largest |H_P(t) − H_P(0)| of an NVE ring polymer over `steps` steps of dt, and the
    range of its kinetic energy (the energy that sloshes between kinetic and potential)."""
    provider, state = well_state(4)
    pimd = PathIntegralMD(provider, state, PIMDIntegrator(dt_fs * units.fs, None, "BAB"))
    h0 = ring_polymer_hamiltonian(pimd.state)[0]
    err, kinetic = 0.0, []
    for _ in range(steps):
        pimd.step()
        err = max(err, abs(ring_polymer_hamiltonian(pimd.state)[0] - h0))
        kinetic.append(pimd.state.kinetic_energy[0])
    assert pimd.state.thermostat_energy[0] == 0.0
    return err, float(np.ptp(kinetic))


def test_nve_ring_polymer_conserves_its_hamiltonian_with_dt_squared_error() -> None:
    """NVE (BAB, exact springs) in an anharmonic well over 20 fs: max |ΔH_P| shrinks 4× (3–5)
    when dt halves, and at 0.5 fs is below 0.3 % of the kinetic energy's swing (~1.3 eV)."""
    (coarse, _), (fine, swing) = energy_error(1.0, 20), energy_error(0.5, 40)
    assert 3.0 < coarse / fine < 5.0, (coarse, fine)
    assert swing > 0.5
    assert fine < 3e-3 * swing


@pytest.mark.parametrize("thermostat", [PILE_L(20 * units.fs), PILE_G(20 * units.fs)])
def test_thermostat_energy_bookkeeping_keeps_the_conserved_quantity(thermostat) -> None:
    """With PILE-L/G on, H_P/P moves by > 50 meV; (H_P + ethermo)/P stays within 2 % of that."""
    provider, state = well_state(4)
    pimd = PathIntegralMD(provider, state, PIMDIntegrator(0.5 * units.fs, thermostat))
    c0, h0 = conserved_quantity(pimd.state)[0], ring_polymer_hamiltonian(pimd.state)[0] / 4
    cons, ham = [], []
    for _ in range(150):
        pimd.step()
        cons.append(conserved_quantity(pimd.state)[0] - c0)
        ham.append(ring_polymer_hamiltonian(pimd.state)[0] / 4 - h0)
    spread = np.ptp(ham)
    assert spread > 0.05
    assert np.max(np.abs(cons)) < 0.02 * spread


def test_one_bead_is_classical_langevin_md(tmp_path) -> None:
    """P = 1 with PILE-L(τ) follows the same trajectory as md.py's BAOAB Langevin with
    friction 1/τ (same seeds, same start) to 1e-9 Å: 13 Ar atoms with LJ, 30 steps; the
    centroid file holds frames 0, 10, 20, 30."""
    atoms = Icosahedron("Ar", 2, latticeconstant=5.3)
    atoms.set_momenta(np.random.default_rng(0).normal(0, 0.3, (13, 3)))
    provider = LocalProvider("lj")
    tau, dt = 50 * units.fs, 5 * units.fs
    md = MolecularDynamics(
        provider, MDState.from_atoms(atoms, seeds=7), langevin_baoab(dt, T, 1.0 / tau)
    )
    rp = RingPolymerState.from_atoms(atoms, 1, T, seeds=7, thermal_momenta=False)
    pimd = PathIntegralMD(provider, rp, PIMDIntegrator(dt, PILE_L(tau)))
    md.run(30)
    paths = pimd.write_centroids(str(tmp_path / "centroid.extxyz"), interval=10)
    pimd.run(30)
    frames = ase_read(paths[0], ":")
    assert len(frames) == 4 and frames[-1].info["step"] == 30
    np.testing.assert_allclose(frames[-1].positions, pimd.state.positions[0, 0], atol=1e-6)
    moved = np.abs(md.state.positions - atoms.positions).max()
    assert moved > 0.05
    np.testing.assert_allclose(pimd.state.positions[0, 0], md.state.positions, atol=1e-9)
    np.testing.assert_allclose(pimd.state.thermostat_energy, md.state.thermostat_energy, atol=1e-9)


def test_bad_input_is_refused() -> None:
    """Clear ValueErrors for zero beads, mixed replicas, an O step without a thermostat."""
    with pytest.raises(ValueError, match="n_beads"):
        RingPolymerState.from_atoms(Atoms("H"), 0, T)
    with pytest.raises(ValueError, match="replica 1"):
        RingPolymerState.from_atoms([Atoms("H"), Atoms("He")], 2, T)
    with pytest.raises(ValueError, match="temperature"):
        RingPolymerState.from_atoms(Atoms("H"), 2, 0.0)
    with pytest.raises(ValueError, match="thermostat"):
        PIMDIntegrator(units.fs, None, "BAOAB")
    with pytest.raises(ValueError, match="letters"):
        PIMDIntegrator(units.fs, PILE_L(), "BAXB")
    with pytest.raises(ValueError, match="tau"):
        PILE_L(tau=0.0)
