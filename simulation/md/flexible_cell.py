"""Fully flexible stochastic cell rescaling: the move of a triangular cell (shear included).

The anisotropic variant of Del Tatto, Raiteri, Bernetti & Bussi, Appl. Sci. 12, 1139
(2022). In their column convention h = cellᵀ (columns = cell vectors) is kept upper
triangular (a along x, b in the xy plane: no rotation), i.e. an ASE cell whose rows form a
lower-triangular matrix, as `ase.geometry.cellpar_to_cell` builds it. A step is
h → M h with M = exp(X), X upper triangular (six strains, the log of the step):

    X_ab = (β_T/3τ_P) [P_ab − P₀ δ_ab + (k_BT/V) d_a δ_ab] dt + √(2 k_BT β_T dt/(3 V τ_P)) ξ_ab,

a ≤ b, ξ six independent unit normals, P the pressure tensor (−σ from all six stress
components plus the kinetic tensor Σ p_a p_b/m / V) and d = (2, 0, −2). The target is the
isobaric ensemble of Martyna, Tobias & Klein (J. Chem. Phys. 101, 4177 (1994): measure
V^{1−d} dh over all nine components) with the rotations integrated out, which for the
triangular cell leaves ρ(h) ∝ V^N e^{−β(U + P₀V)} / (h_yy h_zz²) (the Jacobian of h = QR is
h_xx² h_yy). Stationarity of the Fokker–Planck equation of the Itô step dh = (dX) h, with
its V-dependent noise, needs (k_BT/V)(3, 1, −1) added to P − P₀ on the diagonal; the
exponential map adds ½ the noise variance (k_BT/V in these units), leaving d. tr d = 0, so
the volume moves exactly as in the isotropic barostat (drift β_T/τ_P (P − P₀), the same
noise) and samples the same V^N e^{−β(U + P₀V)}. In this ensemble ⟨P_ab⟩ = 0 off the
diagonal and ⟨P_aa⟩ = P₀ − (k_BT/V)(3, 1, −1)_a (its virial theorem): O(1/N) terms that
bussilab's LAMMPS prototype (crescale-lammps, fix_press_crescale.cpp: −k_BT/V on every
diagonal) does not have; it samples the left-Haar measure of the triangular group instead.
Positions go with M, momenta with M⁻ᵀ; the barostat's work is ΔE_kin plus the trapezoid
ΔU ≈ ½ (Vσ before + Vσ after) : X, the exact ∫Vσ:X dt along h(t) = e^{tX} h.
"""

from __future__ import annotations

import numpy as np

from mlipserve.simulation.md.state import MDState

VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))  # xx yy zz yz xz xy (ASE)
UPPER = (np.array([0, 1, 2, 1, 0, 0]), np.array([0, 1, 2, 2, 2, 1]))  # the same, a ≤ b
DIAGONAL_KT = np.array([2.0, 0.0, -2.0])  # d of the module docstring
MAX_STEP_STRAIN = 0.05  # a larger strain in one step means the run is unstable
_TERMS = 12  # series terms for exp and log at |X| ≤ 0.05: error < 1e-18


def check_cells(cell: np.ndarray) -> None:
    """Raise ValueError unless every cell (R, 3, 3) is lower triangular (rows) and right-handed."""
    scale = np.abs(cell).max(axis=(1, 2))
    upper = np.abs(cell[:, [0, 0, 1], [1, 2, 2]]).max(1)
    bad = np.flatnonzero(upper > 1e-9 * scale)
    if bad.size:
        raise ValueError(
            f"the fully flexible barostat needs triangular cells (a along x, b in the xy "
            f"plane: cell[0, 1:] = cell[1, 2] = 0); replica {int(bad[0])} is not. Rotate it "
            f"with atoms.set_cell(atoms.cell.cellpar(), scale_atoms=True)"
        )
    flipped = np.flatnonzero(np.any(np.diagonal(cell, axis1=1, axis2=2) <= 0, axis=1))
    if flipped.size:
        raise ValueError(
            f"the fully flexible barostat needs a right-handed cell with a positive diagonal; "
            f"replica {int(flipped[0])} has {np.diagonal(cell[flipped[0]]).tolist()}"
        )


