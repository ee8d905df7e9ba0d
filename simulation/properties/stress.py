"""Stress as a full 3×3 tensor: the provider's, and an independent finite-difference one.

The finite-difference stress deforms the cell and positions by a general (not symmetric)
deformation gradient F = I + h·e_ij and takes central differences of the energy,

    D_ij = (1/V) [E(I + h e_ij) − E(I − h e_ij)] / (2h),

all 18 deformed cells in one provider call. For a rotationally invariant potential D is
symmetric (an antisymmetric F is a rotation, which costs no energy), and D equals the
Cauchy stress in ASE's sign convention (positive: the cell wants to shrink).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

from mlipserve.simulation.properties.bulk import check_atoms, voigt_to_matrix


@dataclass
class StressCheck:
    """Provider stress vs finite-difference stress of one configuration (eV/Å³, 3×3)."""

    stress: np.ndarray
    finite_difference: np.ndarray
    asymmetry: float
    fd_asymmetry: float
    max_difference: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "stress": self.stress.tolist(),
            "finite_difference": self.finite_difference.tolist(),
            "asymmetry": self.asymmetry,
            "fd_asymmetry": self.fd_asymmetry,
            "max_difference": self.max_difference,
        }


def deformed(atoms: Atoms, gradient: np.ndarray) -> Atoms:
    """A copy of `atoms` with cell and positions mapped by the deformation gradient F (3×3)."""
    F = np.asarray(gradient, dtype=float)
    if F.shape != (3, 3):
        raise ValueError(f"deformation gradient must be 3×3, got {F.shape}")
    out = atoms.copy()
    out.calc = None
    out.set_cell(atoms.cell.array @ F.T, scale_atoms=False)
    out.positions = atoms.positions @ F.T
    return out


def asymmetry(tensor: np.ndarray) -> float:
    """‖T − Tᵀ‖ / ‖T‖ (Frobenius); 0 for a zero tensor."""
    t = np.asarray(tensor, dtype=float)
    norm = np.linalg.norm(t)
    return float(np.linalg.norm(t - t.T) / norm) if norm > 0 else 0.0


def provider_stress(provider: Any, atoms: Atoms) -> np.ndarray:
    """The provider's stress of `atoms` as a 3×3 tensor (eV/Å³)."""
    check_atoms(atoms, "provider_stress")
    (res,) = provider.evaluate([atoms], ("energy", "stress"))
    return voigt_to_matrix(res["stress"])


def check_stress(provider: Any, atoms: Atoms, h: float = 1e-4) -> StressCheck:
    """Compare the provider's stress with central differences of its energy (one call)."""
    check_atoms(atoms, "check_stress")
    if not 0 < h < 0.05:
        raise ValueError(f"finite-difference step h must be in (0, 0.05), got {h}")
    cells = [atoms]
    for i in range(3):
        for j in range(3):
            for sign in (1.0, -1.0):
                F = np.eye(3)
                F[i, j] += sign * h
                cells.append(deformed(atoms, F))
    results = provider.evaluate(cells, ("energy", "stress"))
    stress = voigt_to_matrix(results[0]["stress"])
    energies = np.array([r["energy"] for r in results[1:]]).reshape(3, 3, 2)
    fd = (energies[..., 0] - energies[..., 1]) / (2.0 * h * atoms.get_volume())
    return StressCheck(
        stress=stress,
        finite_difference=fd,
        asymmetry=asymmetry(stress),
        fd_asymmetry=asymmetry(fd),
        max_difference=float(np.abs(fd - stress).max()),
    )
