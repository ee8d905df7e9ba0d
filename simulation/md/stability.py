"""Largest stable MD time step from the Hessian's stiffest mode and the scheme's linear map.

Linear stability: on a harmonic mode of angular frequency ω a splitting scheme maps the
mean (q, p) by a 2×2 matrix M(ωh, γh) (noise does not enter the mean). The scheme is
stable while the spectral radius ρ(M) ≤ 1. For velocity Verlet ("BAB") tr M = 2 − ω²h²,
det M = 1, so h < 2/ω. For BAOAB the O step multiplies det M by c = e^{−γh} and
tr M = (1 + c)(1 − ω²h²/2), so |tr M| < 1 + det M gives the same h < 2/ω for every
friction γ (checked numerically by `max_stable_timestep`, which computes ρ(M) for any
splitting rather than relying on the formula). ω_max comes from the mass-weighted Hessian
ω²_max = λ_max(M^{-1/2} H M^{-1/2}), H by central differences of the provider's forces with
every ±displacement of every system in one evaluate call.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.data import atomic_masses

from mlipserve.simulation.md.integrators import Integrator
from mlipserve.simulation.md.state import MDState, per_replica
from mlipserve.simulation.provider import ForceProvider
from mlipserve.wire import SystemArrays

_TOL = 1e-9  # ρ(M) above 1 + _TOL counts as growing (VV sits at ρ = 1 inside its region)


def _arrays(system: Atoms | SystemArrays) -> SystemArrays:
    return SystemArrays.from_atoms(system) if isinstance(system, Atoms) else system


def hessians(
    provider: ForceProvider, systems: Sequence[Atoms | SystemArrays], delta: float = 1e-3
) -> list[np.ndarray]:
    """Cartesian Hessians (3N, 3N), eV/Å², by central differences; one evaluate call for all.

    H[:, j] = −(F(x + δ e_j) − F(x − δ e_j)) / 2δ, then symmetrised. The error is O(δ²).
    """
    if delta <= 0:
        raise ValueError(f"delta must be positive, got {delta}")
    arrays = [_arrays(s) for s in systems]
    displaced = []
    for s in arrays:
        pos = np.asarray(s.positions, dtype=float)
        for j in range(pos.size):
            for sign in (1.0, -1.0):
                moved = pos.copy().reshape(-1)
                moved[j] += sign * delta
                displaced.append(
                    SystemArrays(
                        positions=moved.reshape(pos.shape),
                        numbers=s.numbers,
                        cell=s.cell,
                        pbc=s.pbc,
                    )
                )
    results = provider.evaluate(displaced, ("energy", "forces"))
    out, k = [], 0
    for s in arrays:
        n3 = np.asarray(s.positions).size
        forces = np.array(
            [np.asarray(r["forces"], dtype=float).reshape(-1) for r in results[k : k + 2 * n3]]
        )
        k += 2 * n3
        h = -(forces[0::2] - forces[1::2]).T / (2 * delta)
        out.append(0.5 * (h + h.T))
    return out


def max_angular_frequency(
    provider: ForceProvider,
    systems: Sequence[Atoms | SystemArrays],
    masses: Sequence[np.ndarray] | None = None,
    delta: float = 1e-3,
) -> np.ndarray:
    """ω_max per system in 1/(ASE time): √λ_max(M^{-1/2} H M^{-1/2}) (0 if nothing is stiff).

    Masses (amu) default to the Atoms' masses, or ASE's standard masses of the numbers.
    """
    if masses is None:
        masses = [
            s.get_masses() if isinstance(s, Atoms) else atomic_masses[np.asarray(s.numbers)]
            for s in systems
        ]
    if len(masses) != len(systems):
        raise ValueError(f"{len(masses)} mass arrays for {len(systems)} systems")
    omegas = []
    for h, m in zip(hessians(provider, systems, delta), masses):
        inv = 1.0 / np.sqrt(np.repeat(np.asarray(m, dtype=float), 3))
        if inv.size != h.shape[0]:
            raise ValueError(f"{inv.size // 3} masses for a system of {h.shape[0] // 3} atoms")
        lam = np.linalg.eigvalsh(inv[:, None] * h * inv[None, :])[-1]
        omegas.append(np.sqrt(max(lam, 0.0)))
    return np.array(omegas)


def propagation_matrix(
    omega: float | np.ndarray,
    dt: float | np.ndarray,
    splitting: str = "BAOAB",
    friction: float = 0.0,
) -> np.ndarray:
    """The scheme's mean map of (q, p) for a unit-mass oscillator: (..., 2, 2), M @ [q, p]."""
    w, h = np.broadcast_arrays(np.asarray(omega, dtype=float), np.asarray(dt, dtype=float))
    counts = {ch: max(splitting.count(ch), 1) for ch in "BAO"}
    m = np.broadcast_to(np.eye(2), (*w.shape, 2, 2)).copy()
    for ch in splitting:
        op = np.broadcast_to(np.eye(2), (*w.shape, 2, 2)).copy()
        if ch == "B":
            op[..., 1, 0] = -w * w * h / counts["B"]
        elif ch == "A":
            op[..., 0, 1] = h / counts["A"]
        elif ch == "O":
            op[..., 1, 1] = np.exp(-friction * h / counts["O"])
        else:
            raise ValueError(f"unknown letter {ch!r} in splitting {splitting!r}")
        m = op @ m
    return m


