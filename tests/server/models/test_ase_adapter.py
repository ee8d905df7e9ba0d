"""The ASE adapter keeps a calculator per batch position and still gives fresh-EMT values."""

from __future__ import annotations

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from mlipserve.server.serving.local import LocalProvider


def reference(atoms):
    atoms = atoms.copy()
    atoms.calc = EMT()
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()


def test_kept_calculators_match_fresh_emt_through_small_and_large_moves():
    provider = LocalProvider("emt")
    rng = np.random.default_rng(0)
    cu = bulk("Cu", cubic=True).repeat(2)
    ni = bulk("Ni", cubic=True).repeat(2)
    systems = [cu.copy(), ni.copy()]
    for step in range(12):
        for atoms in systems:  # small MD-like moves, and now and then one past EMT's skin
            atoms.positions += rng.normal(0, 0.5 if step % 4 == 3 else 0.01, atoms.positions.shape)
        batch = systems if step != 6 else systems[::-1]  # swapped order: slots see new atoms
        if step == 9:
            batch = [systems[0], bulk("Cu", cubic=True).repeat((2, 2, 3))]  # other size
        results = provider.evaluate(batch, ["energy", "forces", "stress"])
        for atoms, res in zip(batch, results):
            energy, forces, stress = reference(atoms)
            assert np.isclose(res["energy"], energy, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(res["forces"], forces, atol=1e-10)
            np.testing.assert_allclose(res["stress"], stress, atol=1e-10)
