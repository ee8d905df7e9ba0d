"""Serve any ASE calculator (EMT first) for reference comparisons."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.batch import SystemBatch

MAX_SLOTS = 64  # calculators kept between batches (one per position in a batch)


class ASECalculatorModel:
    """Potential that runs an ASE calculator system by system (no ensemble).

    The calculator at position s of a batch is kept for position s of the next batch: when
    that system has the same atoms, cell and pbc (the next MD step of the same client), only
    `positions` is reported changed, so a calculator like EMT keeps its neighbour list (it
    rebuilds it itself when atoms moved past its skin). Otherwise it starts afresh.
    """

    def __init__(self, factory: Callable[[], Calculator], info: ModelInfo) -> None:
        self.factory = factory
        self.calculator = factory()
        self.info = info
        self._slots: list[tuple[Calculator, Atoms]] = []

    def _calculator_for(self, slot: int, atoms: Atoms) -> tuple[Calculator, list[str]]:
        """The slot's calculator and what changed since its last system."""
        if slot >= MAX_SLOTS:
            return self.calculator, list(all_changes)
        if slot == len(self._slots):
            self._slots.append((self.factory(), atoms))
            return self._slots[slot][0], list(all_changes)
        calculator, last = self._slots[slot]
        self._slots[slot] = (calculator, atoms)
        same = (
            len(last) == len(atoms)
            and np.array_equal(last.numbers, atoms.numbers)
            and np.array_equal(last.cell.array, atoms.cell.array)
            and np.array_equal(last.pbc, atoms.pbc)
        )
        return calculator, (["positions"] if same else list(all_changes))

    def compute(self, batch: SystemBatch, properties: frozenset[str]) -> dict[str, np.ndarray]:
        """Energy (and forces, stress, per-atom energies when asked) of each system.

        The calculator's `calculate` is called directly (ASE's protocol) with what changed,
        rather than through `get_property`, whose full state comparison costs more than a
        cheap calculator's work.
        """
        wanted = ["energy"] + [p for p in ("forces", "stress", "energies") if p in properties]
        offsets = batch.offsets
        collected: dict[str, list] = {key: [] for key in wanted}
        for s in range(batch.n_systems):
            lo, hi = offsets[s], offsets[s + 1]
            atoms = Atoms(
                numbers=batch.numbers[lo:hi],
                positions=batch.positions[lo:hi],
                cell=batch.cell[s],
                pbc=batch.pbc[s],
            )
            calculator, changes = self._calculator_for(s, atoms)
            calculator.calculate(atoms, wanted, changes)
            results = calculator.results
            for key in wanted:
                if key not in results:
                    raise RuntimeError(f"{type(calculator).__name__} did not compute {key!r}")
                collected[key].append(np.asarray(results[key], dtype=np.float64))
        out = {"energy": np.array(collected["energy"])}
        for key in ("forces", "energies"):
            if key in collected:
                out[key] = np.concatenate(collected[key])
        if "stress" in collected:
            out["stress"] = np.stack(
                [
                    full_3x3_to_voigt_6_stress(s) if s.shape == (3, 3) else s
                    for s in collected["stress"]
                ]
            )
        return out


def emt_model(name: str = "emt", version: str = "ase") -> ASECalculatorModel:
    """ASE's EMT (Al, Cu, Ag, Au, Ni, Pd, Pt, H, C, N, O) as a served model."""
    from ase.calculators.emt import EMT, parameters
    from ase.data import atomic_numbers

    elements = frozenset(atomic_numbers[s] for s in parameters)
    info = ModelInfo(name=name, version=version, kind="ase:EMT", cutoff=0.0, elements=elements)
    return ASECalculatorModel(EMT, info)
