"""Shared bulk references: relaxed fcc lattice constants and per-atom energies, unit helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.data import atomic_numbers, reference_states

EV_PER_A2_TO_J_PER_M2 = units._e * 1e20  # 1 eV/Å² in J/m² (ASE's CODATA)


@dataclass(frozen=True)
class FccReference:
    """A pure element's fcc crystal relaxed on the model: lattice constant (Å), energy (eV/atom)."""

    symbol: str
    a: float
    energy_per_atom: float


def guess_fcc_lattice_constant(symbol: str) -> float:
    """ASE's reference lattice constant (Å) for an fcc element, else one from its volume."""
    if symbol not in atomic_numbers:
        raise ValueError(f"unknown element {symbol!r}")
    state = reference_states[atomic_numbers[symbol]]
    a = state.get("a") if state else None
    if state and state.get("symmetry") == "fcc" and isinstance(a, int | float):
        return float(a)
    raise ValueError(f"{symbol} is not fcc in ASE's reference data; give the lattice constant")


def relaxed_fcc(
    provider: Any, symbols: Sequence[str], *, rounds: tuple[float, ...] = (0.04, 0.004)
) -> dict[str, FccReference]:
    """Equilibrium lattice constant and energy per atom of every element's fcc crystal.

    Cubic symmetry leaves one degree of freedom, so instead of a cell relaxation the energy
    of the one-atom cell is scanned over a ∈ a₀(1 ± w) (7 points, all elements in ONE
    provider call per round) and a quartic fitted; each round narrows w around the fitted
    minimum (`rounds`, from ASE's reference a₀), and a last call gives E(a*).
    """
    names = list(dict.fromkeys(symbols))
    if not names:
        raise ValueError("relaxed_fcc: no elements given")
    a = np.array([guess_fcc_lattice_constant(s) for s in names])
    grid = np.linspace(-1.0, 1.0, 7)
    for width in rounds:
        trial = a[:, None] * (1.0 + width * grid[None, :])
        cells = [bulk(s, "fcc", a=float(x)) for s, row in zip(names, trial) for x in row]
        energies = np.array([r["energy"] for r in provider.evaluate(cells, ("energy",))])
        energies = energies.reshape(len(names), len(grid))
        for k in range(len(names)):
            x = trial[k] - a[k]
            poly = np.polynomial.Polynomial.fit(x, energies[k], 4)
            roots = poly.deriv().roots()
            roots = roots[np.isreal(roots)].real
            roots = roots[(roots >= x.min()) & (roots <= x.max())]
            if roots.size == 0:
                raise RuntimeError(f"fcc {names[k]}: no energy minimum near a = {a[k]:.3f} Å")
            a[k] += roots[np.argmin(poly(roots))]
    results = provider.evaluate([bulk(s, "fcc", a=float(x)) for s, x in zip(names, a)], ("energy",))
    return {s: FccReference(s, float(x), float(r["energy"])) for s, x, r in zip(names, a, results)}


def check_atoms(atoms: Any, what: str, periodic: bool = True) -> Atoms:
    """Raise a ValueError unless `atoms` is a non-empty ase.Atoms (periodic when asked)."""
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise ValueError(f"{what}: expected a non-empty ase.Atoms")
    if periodic and (not atoms.pbc.all() or abs(atoms.get_volume()) < 1e-9):
        raise ValueError(f"{what}: needs a periodic cell in all three directions")
    return atoms


def voigt_to_matrix(stress: np.ndarray) -> np.ndarray:
    """Voigt (xx yy zz yz xz xy) stress to the symmetric 3×3 tensor."""
    s = np.asarray(stress, dtype=float)
    if s.shape != (6,):
        raise ValueError(f"Voigt stress must have shape (6,), got {s.shape}")
    xx, yy, zz, yz, xz, xy = s
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
