"""Path-integral estimators of a `RingPolymerState` (per replica unless said otherwise).

With β = 1/(k_B T), P beads, N atoms in d = 3 dimensions, ω_P = P/(βħ), bead positions
q_ij, forces F_ij (from the state's last force call) and centroids q̄_i:

- primitive (thermodynamic) kinetic energy:
  K_prim = dNP/(2β) − (1/P) Σ_ij ½ m_i ω_P² |q_ij − q_i,j+1|²
- centroid-virial kinetic energy: K_cv = dN/(2β) − (1/2P) Σ_ij (q_ij − q̄_i)·F_ij (also per
  atom, and per atom averaged over the atoms of each element)
- potential energy: V = (1/P) Σ_j V(q_j)
- radius of gyration of atom i: r_g = √((1/P) Σ_j |q_ij − q̄_i|²)
- ring-polymer Hamiltonian H_P = Σ_j [Σ_i |p_ij|²/2m_i + V(q_j)] + Σ_ij ½ m_i ω_P² |q_ij − q_i,j+1|²
  and the conserved quantity (H_P + ethermo)/P (i-PI's `conserved`).

The names follow i-PI's properties: `kinetic_td`, `kinetic_cv`, `potential`, `r_gyration`,
`conserved`. Energies in eV, lengths in Å.
"""

from __future__ import annotations

import numpy as np
from ase import units
from ase.data import chemical_symbols

from mlipserve.simulation.pimd.normal_modes import ring_polymer_frequency
from mlipserve.simulation.pimd.ring_polymer import RingPolymerState


def _need_results(state: RingPolymerState) -> tuple[np.ndarray, np.ndarray]:
    if state.forces is None or state.energies is None:
        raise ValueError("this estimator needs forces and energies: evaluate the state first")
    return state.forces, state.energies


def spring_energy(state: RingPolymerState) -> np.ndarray:
    """Σ_ij ½ m_i ω_P² |q_ij − q_i,j+1|² per replica (R,), eV."""
    omega_p = ring_polymer_frequency(state.n_beads, state.temperature_K)
    diff = state.positions - np.roll(state.positions, -1, axis=1)
    return 0.5 * omega_p**2 * (np.einsum("rpnd,rpnd->rn", diff, diff) @ state.masses)


def kinetic_primitive(state: RingPolymerState) -> np.ndarray:
    """Primitive estimator K_prim = 3NP k_B T/2 − spring energy/P per replica (R,), eV."""
    p = state.n_beads
    return 1.5 * state.n_atoms * p * units.kB * state.temperature_K - spring_energy(state) / p


def kinetic_centroid_virial_per_atom(state: RingPolymerState) -> np.ndarray:
    """Centroid-virial kinetic energy per atom (R, N): 3k_BT/2 − (1/2P) Σ_j (q_ij − q̄_i)·F_ij."""
    forces, _ = _need_results(state)
    dev = state.positions - state.centroid[:, None]
    virial = np.einsum("rpnd,rpnd->rn", dev, forces)
    return 1.5 * units.kB * state.temperature_K - virial / (2.0 * state.n_beads)


def kinetic_centroid_virial(state: RingPolymerState) -> np.ndarray:
    """Centroid-virial estimator K_cv summed over atoms per replica (R,), eV."""
    return kinetic_centroid_virial_per_atom(state).sum(1)


def quantum_kinetic_energy(state: RingPolymerState, per_atom: bool = False) -> np.ndarray:
    """The quantum kinetic energy by the centroid-virial estimator: (R,) or per atom (R, N)."""
    k = kinetic_centroid_virial_per_atom(state)
    return k if per_atom else k.sum(1)


def kinetic_centroid_virial_by_species(state: RingPolymerState) -> dict[str, np.ndarray]:
    """Centroid-virial kinetic energy per atom averaged over each element: {symbol: (R,)}, eV."""
    k = kinetic_centroid_virial_per_atom(state)
    return {chemical_symbols[z]: k[:, state.numbers == z].mean(1) for z in np.unique(state.numbers)}


def potential_energy(state: RingPolymerState) -> np.ndarray:
    """Bead-averaged potential energy (1/P) Σ_j V(q_j) per replica (R,), eV."""
    _, energies = _need_results(state)
    return energies.mean(1)


def radius_of_gyration(state: RingPolymerState, per_atom: bool = False) -> np.ndarray:
    """Ring-polymer radius of gyration √((1/P) Σ_j |q_ij − q̄_i|²): atom mean (R,) or (R, N), Å."""
    dev = state.positions - state.centroid[:, None]
    rg = np.sqrt(np.einsum("rpnd,rpnd->rn", dev, dev) / state.n_beads)
    return rg if per_atom else rg.mean(1)


def ring_polymer_hamiltonian(state: RingPolymerState) -> np.ndarray:
    """H_P = bead kinetic + spring + Σ_j V(q_j) per replica (R,), eV (sampled at T_P = PT)."""
    _, energies = _need_results(state)
    return state.kinetic_energy + spring_energy(state) + energies.sum(1)


def conserved_quantity(state: RingPolymerState) -> np.ndarray:
    """(H_P + ethermo)/P per replica (R,), eV: constant up to integration error."""
    return (ring_polymer_hamiltonian(state) + state.thermostat_energy) / state.n_beads


ESTIMATORS = {
    "potential": potential_energy,
    "kinetic_cv": kinetic_centroid_virial,
    "kinetic_td": kinetic_primitive,
    "r_gyration": radius_of_gyration,
    "conserved": conserved_quantity,
}
"""Per-replica estimators by i-PI property name (what `PathIntegralMD.log` records)."""
