"""The metal model's widening set and its independent test set: seeded, and really different."""

from __future__ import annotations

import numpy as np
from ase.calculators.emt import EMT

from mlipserve.server.training.alloy_testset import independent_alloys
from mlipserve.server.training.emt_data import LATTICE, wide


def test_sets_are_seeded_and_labelled_by_emt():
    first, again, other = (
        independent_alloys(5, 4),
        independent_alloys(5, 4),
        independent_alloys(6, 4),
    )
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(first, again))
    assert not np.allclose(first[0].positions[:4], other[0].positions[:4])
    frame = wide(2, 1)[5]
    check = frame.copy()
    check.calc = EMT()
    assert check.get_potential_energy() == frame.calc.results["energy"]
    np.testing.assert_allclose(check.get_forces(), frame.calc.results["forces"], atol=1e-12)


def test_independent_set_is_built_another_way():
    """4-5 components in every frame, a (110) surface in half (the training set has only
    (100)/(111) slabs), a vacancy in the others, and cells larger than the training's 16 atoms."""
    frames = independent_alloys(9, 8)
    for index, atoms in enumerate(frames):
        elements = set(atoms.get_chemical_symbols())
        assert len(elements) >= 2  # Dirichlet draws can leave a component out, rarely two
        if index % 2:
            gap = atoms.cell[2, 2] - np.ptp(atoms.positions[:, 2])
            assert gap > 9  # 2 x 5 Å of vacuum along the surface normal, minus the rattle
            assert len(atoms) == 16
        else:
            assert len(atoms) in (26, 31)
    constants = [LATTICE[e] for e in LATTICE]
    assert min(constants) < 3.6 and max(constants) > 4.0
