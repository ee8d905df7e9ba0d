"""Path-integral MD runner: every bead of every replica in ONE provider call per step.

```python
from ase import units
from mlipserve.simulation.pimd import PathIntegralMD, PIMDIntegrator, PILE_L, RingPolymerState

state = RingPolymerState.from_atoms(atoms, n_beads=32, temperature_K=300, seeds=0)
pimd = PathIntegralMD(provider, state, PIMDIntegrator(0.5 * units.fs, PILE_L(100 * units.fs)))
log = pimd.log(interval=10)        # kinetic_cv, kinetic_td, potential, r_gyration, conserved
pimd.run(2000, progress=True)
print(log.arrays()["kinetic_cv"].mean())
```

The step is i-PI's BAOAB: B kicks every bead with its force for dt/2, A propagates the free
ring polymer exactly in normal modes for dt/2, O applies the thermostat (PILE-L by default)
for dt, A and B again. With P = 1 the free propagation is a plain drift and PILE-L is
Langevin with friction 1/τ: the scheme is classical BAOAB Langevin MD (`md.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlipserve.simulation.md.integrators import check_splitting
from mlipserve.simulation.md.loop import Driver
from mlipserve.simulation.pimd.estimators import ESTIMATORS
from mlipserve.simulation.pimd.normal_modes import NormalModes
from mlipserve.simulation.pimd.ring_polymer import RingPolymerState, kick
from mlipserve.simulation.pimd.thermostats import PILE_G, PILE_L
from mlipserve.simulation.provider import ForceProvider

ForceCall = Callable[[RingPolymerState], RingPolymerState]


@dataclass(frozen=True)
class PIMDIntegrator:
    """A ring-polymer splitting of B (kick), A (exact free ring polymer), O (thermostat).

    Args:
        dt: time step in ASE time (`0.5 * ase.units.fs`).
        thermostat: `PILE_L()` (default), `PILE_G()`, or None for NVE of the ring polymer.
        splitting: letters B, A, O needing one force call per step ("BAOAB", "OBABO", "BAB");
            a letter that appears n times gets dt/n.
    """

    dt: float
    thermostat: PILE_L | PILE_G | None = field(default_factory=PILE_L)
    splitting: str = "BAOAB"

    def __post_init__(self) -> None:
        check_splitting(self.dt, self.splitting)
        if "O" in self.splitting and self.thermostat is None:
            raise ValueError(f"splitting {self.splitting!r} has an O step but no thermostat")

    def step(
        self, state: RingPolymerState, modes: NormalModes, compute: ForceCall
    ) -> RingPolymerState:
        """One time step; `compute(state)` returns the state with fresh bead forces.

        Runs of A and O letters between kicks are done in normal-mode space with one
        transform in and one out.
        """
        counts = {ch: self.splitting.count(ch) for ch in "BAO"}
        fresh, i = True, 0
        while i < len(self.splitting):
            if self.splitting[i] == "B":
                if not fresh:
                    state, fresh = compute(state), True
                state = kick(state, self.dt / counts["B"])
                i += 1
                continue
            j = i
            while j < len(self.splitting) and self.splitting[j] != "B":
                j += 1
            state = self._mode_block(state, modes, self.splitting[i:j], counts)
            fresh = fresh and "A" not in self.splitting[i:j]
            i = j
        if not fresh:
            state = compute(state)
        return state.replace(step=state.step + 1)

    def _mode_block(
        self, state: RingPolymerState, modes: NormalModes, letters: str, counts: dict[str, int]
    ) -> RingPolymerState:
        """A (exact free ring polymer) and O (thermostat) letters applied in normal modes."""
        drifts = "A" in letters
        if drifts:
            qm, pm = modes.to_modes(np.stack([state.positions, state.momenta]))
        else:
            qm, pm = state.positions, modes.to_modes(state.momenta)
        removed = np.zeros(state.n_replicas)
        for ch in letters:
            if ch == "A":
                qm, pm = modes.free_step_modes(qm, pm, state.masses, self.dt / counts["A"])
            else:
                assert self.thermostat is not None
                pm, heat = self.thermostat(
                    pm, state.masses, modes, state.rngs, self.dt / counts["O"]
                )
                removed = removed + heat
        if drifts:
            q, p = modes.to_beads(np.stack([qm, pm]))
            return state.replace(
                positions=q, momenta=p, thermostat_energy=state.thermostat_energy + removed
            )
        return state.replace(
            momenta=modes.to_beads(pm), thermostat_energy=state.thermostat_energy + removed
        )


class PIMDLog:
    """Records i-PI-named estimators per replica each call; `arrays()` stacks them (T, R)."""

    def __init__(self, get_state: Callable[[], RingPolymerState], names: tuple[str, ...]) -> None:
        unknown = set(names) - set(ESTIMATORS)
        if unknown:
            raise ValueError(f"unknown estimators {sorted(unknown)}; known: {sorted(ESTIMATORS)}")
        self.get_state, self.names = get_state, names
        self.rows: dict[str, list[np.ndarray]] = {name: [] for name in ("step", *names)}

    def __call__(self) -> None:
        """Append the current values."""
        state = self.get_state()
        self.rows["step"].append(np.array(state.step))
        for name in self.names:
            self.rows[name].append(ESTIMATORS[name](state))

    def arrays(self) -> dict[str, np.ndarray]:
        """Every recorded quantity as an array, time first."""
        return {key: np.array(values) for key, values in self.rows.items()}


class PathIntegralMD(Driver[RingPolymerState]):
    """Drives a `PIMDIntegrator` over a `RingPolymerState` with one provider call per step.

    The call holds all R·P bead systems. The run loop and observers are `md.loop.Driver`'s:
    `attach(fn, interval, *args)` calls `fn(*args)` before the first step and every
    `interval` steps; `write_trajectory` writes each replica's centroid.
    """

    def __init__(
        self, provider: ForceProvider, state: RingPolymerState, integrator: PIMDIntegrator
    ) -> None:
        super().__init__()
        self.provider = provider
        self.integrator = integrator
        self.modes = NormalModes(state.n_beads, state.temperature_K)
        self.calls = 0
        self.state = state if state.forces is not None else self._compute(state)

    @property
    def time(self) -> float:
        """Simulated time since step 0, ASE time units."""
        return self.state.step * self.integrator.dt

    def _compute(self, state: RingPolymerState) -> RingPolymerState:
        results = self.provider.evaluate(state.systems(), ("energy", "forces"))
        self.calls += 1
        return state.with_results(results)

    def log(self, interval: int = 1, names: tuple[str, ...] = tuple(ESTIMATORS)) -> PIMDLog:
        """Record the estimators (`estimators.ESTIMATORS` names) every interval steps."""
        log = PIMDLog(lambda: self.state, names)
        self.attach(log, interval)
        return log

    def write_centroids(self, pattern: str, interval: int = 1) -> list[Path]:
        """Append each replica's centroid every interval steps to `pattern.format(replica=r)`.

        Any format `ase.io.write` can append (extxyz, traj, ...); `info` holds the step and
        the replica's centroid-virial kinetic energy and bead-averaged potential (eV).
        """
        if "{replica}" not in pattern and self.state.n_replicas > 1:
            raise ValueError("with several replicas give a pattern containing '{replica}'")
        writer = self.write_trajectory(pattern, interval, info=centroid_energies, keep_open=False)
        return writer.paths

    def step(self) -> RingPolymerState:
        """Advance every ring polymer by one time step (one force call)."""
        self.state = self.integrator.step(self.state, self.modes, self._compute)
        return self.state

    def _progress_label(self) -> str:
        return f"PIMD ({self.state.n_replicas}×{self.state.n_beads} beads)"


def centroid_energies(state: RingPolymerState) -> dict[str, np.ndarray]:
    """Per replica: centroid-virial kinetic energy and bead-averaged potential (eV)."""
    return {
        "kinetic_cv": ESTIMATORS["kinetic_cv"](state),
        "potential": ESTIMATORS["potential"](state),
    }
