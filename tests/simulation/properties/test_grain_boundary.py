"""Σ5(310)[001] tilt boundary: structure, energy against ASE/EMT, segregation profile."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.calculators.emt import EMT
from ase.neighborlist import neighbor_list
from ase.optimize import FIRE

from mlipserve.simulation.properties.grain_boundary import (
    distance_to_boundary,
    one_site_per_layer,
    oriented_crystal,
    segregation_energies,
    symmetric_tilt_gb,
)


@pytest.fixture(scope="module")
def gb(cu_ref):
    return symmetric_tilt_gb("Cu", cu_ref[0], periods=2)


def test_bicrystal_geometry(gb, cu_ref):
    a = cu_ref[0]
    crystal = oriented_crystal("Cu", a, (3, 1, 0), (1, 4, 1))
    # same cell as the single crystal, one atom fewer per boundary (the overlapping pair)
    assert np.allclose(gb.cell.array, crystal.cell.array)
    assert len(gb) == len(crystal) - 2 == 38
    assert neighbor_list("d", gb, 3.0).min() > 0.85 * a / np.sqrt(2)
    # grain A (0 < y < L) sits on the fcc lattice with axes x=[1-3 0], y=[310]; grain B
    # (L < y < 2L) on its mirror image y → −y, both through the atom at the origin
    length = gb.info["gb_planes"][1]
    axes = np.array([[1, -3, 0], [3, 1, 0], [0, 0, np.sqrt(10)]]) / np.sqrt(10)
    origin = gb.positions[np.argmin(np.linalg.norm(gb.positions, axis=1))]
    rel = gb.positions - origin
    for lo, hi, flip in ((1.5, length - 1.5, 1.0), (length + 1.5, 2 * length - 1.5, -1.0)):
        inside = (gb.positions[:, 1] > lo) & (gb.positions[:, 1] < hi)
        crystal = 2 * (rel[inside] * [1.0, flip, 1.0]) @ axes / a
        assert inside.sum() >= 10
        assert np.abs(crystal - np.round(crystal)).max() < 1e-9
        assert np.all(np.round(crystal).sum(axis=1) % 2 == 0)
    d = distance_to_boundary(gb)
    sites = one_site_per_layer(gb)
    assert d[sites[0]] == pytest.approx(0.0, abs=1e-9)
    assert d.max() == pytest.approx(gb.info["gb_planes"][1] / 2, abs=1e-6)
    assert np.all(np.diff(d[sites]) > 0.05)


def test_segregation_profile_and_gb_energy(emt, gb, cu_ref):
    sites = one_site_per_layer(gb)
    near, far = sites[1], sites[-2:]
    res = segregation_energies(emt, gb, "Ag", [near, *far])
    assert res.converged
    # far from both boundaries the solute sees bulk: E_seg → 0 (20 meV); near it, not
    assert np.abs(res.energies[1:]).max() < 0.02
    assert res.energies[0] < -0.3
    assert res.distances[1:].min() > 4.5 and res.distances[0] < 1.0
    # γ_GB against ASE: FIRE on the positions in the code's relaxed cell (5 mJ/m²), where
    # ASE's stress normal to the boundary must vanish (the code relaxed that length)
    ref = gb.copy()
    ref.set_cell(res.boundary.cell, scale_atoms=True)
    ref.calc = EMT()
    FIRE(ref, logfile=None).run(fmax=0.005, steps=3000)
    assert abs(ref.get_stress()[1]) < 5e-4  # eV/Å³
    assert ref.cell[1, 1] < gb.cell[1, 1] - 0.1  # the relaxed length differs from the start
    area = ref.cell[0, 0] * ref.cell[2, 2]
    gamma = (ref.get_potential_energy() - len(ref) * cu_ref[1]) / (2 * area) * units._e * 1e20
    assert res.gb_energy == pytest.approx(gamma, abs=5e-3)
    assert 0.5 < gamma < 1.5


def test_bad_input(emt, gb):
    with pytest.raises(ValueError, match="plane"):
        symmetric_tilt_gb("Cu", 3.6, (1, 3, 0))
    with pytest.raises(ValueError, match="solute"):
        segregation_energies(emt, gb, "Xx")
    with pytest.raises(ValueError, match="symmetric_tilt_gb"):
        segregation_energies(emt, oriented_crystal("Cu", 3.6), "Ag")
    with pytest.raises(ValueError, match="sites"):
        segregation_energies(emt, gb, "Ag", [len(gb)])
