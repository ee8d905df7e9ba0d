"""Batched structure relaxation: FIRE over many systems, one provider call per iteration.

Positions only, or positions and cell with ASE's `FrechetCellFilter` semantics (the filter
maps positions + cell to generalised coordinates and forces + stress to generalised forces;
one filter per system, fed by the batched results). Per-system convergence: a converged
system stops moving and leaves the batch, which is refilled from the queue of pending
systems up to `batch_size`. A single system follows `ase.optimize.FIRE` step for step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.filters import FrechetCellFilter
from ase.optimize.optimize import OptimizableAtoms
from ase.utils.abc import Optimizable

from mlipserve.simulation.fire import FIREParams, ProviderResults, run_batched


@dataclass
class RelaxResult:
    """One relaxed system: a relaxed copy (results attached), energy, fmax, steps, converged."""

    atoms: Atoms
    energy: float
    fmax: float
    steps: int
    converged: bool


class RelaxTask:
    """One system under relaxation: its atoms copy and the ASE optimizable FIRE moves."""

    def __init__(
        self,
        atoms: Atoms,
        relax_cell: bool = False,
        pressure: float = 0.0,
        cell_filter_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.atoms = atoms.copy()
        self.atoms.calc = None
        if relax_cell:
            self.filter: FrechetCellFilter | None = FrechetCellFilter(
                self.atoms, scalar_pressure=pressure, **(cell_filter_kwargs or {})
            )
            self._optimizable = self.filter.__ase_optimizable__()
        else:
            self.filter = None
            self._optimizable = OptimizableAtoms(self.atoms)
        self.result: dict[str, Any] = {}

    def finish(self) -> Atoms:
        """The relaxed atoms with their last results frozen in a SinglePointCalculator."""
        keys = ("energy", "forces", "stress")
        self.atoms.calc = SinglePointCalculator(
            self.atoms, **{k: self.result[k] for k in keys if k in self.result}
        )
        return self.atoms

    @property
    def optimizable(self) -> Optimizable:
        """Positions (OptimizableAtoms) or positions + cell (the FrechetCellFilter)."""
        return self._optimizable

    def pending(self) -> list[Atoms]:
        """The system itself: it moved (or is new) since the last call."""
        return [self.atoms]

    def receive(self, results: list[dict[str, Any]]) -> None:
        """Attach the provider's result to the atoms as their calculator."""
        (self.result,) = results
        self.atoms.calc = ProviderResults(self.atoms, self.result)


def relax_batch(
    provider: Any,
    systems: Sequence[Atoms],
    *,
    fmax: float = 0.05,
    max_steps: int = 500,
    relax_cell: bool = False,
    batch_size: int | None = None,
    progress: bool = True,
    pressure: float = 0.0,
    params: FIREParams | None = None,
    cell_filter_kwargs: dict[str, Any] | None = None,
) -> list[RelaxResult]:
    """Relax every system with FIRE, all active systems in one provider call per iteration.

    Converged when max_i |F_i| < fmax (eV/Å; with `relax_cell` the FrechetCellFilter's
    generalised forces, cell rows included, as in ASE). Systems are copied, never modified;
    constraints (e.g. FixAtoms) are honoured as ASE honours them. `pressure` (eV/Å³) is the
    filter's scalar pressure; `cell_filter_kwargs` go to FrechetCellFilter (e.g. `mask`,
    `hydrostatic_strain`, `constant_volume`). Stress is requested only with `relax_cell`.
    Each result's atoms carry a SinglePointCalculator with the final energy and forces
    (and stress).
    """
    if not all(isinstance(s, Atoms) for s in systems):
        raise ValueError("relax_batch takes a list of ase.Atoms")
    if relax_cell and not all(s.pbc.all() for s in systems):
        raise ValueError("relax_cell needs periodic systems (pbc all True)")
    tasks = [RelaxTask(s, relax_cell, pressure, cell_filter_kwargs) for s in systems]
    properties = ("energy", "forces", "stress") if relax_cell else ("energy", "forces")
    outcomes = run_batched(
        provider,
        tasks,
        properties=properties,
        fmax=fmax,
        max_steps=max_steps,
        batch_size=batch_size,
        params=params,
        progress=progress,
        description="relax",
    )
    return [
        RelaxResult(
            atoms=task.finish(),
            energy=float(task.result["energy"]),
            fmax=out.fmax,
            steps=out.steps,
            converged=out.converged,
        )
        for task, out in zip(tasks, outcomes)
    ]