def spectral_radius(
    omega: float | np.ndarray,
    dt: float | np.ndarray,
    splitting: str = "BAOAB",
    friction: float = 0.0,
) -> np.ndarray:
    """ρ of the mean propagation matrix; the scheme is linearly stable while ρ ≤ 1."""
    return np.abs(np.linalg.eigvals(propagation_matrix(omega, dt, splitting, friction))).max(-1)


def max_stable_timestep(omega: float, splitting: str = "BAOAB", friction: float = 0.0) -> float:
    """Largest h with ρ(M(ωh, γh)) ≤ 1 on [0, h] (first instability), ASE time units."""
    if omega <= 0:
        return float("inf")
    grid = np.linspace(1e-4, 8.0, 8001) / omega
    unstable = spectral_radius(omega, grid, splitting, friction) > 1 + _TOL
    if not unstable.any():
        return float("inf")
    first = int(np.argmax(unstable))
    lo, hi = (grid[first - 1] if first else 0.0), grid[first]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (
            (mid, hi) if spectral_radius(omega, mid, splitting, friction) <= 1 + _TOL else (lo, mid)
        )
    return float(lo)


@dataclass(frozen=True)
class StabilityReport:
    """Per replica: ω_max (1/ASE time), the bound dt_max and whether the run's dt is below it."""

    omega_max: np.ndarray
    dt_max: np.ndarray
    dt: float
    splitting: str
    friction: np.ndarray

    @property
    def stable(self) -> np.ndarray:
        """True where dt < dt_max."""
        return self.dt < self.dt_max

    def summary(self) -> str:
        """One line per replica, times in fs."""
        lines = [f"dt = {self.dt / units.fs:.4g} fs, scheme {self.splitting}"]
        for r, (w, h, g) in enumerate(zip(self.omega_max, self.dt_max, self.friction)):
            period = 2 * np.pi / w / units.fs if w > 0 else float("inf")
            lines.append(
                f"replica {r}: ω_max = {w * units.fs:.4g}/fs (period {period:.4g} fs), "
                f"γ = {g * units.fs:.3g}/fs, dt_max = {h / units.fs:.4g} fs"
                f"{'' if self.dt < h else '  UNSTABLE'}"
            )
        return "\n".join(lines)


def check_timestep(
    provider: ForceProvider,
    state: MDState,
    integrator: Integrator,
    delta: float = 1e-3,
    warn: bool = True,
) -> StabilityReport:
    """Linear-stability bound for each replica at its current configuration; warns if dt ≥ it.

    Costs 6N displaced systems per replica, all in one evaluate call. The bound holds near
    the configuration; anharmonic excursions at temperature can be stiffer, so keep a margin.
    """
    friction = per_replica(integrator.friction, state.n_replicas, "friction")
    if not integrator.stochastic:
        friction = np.zeros(state.n_replicas)
    masses = [state.masses[state.replica_slice(r)] for r in range(state.n_replicas)]
    omega = max_angular_frequency(provider, state.systems(), masses, delta)
    bound = np.array(
        [max_stable_timestep(w, integrator.splitting, g) for w, g in zip(omega, friction)]
    )
    report = StabilityReport(omega, bound, integrator.dt, integrator.splitting, friction)
    if warn and not report.stable.all():
        bad = np.flatnonzero(~report.stable)
        warnings.warn(
            f"time step {integrator.dt / units.fs:.4g} fs exceeds the linear "
            f"stability bound {bound.min() / units.fs:.4g} fs of {integrator.splitting} "
            f"for replicas {bad.tolist()}; the run will diverge",
            RuntimeWarning,
            stacklevel=2,
        )
    return report
