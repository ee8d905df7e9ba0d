"""Kohn-Sham DFT (or Hartree-Fock) labels for molecules through PySCF.

Energies come from ``mf.kernel()`` in Hartree, forces from the analytic nuclear gradient in
Hartree/Bohr: ``E[eV] = E_h · Hartree``, ``F[eV/Å] = -∇E · Hartree / Bohr``. An SCF that does
not converge within ``max_cycle`` gives a failed Label and is never stored as data.

Periodic cells are refused: PySCF's ``pbc`` module needs pseudopotentials, k-point meshes and
plane-wave-like basis sets that a labelling job cannot choose sensibly for arbitrary cells, and
its analytic stress is not available for all functionals. Label periodic structures with
``xtb`` or a plane-wave code through ``ase:<module>.<Class>`` (VASP, Quantum ESPRESSO).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import Bohr, Hartree

from mlipserve.server.labellers.base import (
    Label,
    LabelFailure,
    check_structures,
    json_safe,
    package_version,
    run_one,
)


class PyscfLabeller:
    """PBE/def2-SVP (default) energies and analytic forces for molecules via PySCF.

    Args:
        xc: exchange-correlation functional as PySCF names it ("PBE", "B3LYP", ...); "HF" runs
            Hartree-Fock.
        basis: Gaussian basis set name ("def2-SVP", "sto-3g", "cc-pVDZ", ...).
        charge: total charge (e).
        spin: number of unpaired electrons 2S (PySCF's convention, 0 = closed shell);
            non-zero runs unrestricted (UKS/UHF).
        conv_tol: SCF energy convergence threshold (Hartree).
        max_cycle: SCF cycle limit.
        grid_level: DFT integration grid level (0-9).
        density_fit: use density fitting (faster for larger molecules).
    """

    name = "pyscf"

    def __init__(
        self,
        xc: str = "PBE",
        basis: str = "def2-SVP",
        charge: int = 0,
        spin: int = 0,
        conv_tol: float = 1e-9,
        max_cycle: int = 50,
        grid_level: int = 3,
        density_fit: bool = False,
    ) -> None:
        if int(spin) < 0:
            raise ValueError(f"spin is the number of unpaired electrons 2S >= 0, got {spin}")
        if conv_tol <= 0 or int(max_cycle) < 1:
            raise ValueError(
                f"conv_tol must be > 0 and max_cycle >= 1, got {conv_tol}, {max_cycle}"
            )
        if not 0 <= int(grid_level) <= 9:
            raise ValueError(f"grid_level must be in 0..9, got {grid_level}")
        self.xc = str(xc)
        self.basis = str(basis)
        self.charge = int(charge)
        self.spin = int(spin)
        self.conv_tol = float(conv_tol)
        self.max_cycle = int(max_cycle)
        self.grid_level = int(grid_level)
        self.density_fit = bool(density_fit)
        self.version = package_version("pyscf")

    @property
    def settings(self) -> dict[str, Any]:
        """The SCF settings recorded in every label's provenance."""
        return json_safe(
            {
                "xc": self.xc,
                "basis": self.basis,
                "charge": self.charge,
                "spin": self.spin,
                "conv_tol": self.conv_tol,
                "max_cycle": self.max_cycle,
                "grid_level": self.grid_level,
                "density_fit": self.density_fit,
            }
        )

    def mean_field(self, atoms: Atoms):
        """The (not yet run) PySCF SCF object for a molecule; exposed for tests and debugging."""
        from pyscf import dft, gto, scf

        mol = gto.M(
            atom=[(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)],
            unit="Angstrom",
            basis=self.basis,
            charge=self.charge,
            spin=self.spin,
            verbose=0,
        )
        if self.xc.upper() == "HF":
            mf = scf.UHF(mol) if self.spin else scf.RHF(mol)
        else:
            mf = dft.UKS(mol) if self.spin else dft.RKS(mol)
            mf.xc = self.xc
            mf.grids.level = self.grid_level
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        return mf.density_fit() if self.density_fit else mf

    def _compute(self, atoms: Atoms) -> dict:
        mf = self.mean_field(atoms)
        energy = mf.kernel()
        scf_info = {
            "converged": bool(mf.converged),
            "cycles": getattr(mf, "cycles", None),
            "energy_hartree": float(energy),
        }
        if not mf.converged:
            raise SCFNotConverged(
                f"SCF not converged after {self.max_cycle} cycles (conv_tol={self.conv_tol:g} Ha)",
                {"scf": scf_info},
            )
        gradient = np.asarray(mf.nuc_grad_method().kernel())
        return {
            "energy": float(energy) * Hartree,
            "forces": -gradient * Hartree / Bohr,
            "_provenance": {"scf": scf_info},
        }

    def label(self, structures: Sequence[Atoms]) -> list[Label]:
        """Label each molecule; unconverged SCF and PySCF errors become failed Labels."""
        check_structures(structures)
        periodic = [i for i, a in enumerate(structures) if a.pbc.any()]
        if periodic:
            raise ValueError(
                f"the pyscf labeller handles molecules only (pbc all False); "
                f"structures {periodic} are periodic: use 'xtb' or "
                f"'ase:<module>.<Class>' with a plane-wave code for cells"
            )
        provenance = {"labeller": self.name, "version": self.version, "settings": self.settings}
        return [run_one(atoms, self._compute, provenance) for atoms in structures]


class SCFNotConverged(LabelFailure):
    """The SCF cycle hit max_cycle without meeting conv_tol."""
