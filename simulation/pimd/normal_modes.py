"""Ring-polymer normal modes: the orthonormal transform, free frequencies, exact free steps.

As in i-PI's `engine/normalmodes.py`: with P beads of a particle of mass m at temperature T,
the ring polymer's springs are Σ_j ½ m ω_P² |q_j − q_{j+1}|² with ω_P = P k_B T / ħ. The real
orthonormal matrix C (P, P) diagonalises them: Q = Cᵀ q, and mode k has frequency
ω_k = 2 ω_P sin(kπ/P) (k = 0 is the centroid, Q_0 = √P q̄, a free particle). Without the
physical potential each mode is a harmonic oscillator, propagated exactly by a rotation in
phase space (the centroid by a free drift). Units are ASE's: Å, amu, eV, ASE time;
ħ = `ase.units._hbar * ase.units.J * ase.units.s` (eV · ASE time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import units

HBAR = units._hbar * units.J * units.s
"""ħ in eV · ASE time units."""


def ring_polymer_frequency(n_beads: int, temperature_K: float) -> float:
    """ω_P = P k_B T / ħ in 1/(ASE time)."""
    if n_beads < 1:
        raise ValueError(f"n_beads must be at least 1, got {n_beads}")
    if not temperature_K > 0:
        raise ValueError(f"temperature_K must be positive, got {temperature_K}")
    return n_beads * units.kB * temperature_K / HBAR


def free_frequencies(n_beads: int, temperature_K: float) -> np.ndarray:
    """Free ring-polymer frequencies ω_k = 2 ω_P sin(kπ/P), k = 0..P−1, in 1/(ASE time)."""
    omega_p = ring_polymer_frequency(n_beads, temperature_K)
    return 2.0 * omega_p * np.sin(np.arange(n_beads) * np.pi / n_beads)


def normal_mode_matrix(n_beads: int) -> np.ndarray:
    """Real orthonormal C (P, P) with Q_k = Σ_j C_jk q_j (i-PI's convention).

    C_j0 = 1/√P; C_jk = √(2/P) cos(2πjk/P) for 1 ≤ k < P/2; C_{j,P/2} = (−1)^j/√P;
    C_jk = √(2/P) sin(2πjk/P) for k > P/2. Column k carries frequency ω_k.
    """
    if n_beads < 1:
        raise ValueError(f"n_beads must be at least 1, got {n_beads}")
    p = n_beads
    j = np.arange(p)[:, None]
    k = np.arange(p)[None, :]
    c = np.where(
        k < p / 2,
        np.sqrt(2.0 / p) * np.cos(2 * np.pi * j * k / p),
        np.sqrt(2.0 / p) * np.sin(2 * np.pi * j * k / p),
    )
    c[:, 0] = 1.0 / np.sqrt(p)
    if p % 2 == 0:
        c[:, p // 2] = (-1.0) ** np.arange(p) / np.sqrt(p)
    return c


@dataclass
class NormalModes:
    """Transform and free propagator for rings of P beads at temperature T.

    Arrays with beads on axis −3 ((..., P, N, 3), e.g. (R, P, N, 3)) go to normal modes and
    back with `to_modes` / `to_beads`. `free_step(q, p, masses, dt)` advances every mode of
    the free ring polymer exactly for dt: (Q, Π) ← [[cos ω_k dt, sin ω_k dt /(m ω_k)],
    [−m ω_k sin ω_k dt, cos ω_k dt]] (Q, Π); centroid Q ← Q + dt Π/m. Propagators are cached
    per (dt, masses).
    """

    n_beads: int
    temperature_K: float
    matrix: np.ndarray = field(init=False, repr=False)
    omega: np.ndarray = field(init=False, repr=False)
    _cache: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.matrix = normal_mode_matrix(self.n_beads)
        self.omega = free_frequencies(self.n_beads, self.temperature_K)

    @property
    def omega_p(self) -> float:
        """ω_P = P k_B T / ħ."""
        return ring_polymer_frequency(self.n_beads, self.temperature_K)

    def to_modes(self, q: np.ndarray) -> np.ndarray:
        """Q = Cᵀ q over the bead axis (−3)."""
        return self._apply(self.matrix.T, q)

    def to_beads(self, modes: np.ndarray) -> np.ndarray:
        """q = C Q over the bead axis (−3)."""
        return self._apply(self.matrix, modes)

    def _apply(self, m: np.ndarray, x: np.ndarray) -> np.ndarray:
        if x.ndim < 3 or x.shape[-3] != self.n_beads:
            raise ValueError(f"bead axis (−3) of shape {x.shape} is not P = {self.n_beads}")
        if self.n_beads == 1:
            return x.copy()
        shape = x.shape
        flat = x.reshape(*shape[:-3], shape[-3], shape[-2] * shape[-1])
        return (m @ flat).reshape(shape)

    def propagator(self, masses: np.ndarray, dt: float) -> tuple[np.ndarray, ...]:
        """(cos, sin/(mω), −mω sin) per (mode, atom), shapes (P, 1) and (P, N); cached."""
        masses = np.asarray(masses, dtype=float)
        key = (float(dt), masses.tobytes())
        if key not in self._cache:
            w = self.omega[:, None]
            wdt = w * dt
            cos = np.cos(wdt)
            safe = np.where(w > 0, w, 1.0)
            q_from_p = np.where(w > 0, np.sin(wdt) / (safe * masses[None, :]), dt / masses[None, :])
            p_from_q = -masses[None, :] * w * np.sin(wdt)
            self._cache.clear()
            self._cache[key] = (cos, q_from_p, p_from_q)
        return self._cache[key]

    def free_step_modes(
        self, qm: np.ndarray, pm: np.ndarray, masses: np.ndarray, dt: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact free ring-polymer step of normal-mode positions and momenta (..., P, N, 3)."""
        cos, q_from_p, p_from_q = self.propagator(masses, dt)
        c = cos[..., None]
        return c * qm + q_from_p[..., None] * pm, p_from_q[..., None] * qm + c * pm

    def free_step(
        self, q: np.ndarray, p: np.ndarray, masses: np.ndarray, dt: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact free ring-polymer step of bead positions and momenta (..., P, N, 3)."""
        qm, pm = self.free_step_modes(self.to_modes(q), self.to_modes(p), masses, dt)
        return self.to_beads(qm), self.to_beads(pm)

    def spring_energy(self, q: np.ndarray, masses: np.ndarray) -> np.ndarray:
        """Σ_j Σ_i ½ m_i ω_P² |q_ij − q_i,j+1|² summed over beads and atoms: (...,)."""
        diff = q - np.roll(q, -1, axis=-3)
        sq = np.einsum("...pnd,...pnd->...n", diff, diff)
        return 0.5 * self.omega_p**2 * (sq @ masses)
