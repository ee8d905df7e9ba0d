"""PySCF labeller: units against a direct PySCF call, forces against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.units import Bohr, Hartree
from pyscf import dft, gto

from mlipserve.server.labellers import make_labeller


def test_default_settings_h2_matches_direct_pyscf():
    """H2 at PBE/def2-SVP: E = e_tot·Hartree and F = -grad·Hartree/Bohr of a direct call (1e-7)."""
    h2 = molecule("H2")
    h2.positions[1, 2] += 0.05  # off equilibrium, so forces are not ~0
    lab = make_labeller("pyscf").label([h2])[0]
    assert lab.ok, lab.error
    mol = gto.M(
        atom=f"H 0 0 {h2.positions[0, 2]}; H 0 0 {h2.positions[1, 2]}",
        basis="def2-SVP",
        unit="Angstrom",
        verbose=0,
    )
    mf = dft.RKS(mol)
    mf.xc, mf.conv_tol = "PBE", 1e-9
    e_hartree = mf.kernel()
    grad = mf.nuc_grad_method().kernel()
    assert lab.results["energy"] == pytest.approx(e_hartree * Hartree, abs=1e-7)
    np.testing.assert_allclose(lab.results["forces"], -grad * Hartree / Bohr, rtol=0, atol=1e-6)
    assert abs(lab.results["forces"][1, 2]) > 0.1
    prov = lab.provenance
    assert prov["settings"]["xc"] == "PBE" and prov["settings"]["basis"] == "def2-SVP"
    assert prov["scf"]["converged"] and prov["scf"]["energy_hartree"] == pytest.approx(e_hartree)
    assert "stress" not in lab.results


def test_forces_are_minus_energy_gradient_by_finite_differences():
    """Rattled H2O, PBE/sto-3g: F = -(E(x+h)-E(x-h))/2h, h=1e-3 Å, within 1e-3 eV/Å.

    The tolerance covers the DFT integration grid (measured ~2e-4 eV/Å); a missing Bohr
    conversion would be off by a factor 1.9 on forces of ~3 eV/Å.
    """
    water = molecule("H2O")
    water.rattle(0.05, seed=3)
    labeller = make_labeller("pyscf", basis="sto-3g", conv_tol=1e-11)
    forces = labeller.label([water])[0].results["forces"]
    h = 1e-3
    coords = [(0, 2), (1, 0), (1, 1), (1, 2)]
    displaced = []
    for atom, axis in coords:
        for sign in (1, -1):
            moved = water.copy()
            moved.positions[atom, axis] += sign * h
            displaced.append(moved)
    energies = np.array([lab.results["energy"] for lab in labeller.label(displaced)])
    numerical = -(energies[0::2] - energies[1::2]) / (2 * h)
    analytic = np.array([forces[a, k] for a, k in coords])
    assert np.abs(analytic).max() > 0.5
    np.testing.assert_allclose(analytic, numerical, rtol=0, atol=1e-3)


def test_unconverged_scf_is_a_failed_label():
    """max_cycle=1 cannot converge PBE on water: ok=False, reason given, no results."""
    lab = make_labeller("pyscf", basis="sto-3g", max_cycle=1).label([molecule("H2O")])[0]
    assert not lab.ok and lab.results == {} and lab.atoms.calc is None
    assert lab.error.startswith("SCF not converged after 1 cycles")
    assert lab.provenance["scf"]["converged"] is False


def test_periodic_input_and_bad_settings_are_refused():
    with pytest.raises(ValueError, match="molecules only"):
        make_labeller("pyscf").label([molecule("H2O"), bulk("Si")])
    with pytest.raises(ValueError, match="unpaired electrons"):
        make_labeller("pyscf", spin=-1)
    with pytest.raises(ValueError, match="bad settings for labeller 'pyscf'"):
        make_labeller("pyscf", functional="PBE")
