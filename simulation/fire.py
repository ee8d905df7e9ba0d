"""Batched FIRE: many optimisation tasks, one provider call per iteration for all of them.

Each task owns an ASE `Optimizable` (atoms, a `FrechetCellFilter`, an NEB band, ...) and
names the systems it needs evaluated. Per iteration the engine gathers every active task's
systems, evaluates them in ONE `ForceProvider.evaluate` call, hands the results back, then
checks each task's convergence and takes one FIRE step for those not yet converged.
Converged tasks leave the batch and pending ones take their place (up to `batch_size`).

The FIRE update is ASE's (`ase.optimize.FIRE`, Bitzek et al., PRL 97, 170201 (2006)), with
the same parameters and the same order of operations, so a task follows ASE's FIRE step for
step:

    P = F·v;  P > 0: v ← (1-α) v + α |v| F/|F|, and after Nmin such steps Δt ← min(Δt·finc,
    Δtmax), α ← α·fa;   P ≤ 0: v ← 0, α ← αstart, Δt ← Δt·fdec
    v ← v + Δt F;  Δr = Δt v, scaled down to |Δr| = maxstep when longer (norm over all dofs).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from ase.utils.abc import Optimizable

from mlipserve.simulation.progress import ProgressBar


@dataclass(frozen=True)
class FIREParams:
    """FIRE parameters, with ASE's defaults (ase.optimize.FIRE)."""

    dt: float = 0.1
    maxstep: float = 0.2
    dtmax: float = 1.0
    Nmin: int = 5
    finc: float = 1.1
    fdec: float = 0.5
    astart: float = 0.1
    fa: float = 0.99

    def __post_init__(self) -> None:
        if self.dt <= 0 or self.maxstep <= 0 or self.dtmax <= 0:
            raise ValueError("FIRE: dt, maxstep and dtmax must be positive")


class FIREState:
    """One task's FIRE state (velocity, time step, mixing α, steps since P ≤ 0)."""

    def __init__(self, params: FIREParams) -> None:
        self.params = params
        self.vel: np.ndarray | None = None
        self.dt = params.dt
        self.a = params.astart
        self.n_positive = 0
        self.nsteps = 0

    def step(self, optimizable: Optimizable, gradient: np.ndarray) -> None:
        """Move `optimizable` by one FIRE step given its gradient (−forces, flat)."""
        p = self.params
        force = -gradient
        if self.vel is None:
            self.vel = np.zeros(optimizable.ndofs())
        else:
            vf = np.vdot(force, self.vel)
            if vf > 0.0:
                self.vel = (1.0 - self.a) * self.vel + self.a * force / np.sqrt(
                    np.vdot(force, force)
                ) * np.sqrt(np.vdot(self.vel, self.vel))
                if self.n_positive > p.Nmin:
                    self.dt = min(self.dt * p.finc, p.dtmax)
                    self.a *= p.fa
                self.n_positive += 1
            else:
                self.vel[:] *= 0.0
                self.a = p.astart
                self.dt *= p.fdec
                self.n_positive = 0
        self.vel += self.dt * force
        dr = self.dt * self.vel
        normdr = np.sqrt(np.vdot(dr, dr))
        if normdr > p.maxstep:
            dr = p.maxstep * dr / normdr
        optimizable.set_x(optimizable.get_x() + dr)
        self.nsteps += 1


