"""Integrators as splitting strings of B (kick), A (drift) and O (Ornstein–Uhlenbeck).

As in i-PI, a scheme is a string read left to right; each letter is a short function of the
state (whose `forces` are the last force call's): B: p ← p + h F, A: q ← q + h p/m,
O: p ← c p + √((1 − c²) m k_B T) ξ with c = e^{−γh}. A letter that appears n times gets the
step dt/n. `"BAB"` is velocity Verlet (NVE), `"BAOAB"` Langevin dynamics in the
Leimkuhler–Matthews splitting. Forces are recomputed, once, when a B follows a drift.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import units

from mlipserve.simulation.md.state import MDState, per_replica

ForceCall = Callable[[MDState], MDState]


def kick(state: MDState, dt: float) -> MDState:
    """B: p ← p + dt·F (forces from the state's last force call)."""
    if state.forces is None:
        raise ValueError("kick needs forces: evaluate the state first")
    return state.replace(momenta=state.momenta + dt * state.forces)


def drift(state: MDState, dt: float) -> MDState:
    """A: q ← q + dt·p/m."""
    return state.replace(positions=state.positions + dt * state.momenta / state.masses[:, None])


def ornstein_uhlenbeck(
    state: MDState, dt: float, temperature_K: np.ndarray, friction: np.ndarray
) -> MDState:
    """O: p ← c p + √((1 − c²) m k_B T) ξ, c = exp(−γ dt), exact for the OU process.

    Noise for replica r comes from `state.rngs[r]` only, so a replica's trajectory does not
    depend on the other members of the batch. The kinetic energy removed is added to
    `thermostat_energy` (i-PI's `ethermo`).
    """
    c = np.exp(-friction * dt)[state.replica]
    sigma = np.sqrt((1.0 - c * c) * state.masses * units.kB * temperature_K[state.replica])
    counts = np.diff(state.offsets)
    noise = np.concatenate([rng.standard_normal((n, 3)) for rng, n in zip(state.rngs, counts)])
    before = state.kinetic_energy
    new = state.replace(momenta=c[:, None] * state.momenta + sigma[:, None] * noise)
    return new.replace(thermostat_energy=state.thermostat_energy + before - new.kinetic_energy)


@dataclass(frozen=True)
class Integrator:
    """A splitting scheme with its time step and (for O) per-replica temperature and friction.

    Args:
        dt: time step in ASE time units (`2 * ase.units.fs`).
        splitting: letters B, A, O; must need one force call per step ("BAB", "BAOAB",
            "OBABO", ...).
        temperature_K: target temperature for O, scalar or one per replica.
        friction: γ for O in 1/(ASE time) (`0.01 / ase.units.fs`), scalar or one per replica.
    """

    dt: float
    splitting: str = "BAOAB"
    temperature_K: float | Sequence[float] = 0.0
    friction: float | Sequence[float] = 0.0

    def __post_init__(self) -> None:
        check_splitting(self.dt, self.splitting)
        if np.any(np.asarray(self.temperature_K) < 0) or np.any(np.asarray(self.friction) < 0):
            raise ValueError("temperature_K and friction must be non-negative")

    @property
    def stochastic(self) -> bool:
        """Whether the scheme has an O step."""
        return "O" in self.splitting

    def check(self, state: MDState) -> None:
        """Raise ValueError when per-replica parameters do not match the state's replicas."""
        per_replica(self.temperature_K, state.n_replicas, "temperature_K")
        per_replica(self.friction, state.n_replicas, "friction")

    def step(self, state: MDState, compute: ForceCall) -> MDState:
        """One time step; `compute(state)` returns the state with fresh forces."""
        counts = {ch: self.splitting.count(ch) for ch in "BAO"}
        temps = per_replica(self.temperature_K, state.n_replicas, "temperature_K")
        gammas = per_replica(self.friction, state.n_replicas, "friction")
        fresh = True
        for ch in self.splitting:
            if ch == "B":
                if not fresh:
                    state, fresh = compute(state), True
                state = kick(state, self.dt / counts["B"])
            elif ch == "A":
                state, fresh = drift(state, self.dt / counts["A"]), False
            else:
                state = ornstein_uhlenbeck(state, self.dt / counts["O"], temps, gammas)
        if not fresh:
            state = compute(state)
        return state.replace(step=state.step + 1)


def check_splitting(dt: float, splitting: str) -> None:
    """Raise ValueError unless dt > 0 and `splitting` (letters B, A, O) needs one force call."""
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"the time step must be positive, got dt = {dt}")
    if not splitting or set(splitting) - set("BAO"):
        raise ValueError(f"splitting {splitting!r} may hold only the letters B, A, O")
    if "A" not in splitting or "B" not in splitting:
        raise ValueError(f"splitting {splitting!r} needs at least one A and one B")
    if force_calls_per_step(splitting) != 1:
        raise ValueError(
            f"splitting {splitting!r} needs {force_calls_per_step(splitting)} "
            "force calls per step; use one that ends each step with a kick "
            "after its last drift (BAB, BAOAB, OBABO)"
        )


