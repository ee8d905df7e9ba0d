"""Serve any ASE calculator (EMT first) for reference comparisons."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from mlipserve.server.batch import SystemBatch
from mlipserve.server.models.base import ModelInfo


class ASECalculatorModel:
    """Evaluator that runs an ASE calculator system by system (no ensemble)."""

    def __init__(self, factory: Callable[[], Calculator], info: ModelInfo) -> None:
        self.factory = factory
        self.calculator = factory()
        self.info = info

    def compute(self, batch: SystemBatch, properties: frozenset[str]) -> dict[str, np.ndarray]:
        """Energy (and forces, stress, per-atom energies when asked) of each system."""
        offsets = batch.offsets
        energy, forces, stress, energies = [], [], [], []
        for s in range(batch.n_systems):
            lo, hi = offsets[s], offsets[s + 1]
            atoms = Atoms(
                numbers=batch.numbers[lo:hi],
                positions=batch.positions[lo:hi],
                cell=batch.cell[s],
                pbc=batch.pbc[s],
            )
            atoms.calc = self.calculator
            energy.append(atoms.get_potential_energy())
            if "forces" in properties:
                forces.append(atoms.get_forces())
            if "stress" in properties:
                stress.append(atoms.get_stress(voigt=True))
            if "energies" in properties:
                energies.append(atoms.get_potential_energies())
        result = {"energy": np.array(energy)}
        if forces:
            result["forces"] = np.concatenate(forces)
        if stress:
            result["stress"] = np.stack(stress)
        if energies:
            result["energies"] = np.concatenate(energies)
        return result


def emt_model(name: str = "emt", version: str = "ase") -> ASECalculatorModel:
    """ASE's EMT (Al, Cu, Ag, Au, Ni, Pd, Pt, H, C, N, O) as a served model."""
    from ase.calculators.emt import EMT, parameters
    from ase.data import atomic_numbers

    elements = frozenset(atomic_numbers[s] for s in parameters)
    info = ModelInfo(name=name, version=version, kind="ase:EMT", cutoff=0.0, elements=elements)
    return ASECalculatorModel(EMT, info)
