"""Kohn-Sham DFT (or Hartree-Fock) labels for molecules through PySCF.

Energies come from ``mf.kernel()`` in Hartree, forces from the analytic nuclear gradient in
Hartree/Bohr: ``E[eV] = E_h · Hartree``, ``F[eV/Å] = -∇E · Hartree / Bohr``, dipoles (e·Å)
from the SCF density. An SCF that does not converge within ``max_cycle`` gives a failed Label
and is never stored as data.

A uniform electric field (V/Å, the convention of the xtb labeller and of the served field
models) adds ``E·r`` to the one-electron Hamiltonian and ``-Σ_A Z_A E·R_A`` to the nuclear
energy, so the energy is the electric enthalpy (``dE/dE_field = -dipole``); the analytic
gradient gets the matching terms (``-(∇μ|E·r|ν)`` and ``+Z_A E`` on each nucleus). Origin:
the coordinate origin, as for xTB.

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
        electric_field: uniform field (V/Å, 3 components); None: no field.
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
        electric_field: Sequence[float] | None = None,
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
        self.electric_field = None
        if electric_field is not None:
            field = np.asarray(electric_field, dtype=float)
            if field.shape != (3,) or not np.all(np.isfinite(field)):
                raise ValueError(f"electric_field must be 3 finite numbers (V/Å), got {field}")
            self.electric_field = field
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
                "electric_field_V_per_A": self.electric_field,
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
        if self.electric_field is not None:
            _add_field(mf, self.electric_field * Bohr / Hartree)
        return mf.density_fit() if self.density_fit else mf

    def _gradient(self, mf) -> np.ndarray:
        grad = mf.nuc_grad_method()
        if self.electric_field is not None:
            _add_field_gradient(grad, self.electric_field * Bohr / Hartree)
        return np.asarray(grad.kernel())

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
        gradient = self._gradient(mf)
        dipole = np.asarray(mf.dip_moment(unit="AU", verbose=0)) * Bohr
        return {
            "energy": float(energy) * Hartree,
            "forces": -gradient * Hartree / Bohr,
            "dipole": dipole,
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


def _add_field(mf, field_au: np.ndarray) -> None:
    """Put a uniform field (atomic units) into `mf`'s core Hamiltonian and nuclear energy."""
    mol = mf.mol
    h_field = np.einsum("x,xij->ij", field_au, mol.intor("int1e_r", comp=3))
    nuc_field = -float(mol.atom_charges() @ (mol.atom_coords() @ field_au))
    base_hcore, base_nuc = mf.get_hcore, mf.energy_nuc
    mf.get_hcore = lambda *args, **kw: base_hcore(*args, **kw) + h_field
    mf.energy_nuc = lambda *args, **kw: base_nuc(*args, **kw) + nuc_field


def _add_field_gradient(grad, field_au: np.ndarray) -> None:
    """The field's terms of the nuclear gradient: -(∇μ|E·r|ν) in the core part, -Z_A E on nuclei."""
    mol = grad.mol
    n = mol.nao
    # int1e_irp is (μ| r_x ∇_d |ν), component 3x + d; (∇_d μ| r_x |ν) is its transpose.
    irp = mol.intor("int1e_irp", comp=9).reshape(3, 3, n, n)
    d_field = np.einsum("x,xdij->dji", field_au, irp)
    base_hcore, base_nuc = grad.get_hcore, grad.grad_nuc
    grad.get_hcore = lambda *args, **kw: base_hcore(*args, **kw) - d_field
    grad.grad_nuc = lambda *args, **kw: (
        base_nuc(*args, **kw) - np.outer(mol.atom_charges(), field_au)
    )


class SCFNotConverged(LabelFailure):
    """The SCF cycle hit max_cycle without meeting conv_tol."""