def force_calls_per_step(splitting: str) -> int:
    """Force calls one step needs: one per B after a drift, one more if it ends after a drift."""
    calls, fresh = 0, True
    for ch in splitting:
        if ch == "A":
            fresh = False
        elif ch == "B" and not fresh:
            calls, fresh = calls + 1, True
    return calls + (0 if fresh else 1)


def velocity_verlet(dt: float) -> Integrator:
    """Velocity Verlet (NVE): B(dt/2) A(dt) B(dt/2)."""
    return Integrator(dt, "BAB")


def langevin_baoab(
    dt: float, temperature_K: float | Sequence[float], friction: float | Sequence[float]
) -> Integrator:
    """Langevin dynamics, BAOAB splitting; temperature and friction may differ per replica."""
    return Integrator(dt, "BAOAB", temperature_K, friction)


@dataclass(frozen=True)
class BerendsenBarostat:
    """Isotropic Berendsen pressure coupling (weak coupling, as ASE's `NPTBerendsen`).

    Before each force call, every replica's cell and positions are scaled by
    μ = 1 − β dt (P₀ − P) / (3 τ_P), with P = −tr(σ)/3 + 2 E_kin/(3V) from the last call's
    stress. It relaxes the volume toward P₀ but does not sample the NPT ensemble (use it to
    equilibrate density). Needs periodic cells and a provider that returns stress.

    Args:
        pressure: target P₀ in eV/Å³ (`1 * ase.units.bar`), scalar or one per replica.
        tau: coupling time τ_P in ASE time units (`500 * ase.units.fs`).
        compressibility: β in Å³/eV (`1 / (100 * ase.units.GPa)`); only β/τ_P matters.
    """

    pressure: float | Sequence[float] = 0.0
    tau: float = 500 * units.fs
    compressibility: float = 1 / (100 * units.GPa)

    def __post_init__(self) -> None:
        if not self.tau > 0 or not self.compressibility > 0:
            raise ValueError("tau and compressibility must be positive")

    def check(self, state: MDState) -> None:
        """Raise ValueError for non-periodic replicas or a mismatched pressure list."""
        per_replica(self.pressure, state.n_replicas, "pressure")
        if not state.pbc.all():
            raise ValueError("the barostat needs every replica periodic in all directions")

    def scale(self, state: MDState, dt: float) -> MDState:
        """Scale cells and positions toward the target pressure (needs the state's stress)."""
        target = per_replica(self.pressure, state.n_replicas, "pressure")
        mu = 1.0 - self.compressibility * dt * (target - state.pressure) / (3.0 * self.tau)
        return state.replace(
            positions=state.positions * mu[state.replica][:, None],
            cell=state.cell * mu[:, None, None],
        )
