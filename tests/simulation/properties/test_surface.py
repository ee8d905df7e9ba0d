"""Surface energies from the slab fit against direct ASE/EMT slab calculations."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import fcc100, fcc110, fcc111
from ase.calculators.emt import EMT
from ase.optimize import FIRE

from mlipserve.simulation.properties.surface import fit_surface_energy, surface_energies

BUILD = {"100": fcc100, "110": fcc110, "111": fcc111}
THICK = {"100": 12, "110": 20, "111": 12}


def direct_gamma(facet: str, a: float, e_atom: float, relax: bool) -> float:
    """(E_slab − N μ) / 2A for one thick slab with ASE's EMT; μ from ASE's fcc minimum."""
    slab = BUILD[facet]("Cu", size=(1, 1, THICK[facet]), a=a, vacuum=8.0)
    slab.pbc = True
    slab.calc = EMT()
    if relax:
        FIRE(slab, logfile=None).run(fmax=0.002, steps=2000)
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    return (slab.get_potential_energy() - len(slab) * e_atom) / (2 * area)


def test_unrelaxed_facets_match_direct_emt(emt, cu_ref):
    a0, e_atom = cu_ref
    res = surface_energies(emt, "Cu", relax=False)
    assert set(res) == {"100", "110", "111"}
    for facet, r in res.items():
        # 2e-5 eV/Å² = 0.3 mJ/m²
        assert r.gamma == pytest.approx(direct_gamma(facet, a0, e_atom, False), abs=2e-5)
        assert r.slope / r.atoms_per_layer == pytest.approx(e_atom, abs=1e-5)
        assert r.gamma_j_m2 == pytest.approx(r.gamma * units._e * 1e20, rel=1e-9)
    # EMT Cu: the close-packed (111) is lowest, the open (110) highest
    assert res["111"].gamma < res["100"].gamma < res["110"].gamma


def test_relaxed_100_matches_direct_emt(emt, cu_ref):
    a0, e_atom = cu_ref
    res = surface_energies(emt, "Cu", facets=["100"], fmax=0.002, a=a0)["100"]
    unrelaxed = surface_energies(emt, "Cu", facets=["100"], relax=False, a=a0)["100"]
    assert res.gamma == pytest.approx(direct_gamma("100", a0, e_atom, True), abs=1e-4)
    assert res.gamma < unrelaxed.gamma
    assert np.ptp(res.gamma_per_slab) < 1e-4  # converged in thickness


def test_fit_on_exact_line_and_bad_input(emt):
    layers = [3, 4, 5]
    energies = [-2.0 * n + 1.5 for n in layers]
    slope, _, gamma, per_slab = fit_surface_energy(layers, energies, area=3.0)
    assert slope == pytest.approx(-2.0) and gamma == pytest.approx(0.25)
    assert per_slab == pytest.approx([0.25] * 3)
    with pytest.raises(ValueError, match="two different"):
        fit_surface_energy([3, 3], [1.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="facet"):
        surface_energies(emt, "Cu", facets=["211"])
    with pytest.raises(ValueError, match="layer"):
        surface_energies(emt, "Cu", facets=["100"], layers=[4])
    with pytest.raises(ValueError, match="not fcc"):
        surface_energies(emt, "Fe")
