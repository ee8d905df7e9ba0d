"""Vacancy formation energies: pure Cu against ASE/EMT, a random alloy, batching, references."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.optimize import FIRE

from mlipserve.simulation.properties.bulk import relaxed_fcc
from mlipserve.simulation.properties.vacancy import (
    HEA_ELEMENTS,
    random_fcc_alloy,
    vacancy_formation_energies,
)

from .conftest import ase_fcc_minimum


def ase_energy(atoms, relax: bool, fmax: float = 0.005) -> float:
    atoms = atoms.copy()
    atoms.calc = EMT()
    if relax:
        FIRE(atoms, logfile=None).run(fmax=fmax, steps=2000)
    return atoms.get_potential_energy()


def test_pure_copper_every_site_equal_and_equal_to_ase(emt, cu_ref):
    a0, e_atom = cu_ref
    cell = bulk("Cu", "fcc", a=a0, cubic=True) * (2, 2, 2)
    res = vacancy_formation_energies(emt, cell, sites=[0, 13, 27], fmax=0.01)
    # the stated reference: μ_Cu = E/atom of fcc Cu at its own equilibrium (ASE: 1e-6 eV)
    assert res.mu["Cu"] == pytest.approx(e_atom, abs=1e-6)
    assert np.ptp(res.unrelaxed) < 1e-6 and np.ptp(res.relaxed) < 1e-3
    e_bulk = ase_energy(cell, relax=False)
    vac = cell.copy()
    del vac[0]
    n = len(cell)
    unrelaxed = ase_energy(vac, relax=False) - (n - 1) / n * e_bulk
    relaxed = ase_energy(vac, relax=True) - (n - 1) / n * e_bulk
    assert res.unrelaxed == pytest.approx(np.full(3, unrelaxed), abs=1e-4)
    assert res.relaxed == pytest.approx(np.full(3, relaxed), abs=1e-3)  # 1 meV
    assert relaxed < unrelaxed - 5e-3  # the relaxation is real
    assert res.converged.all()


def test_random_alloy_composition_and_reproducibility():
    atoms = random_fcc_alloy(HEA_ELEMENTS, (2, 2, 2), seed=3)
    counts = Counter(atoms.get_chemical_symbols())
    assert len(atoms) == 32 and set(counts) == set(HEA_ELEMENTS)
    assert max(counts.values()) - min(counts.values()) <= 1
    again = random_fcc_alloy(HEA_ELEMENTS, (2, 2, 2), seed=3)
    assert again.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert (
        random_fcc_alloy(HEA_ELEMENTS, (2, 2, 2), seed=4).get_chemical_symbols()
        != atoms.get_chemical_symbols()
    )


def test_alloy_vacancies_match_ase_and_batching_changes_nothing(emt):
    atoms = random_fcc_alloy(("Cu", "Ni", "Ag", "Au"), (2, 2, 1), seed=1, a=3.8)
    sites = [0, 5, 11]
    res = vacancy_formation_energies(emt, atoms, sites, relax_bulk_cell=False, fmax=0.01)
    assert (res.relaxed < res.unrelaxed).all()
    summary = res.summary()
    assert summary["relaxed"]["mean"] == pytest.approx(res.relaxed.mean())
    assert summary["relaxed"]["std"] == pytest.approx(res.relaxed.std())
    # one site alone: the batched relaxation gives the same number (per-system FIRE)
    alone = vacancy_formation_energies(emt, atoms, [5], relax_bulk_cell=False, fmax=0.01, mu=res.mu)
    assert alone.relaxed[0] == pytest.approx(res.relaxed[1], abs=1e-9)
    # independent: ASE relaxes bulk and vacancy, μ from ASE's own fcc minima (2 meV)
    e_bulk = ase_energy(atoms, relax=True)
    vac = atoms.copy()
    species = vac[11].symbol
    del vac[11]
    mu = ase_fcc_minimum(species)[1]
    assert res.mu[species] == pytest.approx(mu, abs=1e-6)
    assert res.relaxed[2] == pytest.approx(ase_energy(vac, relax=True) - e_bulk + mu, abs=2e-3)


def test_bad_input(emt):
    cell = bulk("Cu", "fcc", a=3.6, cubic=True)
    with pytest.raises(ValueError, match="sites"):
        vacancy_formation_energies(emt, cell, [0, 0])
    with pytest.raises(ValueError, match="sites"):
        vacancy_formation_energies(emt, cell, [4])
    with pytest.raises(ValueError, match="chemical potential"):
        vacancy_formation_energies(emt, cell, [0], mu={"Ni": -0.01})
    with pytest.raises(ValueError, match="not fcc"):
        relaxed_fcc(emt, ["H"])
    with pytest.raises(ValueError, match="size"):
        random_fcc_alloy(("Cu",), (0, 1, 1))