def stress_tensor(stress: np.ndarray) -> np.ndarray:
    """Symmetric (R, 3, 3) tensors from Voigt stresses (R, 6), xx yy zz yz xz xy."""
    out = np.empty((len(stress), 3, 3))
    for k, (a, b) in enumerate(VOIGT):
        out[:, a, b] = out[:, b, a] = stress[:, k]
    return out


def kinetic_tensor(state: MDState) -> np.ndarray:
    """Σ p_a p_b / m per replica (R, 3, 3), eV (twice the kinetic energy tensor)."""
    outer = np.einsum("ia,ib->iab", state.momenta, state.momenta) / state.masses[:, None, None]
    flat = [state.per_replica_sum(outer[:, a, b]) for a in range(3) for b in range(3)]
    return np.stack(flat, 1).reshape(-1, 3, 3)


def pressure_tensor(state: MDState) -> np.ndarray:
    """Instantaneous pressure tensor per replica (R, 3, 3), eV/Å³: −σ + Σ p p/m / V."""
    if state.stress is None:
        raise ValueError("the barostat needs the stress; evaluate with 'stress'")
    return -stress_tensor(state.stress) + kinetic_tensor(state) / state.volume[:, None, None]


def flexible_strain(
    state: MDState, target: np.ndarray, kt: np.ndarray, rate_dt: float
) -> np.ndarray:
    """The step's generator X (R, 3, 3), upper triangular, h convention (β_T dt/τ_P)."""
    volume = state.volume
    drift = (rate_dt / 3) * (pressure_tensor(state) - target[:, None, None] * np.eye(3))
    drift[:, [0, 1, 2], [0, 1, 2]] += (rate_dt / 3) * (kt / volume)[:, None] * DIAGONAL_KT
    noise = np.stack([rng.standard_normal(6) for rng in state.rngs])
    x = np.zeros((state.n_replicas, 3, 3))
    x[:, UPPER[0], UPPER[1]] = drift[:, UPPER[0], UPPER[1]]
    x[:, UPPER[0], UPPER[1]] += np.sqrt(2 * kt * rate_dt / (3 * volume))[:, None] * noise
    size = np.abs(x).max()
    if not np.isfinite(size) or size > MAX_STEP_STRAIN:
        raise ValueError(
            f"the barostat would strain a cell by {size:.3g} in one step (> "
            f"{MAX_STEP_STRAIN}): the run is unstable; raise tau or lower the compressibility"
        )
    return x


def expm_upper(x: np.ndarray) -> np.ndarray:
    """exp of small (|x| ≤ 0.05) matrices (R, 3, 3) by its Taylor series."""
    out = np.broadcast_to(np.eye(3), x.shape).copy()
    term = out.copy()
    for k in range(1, _TERMS):
        term = term @ x / k
        out += term
    return out


def logm_near_identity(m: np.ndarray) -> np.ndarray:
    """log of matrices (R, 3, 3) within 0.05 of the identity by its series."""
    a = m - np.eye(3)
    if np.abs(a).max() > 2 * MAX_STEP_STRAIN:
        raise ValueError("the cell changed too much between barostat and force call")
    out = np.zeros_like(a)
    power = np.broadcast_to(np.eye(3), a.shape).copy()
    for k in range(1, _TERMS):
        power = power @ a
        out += ((-1) ** (k + 1) / k) * power
    return out


def deform(state: MDState, m: np.ndarray) -> MDState:
    """Cells, positions by M (R, 3, 3, h convention), momenta by M⁻ᵀ; nothing booked."""
    per_atom = m[state.replica]
    inverse = np.linalg.inv(m)[state.replica]
    return state.replace(
        positions=np.einsum("iab,ib->ia", per_atom, state.positions),
        momenta=np.einsum("iba,ib->ia", inverse, state.momenta),
        cell=np.einsum("rab,rkb->rka", m, state.cell),
    )


def strain_work(volume: np.ndarray, stress: np.ndarray, x: np.ndarray) -> np.ndarray:
    """½ V σ : X per replica (R,), eV: half the trapezoid ΔU of the step X."""
    return 0.5 * volume * np.einsum("rk,rk->r", stress, x[:, UPPER[0], UPPER[1]])


def step_generator(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """X = log M with after = before · Mᵀ (cells as rows, M in h convention)."""
    m_transposed = np.linalg.solve(before, after)
    return logm_near_identity(np.transpose(m_transposed, (0, 2, 1)))
