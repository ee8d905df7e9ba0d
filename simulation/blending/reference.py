"""ASECalculatorProvider: any ASE calculator (EMT, tblite's xTB, PySCF, ...) as a ForceProvider.

Torch-free and in-process, so reference calculations (the "QM" of a blended QM/MLIP run)
work on the client:

```python
from ase.calculators.emt import EMT
from tblite.ase import TBLite
emt = ASECalculatorProvider(EMT())
xtb = ASECalculatorProvider(TBLite(method="GFN2-xTB", verbosity=0))
```

Systems are evaluated one after another with the one calculator (ASE calculators are
serial); the call still takes the whole batch, like every ForceProvider.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mlipserve.wire import SystemArrays

PROPERTIES = ("energy", "forces", "stress", "energies")


def as_atoms(system: Any) -> Atoms:
    """An ase.Atoms (a copy without calculator) of an Atoms or a SystemArrays."""
    if isinstance(system, Atoms):
        atoms = system.copy()
        atoms.calc = None
        return atoms
    if isinstance(system, SystemArrays):
        atoms = Atoms(
            numbers=system.numbers, positions=system.positions, cell=system.cell, pbc=system.pbc
        )
        for key, value in system.conditions.items():
            atoms.info[key] = float(value) if np.ndim(value) == 0 else np.asarray(value)
        return atoms
    raise ValueError(f"a system must be ase.Atoms or SystemArrays, got {type(system).__name__}")


class ASECalculatorProvider:
    """ForceProvider over one ASE calculator, evaluated system by system in this process.

    Args:
        calculator: an ASE Calculator instance (reused for every system).
        name: the `model` reported with each result (default: the calculator's class name).
    """

    def __init__(self, calculator: Calculator, name: str | None = None) -> None:
        if not hasattr(calculator, "calculate"):
            raise ValueError(
                f"calculator must be an ASE Calculator, got {type(calculator).__name__}"
            )
        self.calculator = calculator
        self.name = name or type(calculator).__name__
        self.calls = 0
        self.systems_evaluated = 0

    def provenance(self) -> dict[str, Any]:
        """The calculator's name and ASE's version; it runs in this process."""
        import ase

        return {
            "model": self.name,
            "model_version": f"ase-{ase.__version__}",
            "server": "in-process",
        }

    def evaluate(
        self, systems: Sequence[Any], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Energy (and forces, stress, per-atom energies when asked) of every system."""
        unknown = sorted(set(properties) - set(PROPERTIES))
        if unknown:
            raise ValueError(f"ASECalculatorProvider cannot compute {unknown}; known: {PROPERTIES}")
        wanted = ["energy"] + [p for p in PROPERTIES[1:] if p in properties]
        self.calls += 1
        out = []
        for system in systems:
            atoms = as_atoms(system)
            if "stress" in wanted and not atoms.pbc.all():
                raise ValueError("stress needs a periodic system (pbc all True)")
            self.calculator.calculate(atoms, wanted, all_changes)
            results = self.calculator.results
            res: dict[str, Any] = {"model": self.name, "model_version": "ase"}
            for key in wanted:
                if key not in results:
                    raise ValueError(f"{self.name} did not compute {key!r}")
                value = np.array(results[key], dtype=float)
                if key == "stress" and value.shape == (3, 3):
                    value = full_3x3_to_voigt_6_stress(value)
                res[key] = float(value) if key == "energy" else value
            out.append(res)
            self.systems_evaluated += 1
        return out
