"""Collective variables: gradients against central finite differences, values against ASE."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from mlipserve.simulation.sampling.cvs import (
    Angle,
    Coordination,
    Dihedral,
    Distance,
    PathCV,
    Position,
)


def molecule(seed: int = 0, n: int = 6) -> Atoms:
    """A random, non-degenerate cluster of n atoms in a periodic 6 Å box (so images matter)."""
    rng = np.random.default_rng(seed)
    atoms = Atoms(f"Cu{n}", positions=rng.uniform(0.0, 6.0, (n, 3)), cell=[6.0, 6.5, 7.0], pbc=True)
    return atoms


def path_images(seed: int = 3, n_images: int = 5, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.0, 6.0, (n, 3))
    shift = rng.normal(size=(n, 3))
    return np.array([start + t * shift for t in np.linspace(0, 1, n_images)])


CVS = {
    "position-x": Position(2, 0),
    "position-vector": Position(1, (1.0, 2.0, -0.5), origin=(0.3, 0.0, 1.0)),
    "distance": Distance(0, 3),
    "angle": Angle(1, 0, 4),
    "dihedral": Dihedral(0, 1, 2, 3),
    "coordination-pairs": Coordination([0, 1, 2, 3, 4, 5], r0=3.0),
    "coordination-groups": Coordination([0], [1, 2, 3, 4, 5], r0=2.5, n=8, m=14),
    "path-s": PathCV(path_images(), indices=[0, 1, 2], lam=0.5),
    "path-z": PathCV(path_images(), indices=[0, 1, 2], lam=0.5, component="z"),
}


@pytest.mark.parametrize("name", sorted(CVS))
def test_gradient_matches_finite_differences(name):
    """Analytic ∂s/∂R equals the central difference (h = 1e-5 Å) to 1e-6 relative accuracy."""
    cv = CVS[name]
    atoms = molecule()
    if name.startswith("path"):
        # Start between the path's images 1 and 2, off the path: s and z vary in every direction.
        imgs = path_images()
        atoms.positions = 0.5 * (imgs[1] + imgs[2]) + 0.2 * np.random.default_rng(5).normal(
            size=(6, 3)
        )
    cell, pbc = atoms.cell.array, atoms.pbc
    # A batch of two replicas: the second displaced, so the batch dimension is exercised.
    batch = np.stack([atoms.positions, atoms.positions + 0.05])
    values, grads = cv.evaluate(batch, np.stack([cell, cell]), np.stack([pbc, pbc]))
    assert values.shape == (2,) and grads.shape == (2, 6, 3)
    h = 1e-5
    fd = np.zeros((6, 3))
    for a in range(6):
        for k in range(3):
            plus, minus = atoms.positions.copy(), atoms.positions.copy()
            plus[a, k] += h
            minus[a, k] -= h
            sp = cv.evaluate(plus, cell, pbc)[0][0]
            sm = cv.evaluate(minus, cell, pbc)[0][0]
            fd[a, k] = (sp - sm) / (2 * h)
    scale = max(np.abs(fd).max(), 1e-3)
    assert np.abs(grads[0] - fd).max() < 1e-6 * scale + 1e-9


def test_values_match_ase_geometry():
    """Distance, angle and dihedral equal ASE's get_distance/angle/dihedral (mic) to 1e-10."""
    atoms = molecule(seed=1)
    pos, cell, pbc = atoms.positions, atoms.cell.array, atoms.pbc
    assert Distance(0, 3).evaluate(pos, cell, pbc)[0][0] == pytest.approx(
        atoms.get_distance(0, 3, mic=True), abs=1e-10
    )
    assert np.degrees(Angle(1, 0, 4).evaluate(pos, cell, pbc)[0][0]) == pytest.approx(
        atoms.get_angle(1, 0, 4, mic=True), abs=1e-8
    )
    phi = np.degrees(Dihedral(0, 1, 2, 3).evaluate(pos, cell, pbc)[0][0]) % 360.0
    assert phi == pytest.approx(atoms.get_dihedral(0, 1, 2, 3, mic=True), abs=1e-8)


def test_coordination_counts_neighbours():
    """Atoms well inside r0 count ~1, well outside ~0; f(r0) = n/m exactly (the limit)."""
    atoms = Atoms("Cu3", positions=[[0, 0, 0], [1.0, 0, 0], [10.0, 0, 0]])
    cv = Coordination([0], [1, 2], r0=2.5)
    s = cv.evaluate(atoms.positions)[0][0]
    assert s == pytest.approx(1.0, abs=0.01)  # f(0.4 r0) = 1/(1 + 0.4^6) ≈ 0.996
    f, _ = cv.switching(np.array([2.5]))
    assert f[0] == pytest.approx(0.5, abs=1e-5)


def test_path_cv_progress_along_images():
    """s is ≈0 at the first image, ≈1 at the last and increases monotonically along the path."""
    imgs = path_images()
    cv = PathCV(imgs)
    s = cv.evaluate(imgs)[0]
    # With λ = 2.3/d the neighbouring image weighs e^-2.3 ≈ 0.1: s(image 0) ≈ 0.1·0.25/1.1.
    assert s[0] == pytest.approx(0.0, abs=0.03) and s[-1] == pytest.approx(1.0, abs=0.03)
    assert np.all(np.diff(s) > 0)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="out of range"):
        Distance(0, 9).evaluate(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="different atoms"):
        Angle(1, 1, 2)
    with pytest.raises(ValueError, match="axis"):
        Position(0, 5)
    with pytest.raises(ValueError, match="r0"):
        Coordination([0, 1], r0=0.0)
    with pytest.raises(ValueError, match="at least 2 images"):
        PathCV([np.zeros((2, 3))])
    with pytest.raises(ValueError, match="shape"):
        Distance(0, 1).evaluate(np.zeros((4,)))
