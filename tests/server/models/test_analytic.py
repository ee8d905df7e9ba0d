"""The analytic external-field models against their closed forms and finite differences."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from mlipserve.server.models.analytic import double_well, harmonic
from mlipserve.server.serving.local import LocalProvider


def _atoms() -> Atoms:
    return Atoms("H2", positions=[[0.3, 0.1, 0.0], [1.2, -0.5, 0.4]], cell=[20] * 3, pbc=False)


def test_harmonic_trap_energy_and_forces():
    atoms = _atoms()
    (res,) = LocalProvider(harmonic(k=2.0, center=(0.1, 0.0, 0.0))).evaluate([atoms])
    d = atoms.positions - [0.1, 0.0, 0.0]
    assert np.isclose(res["energy"], (d * d).sum(), rtol=1e-12)
    np.testing.assert_allclose(res["forces"], -2.0 * d, rtol=1e-12, atol=1e-14)


def test_double_well_matches_formula_and_finite_differences():
    atoms = _atoms()
    model = LocalProvider(double_well(height=0.3, a=0.8, k_perp=1.5))
    (res,) = model.evaluate([atoms])
    x, yz = atoms.positions[:, 0], atoms.positions[:, 1:]
    expected = (0.3 * ((x / 0.8) ** 2 - 1) ** 2).sum() + 0.75 * (yz**2).sum()
    assert np.isclose(res["energy"], expected, rtol=1e-12)
    h = 1e-5
    for i, k in [(0, 0), (1, 0), (1, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        e_plus, e_minus = (r["energy"] for r in model.evaluate([plus, minus]))
        assert np.isclose(res["forces"][i, k], -(e_plus - e_minus) / (2 * h), atol=1e-8)
