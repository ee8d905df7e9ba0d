"""An independent test set for the metal default model: built differently from its training set.

`emt_data.generate` makes random alloys of 2-5 elements on Vegard's-law lattices (the mean of
the pure metals' constants), strained up to 4 % and rattled, plus pure-metal vacancies and
(100)/(111) slabs. This set is made by another procedure, so a model that only learned that
generator's habits shows it:
- always 4 or 5 components, with uneven (Dirichlet) compositions instead of uniform picks;
- a lattice constant drawn uniformly between the smallest and largest pure constant of the
  chosen elements (not their mean), and an unstrained, larger cell (3x3x3 primitive fcc, 27
  sites; or 2x2x2 conventional, 32) rattled with Gaussian displacements of 0.08 Å;
- on each alloy a vacancy, or a (110) slab (a facet absent from the training set).
Labels are ASE's EMT, as for the training set.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc110

from mlipserve.server.training.emt_data import LATTICE, METALS, dirichlet_species, label


def _alloy_cell(rng: np.random.Generator, elements, a: float, conventional: bool) -> Atoms:
    """An fcc cell of lattice constant `a` with species drawn from a Dirichlet composition."""
    if conventional:
        atoms = bulk("Cu", "fcc", a=a, cubic=True) * (2, 2, 2)
    else:
        atoms = bulk("Cu", "fcc", a=a) * (3, 3, 3)
    return dirichlet_species(atoms, rng, elements)


def independent_alloys(seed: int, n: int = 40, rattle: float = 0.08) -> list[Atoms]:
    """`n` EMT-labelled frames: 4-5 component alloys, each with a vacancy or a (110) surface."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(n):
        elements = list(rng.choice(METALS, size=int(rng.integers(4, 6)), replace=False))
        constants = [LATTICE[e] for e in elements]
        a = float(rng.uniform(min(constants), max(constants)))
        if index % 2 == 0:
            atoms = _alloy_cell(rng, elements, a, conventional=bool(rng.integers(2)))
            del atoms[int(rng.integers(len(atoms)))]
        else:
            atoms = fcc110("Cu", (2, 2, 4), a=a, vacuum=5.0, periodic=True)
            dirichlet_species(atoms, rng, elements)
        atoms.positions += rng.normal(0, rattle, atoms.positions.shape)
        frames.append(label(atoms))
    return frames