class ProviderResults(Calculator):
    """A calculator holding one provider result for one atoms state (refuses a stale state)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, atoms: Atoms, result: dict[str, Any]) -> None:
        super().__init__()
        self.results = {
            k: result[k] for k in ("energy", "forces", "stress", "energies") if k in result
        }
        if "energy" in self.results:
            self.results["free_energy"] = self.results["energy"]
        self._positions = atoms.positions.copy()
        self._cell = atoms.cell.array.copy()

    def get_property(
        self, name: str, atoms: Atoms | None = None, allow_calculation: bool = True
    ) -> Any:
        """The stored result; a RuntimeError if `atoms` moved since it was evaluated."""
        if name not in self.results:
            raise PropertyNotImplementedError(f"{name!r} was not requested from the provider")
        if atoms is not None and not (
            np.array_equal(atoms.positions, self._positions)
            and np.array_equal(atoms.cell.array, self._cell)
        ):
            raise RuntimeError("atoms moved after their batched evaluation; evaluate them again")
        value = self.results[name]
        return value.copy() if isinstance(value, np.ndarray) else value


class Task(Protocol):
    """What the engine drives: an optimizable plus the systems it needs evaluated."""

    @property
    def optimizable(self) -> Optimizable:
        """The ASE optimizable the FIRE steps move."""
        ...

    def pending(self) -> list[Any]:
        """Systems to evaluate before the next gradient (may be empty when nothing moved)."""
        ...

    def receive(self, results: list[dict[str, Any]]) -> None:
        """Take the provider's results for the systems `pending` returned, in order."""
        ...


@dataclass
class Outcome:
    """How one task ended: FIRE steps taken, convergence, final gradient norm."""

    steps: int
    converged: bool
    fmax: float


def check_run_args(fmax: float, max_steps: int, batch_size: int | None) -> None:
    """Raise ValueError on a non-positive fmax, negative max_steps or batch_size < 1."""
    if not fmax > 0:
        raise ValueError(f"fmax must be positive, got {fmax}")
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")


def run_batched(
    provider: Any,
    tasks: Sequence[Task],
    *,
    properties: Sequence[str] = ("energy", "forces"),
    fmax: float = 0.05,
    max_steps: int = 500,
    batch_size: int | None = None,
    params: FIREParams | None = None,
    progress: bool = True,
    description: str = "FIRE",
) -> list[Outcome]:
    """Relax every task with FIRE, one provider call per iteration for the whole batch.

    A task is converged when max_i |F_i| < fmax (ASE's criterion, rows of the optimizable's
    forces); it stops moving and leaves the batch. A task also leaves after `max_steps` FIRE
    steps (not converged). `batch_size` caps how many tasks are active at once; the rest wait
    in a queue and join as others finish. Returns one Outcome per task, in order.
    """
    check_run_args(fmax, max_steps, batch_size)
    params = params or FIREParams()
    cap = len(tasks) if batch_size is None else batch_size
    queue = deque(range(len(tasks)))
    active: list[int] = []
    states: dict[int, FIREState] = {}
    outcomes: list[Outcome | None] = [None] * len(tasks)
    with ProgressBar(progress, description, len(tasks), transient=False, eta=False) as bar:
        iteration = 0
        while queue or active:
            while queue and len(active) < cap:
                i = queue.popleft()
                active.append(i)
                states[i] = FIREState(params)
            _evaluate(provider, [tasks[i] for i in active], properties)
            still = []
            for i in active:
                opt, state = tasks[i].optimizable, states[i]
                gradient = opt.get_gradient()
                converged = bool(opt.converged(gradient, fmax))
                if converged or state.nsteps >= max_steps:
                    outcomes[i] = Outcome(
                        state.nsteps, converged, float(opt.gradient_norm(gradient))
                    )
                    del states[i]
                    bar.advance()
                else:
                    state.step(opt, gradient)
                    still.append(i)
            active = still
            iteration += 1
            bar.update(
                description=f"{description}: iteration {iteration}, "
                f"{len(active)} active, {len(queue)} queued"
            )
    return [o for o in outcomes if o is not None]


def _evaluate(provider: Any, tasks: Sequence[Task], properties: Sequence[str]) -> None:
    """One provider call for every system the tasks need; results back to their owners."""
    systems: list[Any] = []
    counts = []
    for task in tasks:
        wanted = task.pending()
        systems.extend(wanted)
        counts.append(len(wanted))
    if not systems:
        return
    results = provider.evaluate(systems, tuple(properties))
    if len(results) != len(systems):
        raise RuntimeError(f"provider returned {len(results)} results for {len(systems)} systems")
    start = 0
    for task, n in zip(tasks, counts):
        if n:
            task.receive(results[start : start + n])
        start += n
