"""Per-element centroid-virial kinetic energy against the harmonic oscillator's exact result.

H and O atoms sit in one isotropic trap V = ½ k |q|² (k = m_H ω_H², ħω_H = 0.0076 Ha, so
βħω_H = 8 and βħω_O ≈ 2 at 300 K). Ring-polymer configurations are drawn exactly from their
Gaussian distribution ∝ exp(−β_P [Σ_j ½ m ω_P² (x_j − x_j+1)² + ½ m ω² x_j²]) per Cartesian
component (β_P = β/P, ω_P = P/(βħ); covariance from the cyclic P × P precision matrix, built
here and not taken from the code under test), forces are −k q, and the estimator's average
is compared with the P → ∞ quantum result: the energy ħω/2 coth(βħω/2) per degree of freedom
is half kinetic (virial theorem), so K = 3ħω/4 coth(βħω/2) per atom.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.data import atomic_masses, atomic_numbers

from mlipserve.simulation.pimd import RingPolymerState
from mlipserve.simulation.pimd.estimators import (
    kinetic_centroid_virial,
    kinetic_centroid_virial_by_species,
)

HBAR = units._hbar * units.J * units.s
T = 300.0
M_H, M_O = atomic_masses[atomic_numbers["H"]], atomic_masses[atomic_numbers["O"]]
K_TRAP = M_H * (0.0076 * units.Hartree / HBAR) ** 2
N_EACH, REPLICAS = 64, 16


def sample_state(p: int, seed: int = 0) -> RingPolymerState:
    """REPLICAS exact ring-polymer samples of N_EACH H and N_EACH O atoms, forces −k q."""
    rng = np.random.default_rng(seed)
    beta = 1.0 / (units.kB * T)
    beta_p, omega_p = beta / p, p / (beta * HBAR)
    laplacian = 2 * np.eye(p) - np.roll(np.eye(p), 1, 0) - np.roll(np.eye(p), -1, 0)
    if p == 1:
        laplacian = np.zeros((1, 1))
    positions = np.zeros((REPLICAS, p, 2 * N_EACH, 3))
    for i, mass in enumerate((M_H, M_O)):
        precision = beta_p * (mass * omega_p**2 * laplacian + K_TRAP * np.eye(p))
        chol = np.linalg.cholesky(np.linalg.inv(precision))
        x = np.einsum("jk,rnkd->rjnd", chol, rng.standard_normal((REPLICAS, N_EACH, p, 3)))
        positions[:, :, i * N_EACH : (i + 1) * N_EACH] = x
    masses = np.array([M_H] * N_EACH + [M_O] * N_EACH)
    state = RingPolymerState(
        positions=positions,
        momenta=np.zeros_like(positions),
        masses=masses,
        numbers=np.array([1] * N_EACH + [8] * N_EACH),
        cell=np.tile(np.eye(3) * 50.0, (REPLICAS, 1, 1)),
        pbc=np.zeros((REPLICAS, 3), bool),
        temperature_K=T,
        rngs=[np.random.default_rng(r) for r in range(REPLICAS)],
        thermostat_energy=np.zeros(REPLICAS),
    )
    energies = 0.5 * K_TRAP * np.einsum("rpnd,rpnd->rp", positions, positions)
    return state.replace(forces=-K_TRAP * positions, energies=energies)


def quantum(mass: float) -> float:
    """Exact kinetic energy per atom: 3 dof × ½ × ħω/2 coth(βħω/2), ω = √(k/m)."""
    hw = HBAR * np.sqrt(K_TRAP / mass)
    return 0.75 * hw / np.tanh(hw / (2 * units.kB * T))


def test_species_kinetic_matches_harmonic_quantum_result() -> None:
    """P = 128 (finite-P bias < 0.1 %): ⟨K_H⟩, ⟨K_O⟩ within 1.5 % (≈ 4 standard errors) of
    3ħω/4·coth(βħω/2) ≈ 155.2 / 51.0 meV, i.e. 4.0 / 1.3 × 3/2 kT (38.8 meV)."""
    samples = [kinetic_centroid_virial_by_species(sample_state(128, seed)) for seed in range(4)]
    for symbol, mass in (("H", M_H), ("O", M_O)):
        values = np.concatenate([s[symbol] for s in samples])
        mean, err = values.mean(), values.std(ddof=1) / np.sqrt(len(values))
        exact = quantum(mass)
        assert abs(mean - exact) < max(4 * err, 0.015 * exact), (symbol, mean, exact, err)
        assert err < 0.005 * exact
        assert mean > {"H": 3.5, "O": 1.25}[symbol] * 1.5 * units.kB * T
    assert quantum(M_H) * 1e3 == pytest.approx(155.21, abs=0.02)  # i-PI trial note's number


def test_species_kinetic_is_classical_at_one_bead_and_sums_to_total() -> None:
    """P = 1 gives 3/2 kT for each element exactly; n_H K_H + n_O K_O equals K_cv (P = 8)."""
    one = kinetic_centroid_virial_by_species(sample_state(1))
    assert set(one) == {"H", "O"}
    for values in one.values():
        np.testing.assert_allclose(values, 1.5 * units.kB * T, rtol=1e-12)
    state = sample_state(8)
    by = kinetic_centroid_virial_by_species(state)
    np.testing.assert_allclose(
        N_EACH * (by["H"] + by["O"]), kinetic_centroid_virial(state), rtol=1e-12
    )
