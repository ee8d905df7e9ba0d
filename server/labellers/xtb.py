"""GFN-xTB labels through tblite's Python API: molecules and periodic cells, charge, spin, field.

Units: tblite works in Hartree and Bohr; results are converted to eV, eV/Å, eV/Å³ (Voigt,
``stress = virial / V``) and e·Å (dipole). The electric field is given in V/Å and passed to
tblite in atomic units, ``F_au = F · Bohr / Hartree`` (1 a.u. = 51.42 V/Å); the energy then
contains ``-μ·F``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import Bohr, Hartree, kB

from mlipserve.server.labellers.base import (
    Label,
    check_structures,
    json_safe,
    package_version,
    run_one,
    wants_stress,
)

METHODS = ("GFN2-xTB", "GFN1-xTB", "IPEA1-xTB")


class XtbLabeller:
    """GFN2-xTB (default) energies, forces, stress (3D cells) and dipoles via tblite.

    Args:
        method: "GFN2-xTB", "GFN1-xTB" or "IPEA1-xTB".
        charge: total charge (e) of every structure.
        multiplicity: spin multiplicity 2S+1 (1 = closed shell); unpaired electrons = m - 1.
        accuracy: tblite's numerical accuracy factor (smaller is tighter).
        electronic_temperature: Fermi smearing temperature in K.
        max_iterations: SCF cycle limit; an unconverged SCF gives a failed Label.
        electric_field: uniform field (V/Å, 3 components), molecules only.
    """

    name = "xtb"

    def __init__(
        self,
        method: str = "GFN2-xTB",
        charge: int = 0,
        multiplicity: int = 1,
        accuracy: float = 1.0,
        electronic_temperature: float = 300.0,
        max_iterations: int = 250,
        electric_field: Sequence[float] | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"xtb method {method!r} is not one of {METHODS}")
        if int(multiplicity) < 1:
            raise ValueError(f"multiplicity must be >= 1 (2S+1), got {multiplicity}")
        if accuracy <= 0 or electronic_temperature < 0 or int(max_iterations) < 1:
            raise ValueError(
                "accuracy must be > 0, electronic_temperature >= 0, max_iterations >= 1"
            )
        field = None
        if electric_field is not None:
            field = np.asarray(electric_field, dtype=float)
            if field.shape != (3,) or not np.all(np.isfinite(field)):
                raise ValueError(f"electric_field must be 3 finite numbers (V/Å), got {field}")
        self.method = method
        self.charge = int(charge)
        self.multiplicity = int(multiplicity)
        self.accuracy = float(accuracy)
        self.electronic_temperature = float(electronic_temperature)
        self.max_iterations = int(max_iterations)
        self.electric_field = field
        self.version = package_version("tblite")

    @property
    def settings(self) -> dict[str, Any]:
        """The settings recorded in every label's provenance."""
        return json_safe(
            {
                "method": self.method,
                "charge": self.charge,
                "multiplicity": self.multiplicity,
                "accuracy": self.accuracy,
                "electronic_temperature_K": self.electronic_temperature,
                "max_iterations": self.max_iterations,
                "electric_field_V_per_A": self.electric_field,
            }
        )

    def _compute(self, atoms: Atoms) -> dict:
        from tblite.interface import Calculator
        from tblite.library import ffi

        calc = Calculator(
            self.method,
            atoms.numbers,
            atoms.positions / Bohr,
            self.charge,
            self.multiplicity - 1,
            np.asarray(atoms.cell) / Bohr,
            atoms.pbc,
        )
        calc.set("verbosity", 0)
        calc.set("accuracy", self.accuracy)
        calc.set("temperature", self.electronic_temperature * kB / Hartree)
        calc.set("max-iter", self.max_iterations)
        if self.electric_field is not None:
            # tblite 0.8's wrapper hands a numpy array to cffi, which wants a double*: pass one.
            field_au = np.ascontiguousarray(self.electric_field * Bohr / Hartree)
            calc.add("electric-field", ffi.cast("double*", field_au.ctypes.data))
        res = calc.singlepoint()
        results = {
            "energy": float(res["energy"]) * Hartree,
            "forces": -np.asarray(res["gradient"]) * Hartree / Bohr,
            "dipole": np.asarray(res["dipole"]) * Bohr,
        }
        if wants_stress(atoms):
            virial = np.asarray(res["virial"]) * Hartree / atoms.get_volume()
            results["stress"] = virial.flat[[0, 4, 8, 5, 2, 1]]
        return results

    def label(self, structures: Sequence[Atoms]) -> list[Label]:
        """Label each structure; SCF failures become failed Labels with tblite's message."""
        check_structures(structures)
        if self.electric_field is not None:
            periodic = [i for i, a in enumerate(structures) if a.pbc.any()]
            if periodic:
                raise ValueError(
                    f"an electric field is only defined here for molecules; "
                    f"structures {periodic} are periodic"
                )
        provenance = {"labeller": self.name, "version": self.version, "settings": self.settings}
        return [run_one(atoms, self._compute, provenance) for atoms in structures]


def charge_scan(
    atoms: Atoms, charges: Sequence[int] = (-1, 0, 1), **settings: Any
) -> dict[int, float]:
    """xTB energy (eV) of `atoms` at each total charge (odd electron counts as doublets,
    i.e. multiplicity 1 + |charge| mod 2 for a closed-shell neutral): E(N) for the μe
    dependence. The capacitance dQ/dμe at N is 1/(E(N+1) + E(N−1) − 2E(N))."""
    energies = {}
    for q in charges:
        labeller = XtbLabeller(charge=int(q), multiplicity=1 + abs(int(q)) % 2, **settings)
        (label,) = labeller.label([atoms])
        if not label.ok:
            raise ValueError(f"xTB failed at charge {q}: {label.error}")
        energies[int(q)] = float(label.atoms.calc.results["energy"])
    return energies
