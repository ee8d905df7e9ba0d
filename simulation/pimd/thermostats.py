"""Path-integral Langevin thermostats on ring-polymer normal modes: PILE-L and PILE-G.

Ceriotti, Parrinello, Markland, Manolopoulos, J. Chem. Phys. 133, 124104 (2010). Both act on
the normal-mode momenta Π_k of the ring polymer at the ring temperature T_P = P T (the ring
polymer's classical Boltzmann distribution at β_P = β/P samples the quantum one at β):

- internal modes k > 0: Langevin, Π_k ← c_k Π_k + √((1 − c_k²) m k_B T_P) ξ with
  c_k = exp(−γ_k h) and γ_k = 2 λ ω_k (λ = 1 is critical damping of the free modes);
- centroid k = 0: PILE-L uses Langevin with γ_0 = 1/τ; PILE-G rescales the centroid
  momenta of each replica globally with Bussi's stochastic velocity rescaling (time τ).

PILE-L is the default (`PILE_L`). Every thermostat adds the kinetic energy it removes to the
state's `thermostat_energy` (i-PI's `ethermo`), so H_P + ethermo is conserved up to
integration error. Noise for replica r comes from its own generator `rngs[r]` only.
Thermostats act on normal-mode momenta (R, P, N, 3) and return the energy they removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import units

from mlipserve.simulation.pimd.normal_modes import NormalModes


def _noise(rngs: list[np.random.Generator], shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal noise (R, *shape), replica r drawn from its own generator."""
    return np.stack([rng.standard_normal(shape) for rng in rngs])


def _mode_kinetic(pm: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Kinetic energy per replica and mode (R, P): Σ_i |Π_ik|²/2m_i."""
    return 0.5 * np.einsum("rpnd,rpnd->rpn", pm, pm) @ (1.0 / masses)


@dataclass(frozen=True)
class _PileParameters:
    """τ (centroid) and λ (internal modes), checked: what both PILE thermostats take."""

    tau: float = 100 * units.fs
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.tau > 0:
            raise ValueError(f"tau must be positive, got {self.tau}")
        if not self.scale >= 0:
            raise ValueError(f"scale must be non-negative, got {self.scale}")


@dataclass(frozen=True)
class PILE_L(_PileParameters):
    """PILE-L: Langevin on every normal mode; centroid friction 1/τ, internal 2λω_k.

    Args:
        tau: centroid relaxation time τ in ASE time (`100 * ase.units.fs`); `inf` leaves the
            centroid unthermostatted.
        scale: λ, the internal modes' friction in units of critical damping (γ_k = 2λω_k).
    """

    def frictions(self, modes: NormalModes) -> np.ndarray:
        """γ_k (P,): γ_0 = 1/τ, γ_k = 2λω_k for k > 0."""
        gamma = 2.0 * self.scale * modes.omega.copy()
        gamma[0] = 1.0 / self.tau
        return gamma

    def __call__(
        self, pm: np.ndarray, masses: np.ndarray, modes: NormalModes, rngs: list, dt: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """O step for dt on normal-mode momenta (R, P, N, 3): new Π and energy removed (R,)."""
        return langevin_modes(pm, masses, self.frictions(modes), ring_kt(modes), rngs, dt)


@dataclass(frozen=True)
class PILE_G(_PileParameters):
    """PILE-G: Langevin on internal modes (γ_k = 2λω_k), Bussi SVR on each replica's centroid.

    Args:
        tau: the centroid's stochastic-rescaling time τ in ASE time (`100 * ase.units.fs`).
        scale: λ for the internal modes.
    """

    def __call__(
        self, pm: np.ndarray, masses: np.ndarray, modes: NormalModes, rngs: list, dt: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """SVR on the centroid, then Langevin inside: new Π and energy removed (R,)."""
        kt = ring_kt(modes)
        pm, removed = svr_centroid(pm, masses, kt, rngs, dt, self.tau)
        gamma = 2.0 * self.scale * modes.omega.copy()
        gamma[0] = 0.0
        pm, more = langevin_modes(pm, masses, gamma, kt, rngs, dt)
        return pm, removed + more


def ring_kt(modes: NormalModes) -> float:
    """k_B T_P = P k_B T, the ring polymer's thermal energy, eV."""
    return units.kB * modes.temperature_K * modes.n_beads


def langevin_modes(
    pm: np.ndarray, masses: np.ndarray, gamma: np.ndarray, kt: float, rngs: list, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """O step per normal mode: Π_k ← c_k Π_k + √((1 − c_k²) m k_B T_P) ξ, c_k = e^{−γ_k dt}.

    Exact for the OU process at any dt. Returns the new momenta and, per replica, the
    kinetic energy removed (what `thermostat_energy` accumulates).
    """
    c = np.exp(-np.asarray(gamma, dtype=float) * dt)[:, None, None]
    sigma = np.sqrt((1.0 - c * c) * kt * masses[None, :, None])
    before = _mode_kinetic(pm, masses).sum(1)
    pm = c * pm + sigma * _noise(rngs, pm.shape[1:])
    return pm, before - _mode_kinetic(pm, masses).sum(1)


def svr_centroid(
    pm: np.ndarray, masses: np.ndarray, kt: float, rngs: list, dt: float, tau: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bussi–Donadio–Parrinello stochastic rescaling of each replica's centroid momenta.

    With K the centroid-mode kinetic energy, N_f = 3N its degrees of freedom, K̄ = N_f k_B T_P/2
    and c = e^{−dt/τ}: α² = c + (1 − c) K̄/(N_f K) (R₁² + Σ_{i≥2} R_i²) + 2R₁√(c(1 − c)K̄/(N_f K)),
    sign(α) = sign(R₁ + √(c N_f K/((1 − c) K̄))); Π_0 ← α Π_0 (J. Chem. Phys. 126, 014101).
    Returns the new momenta and the kinetic energy removed per replica.
    """
    kin = _mode_kinetic(pm[:, :1], masses)[:, 0]
    n_f = 3 * pm.shape[2]
    target = 0.5 * n_f * kt
    c = np.exp(-dt / tau)
    alpha = np.ones(len(rngs))
    for r, rng in enumerate(rngs):
        if kin[r] <= 0:
            continue
        r1 = rng.standard_normal()
        rest = rng.chisquare(n_f - 1) if n_f > 1 else 0.0
        ratio = target / (n_f * kin[r])
        a2 = c + (1 - c) * ratio * (r1 * r1 + rest) + 2 * r1 * np.sqrt(c * (1 - c) * ratio)
        sign = np.sign(r1 + np.sqrt(c / ((1 - c) * ratio))) if c < 1 else 1.0
        alpha[r] = (sign or 1.0) * np.sqrt(a2)
    pm = pm.copy()
    pm[:, 0] *= alpha[:, None, None]
    return pm, kin - alpha**2 * kin
