"""GFN2-xTB labeller against tblite's own ASE calculator, finite differences and the dipole."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.fd import calculate_numerical_stress
from tblite.ase import TBLite

from mlipserve.server.labellers import make_labeller


def reference(atoms, **kwargs) -> dict:
    atoms = atoms.copy()
    atoms.calc = TBLite(verbosity=0, **kwargs)
    out = {
        "energy": atoms.get_potential_energy(),
        "forces": atoms.get_forces(),
        "dipole": atoms.get_dipole_moment(),
    }
    if atoms.pbc.all():
        out["stress"] = atoms.get_stress()
    return out


def test_molecule_and_ion_match_tblite_ase_calculator():
    """H2O and the H2O+ doublet equal tblite.ase.TBLite with the same charge/spin (1e-8 eV)."""
    water = molecule("H2O")
    water.rattle(0.02, seed=0)
    neutral, cation = (
        make_labeller("xtb").label([water])[0],
        make_labeller("xtb", charge=1, multiplicity=2).label([water])[0],
    )
    assert neutral.ok and cation.ok
    for lab, kwargs in ((neutral, {}), (cation, {"charge": 1, "multiplicity": 2})):
        ref = reference(water, **kwargs)
        np.testing.assert_allclose(lab.results["energy"], ref["energy"], rtol=0, atol=1e-8)
        np.testing.assert_allclose(lab.results["forces"], ref["forces"], rtol=0, atol=1e-8)
        np.testing.assert_allclose(lab.results["dipole"], ref["dipole"], rtol=0, atol=1e-8)
    # the first ionisation energy of water in GFN2-xTB is ~ 12-20 eV: the charge was applied
    assert 8 < cation.results["energy"] - neutral.results["energy"] < 25
    prov = cation.provenance
    assert prov["labeller"] == "xtb" and prov["version"] == importlib.metadata.version("tblite")
    assert prov["settings"]["method"] == "GFN2-xTB" and prov["settings"]["multiplicity"] == 2


def test_periodic_stress_matches_tblite_and_strain_derivative():
    """Si cell: stress equals TBLite's (1e-8) and a numerical strain derivative (1e-4 eV/Å³)."""
    si = bulk("Si")  # 2-atom primitive cell, sheared and rattled so all six components differ
    si.set_cell(si.cell.array @ [[1.02, 0.01, 0], [0, 0.99, 0.02], [0, 0, 1.01]], scale_atoms=True)
    si.rattle(0.05, seed=1)
    lab = make_labeller("xtb").label([si])[0]
    assert lab.ok
    ref = reference(si)
    np.testing.assert_allclose(lab.results["stress"], ref["stress"], rtol=0, atol=1e-8)
    strained = si.copy()
    strained.calc = TBLite(verbosity=0)
    numerical = calculate_numerical_stress(strained, eps=1e-4, force_consistent=False)
    np.testing.assert_allclose(lab.results["stress"], numerical, rtol=0, atol=1e-4)
    assert np.abs(lab.results["stress"][3:]).max() > 1e-3  # shear components are tested too


def test_electric_field_energy_derivative_is_minus_dipole():
    """dE/dF_z by central differences (F = ±0.002 V/Å) equals -μ_z at zero field (1e-4 e·Å)."""
    water = molecule("H2O")
    h = 2e-3
    zero = make_labeller("xtb").label([water])[0]
    plus = make_labeller("xtb", electric_field=[0, 0, h]).label([water])[0]
    minus = make_labeller("xtb", electric_field=[0, 0, -h]).label([water])[0]
    slope = (plus.results["energy"] - minus.results["energy"]) / (2 * h)
    mu_z = zero.results["dipole"][2]
    assert abs(mu_z) > 0.3  # water's GFN2 dipole is ~0.48 e·Å along z: a real test
    assert slope == pytest.approx(-mu_z, abs=1e-4)
    assert plus.provenance["settings"]["electric_field_V_per_A"] == [0, 0, h]


def test_unconverged_scf_is_a_failed_label_and_bad_input_is_refused():
    """max_iterations=1 cannot converge: ok=False with tblite's reason, nothing to store."""
    lab = make_labeller("xtb", max_iterations=1).label([molecule("H2O")])[0]
    assert not lab.ok and "SCF not converged" in lab.error and lab.results == {}
    with pytest.raises(ValueError, match="only defined here for molecules"):
        make_labeller("xtb", electric_field=[0, 0, 0.1]).label([bulk("Si")])
    with pytest.raises(ValueError, match="electric_field must be 3"):
        make_labeller("xtb", electric_field=[0, 0.1])
    with pytest.raises(ValueError, match="GFN3"):
        make_labeller("xtb", method="GFN3-xTB")


def test_charge_scan_gives_each_charge_state_as_tblite_does():
    """E(N-1), E(N), E(N+1) of water equal tblite's ASE calculator (doublets for the ions)."""
    from mlipserve.server.labellers.xtb import charge_scan

    water = molecule("H2O")
    energies = charge_scan(water)
    for q, mult in ((-1, 2), (0, 1), (1, 2)):
        ref = reference(water, charge=q, multiplicity=mult)["energy"]
        assert energies[q] == pytest.approx(ref, abs=1e-8)
    assert energies[1] + energies[-1] - 2 * energies[0] > 0  # convex: a positive capacitance
