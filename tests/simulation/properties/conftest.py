"""Fixtures for the property tests: ASE-side references (`emt` is in tests/conftest.py)."""

from __future__ import annotations

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from scipy.optimize import minimize_scalar


def ase_fcc_minimum(symbol: str) -> tuple[float, float]:
    """(a0, E/atom) of fcc `symbol` minimised with ASE's EMT directly (independent of the code)."""

    def energy(a: float) -> float:
        atoms = bulk(symbol, "fcc", a=a)
        atoms.calc = EMT()
        return atoms.get_potential_energy()

    res = minimize_scalar(energy, bracket=(3.3, 3.6, 4.3), tol=1e-10)
    return float(res.x), float(res.fun)


@pytest.fixture(scope="session")
def cu_ref() -> tuple[float, float]:
    """Cu's EMT lattice constant (Å) and energy per atom (eV), from ASE."""
    return ase_fcc_minimum("Cu")
