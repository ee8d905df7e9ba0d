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


def _field_label(atoms, field, **settings):
    (lab,) = make_labeller("pyscf", **settings, electric_field=field).label([atoms])
    assert lab.ok, lab.error
    return lab.results


def test_in_a_field_dipole_and_forces_are_derivatives_of_the_enthalpy():
    """HF/sto-3g water off the origin in a tilted field: dipole = -dE/dE_field (h = 1e-3 V/Å,
    to 1e-5 e·Å) and forces = -dE/dR (h = 1e-4 Å, to 1e-4 eV/Å), while the field moves the
    forces by > 0.02 eV/Å (so a missing field term in the gradient would fail)."""
    water = molecule("H2O")
    water.rotate(30, "x")
    water.positions += [0.3, -0.2, 0.1]
    field = np.array([0.05, -0.1, 0.2])
    settings = {"xc": "HF", "basis": "sto-3g"}
    res = _field_label(water, field, **settings)
    step = np.eye(3) * 1e-3
    fd_dipole = [
        -(
            _field_label(water, field + h, **settings)["energy"]
            - _field_label(water, field - h, **settings)["energy"]
        )
        / 2e-3
        for h in step
    ]
    np.testing.assert_allclose(res["dipole"], fd_dipole, rtol=0, atol=1e-5)
    fd_forces = np.zeros((3, 3))
    for i in range(3):
        for k in range(3):
            up, down = water.copy(), water.copy()
            up.positions[i, k] += 1e-4
            down.positions[i, k] -= 1e-4
            fd_forces[i, k] = (
                -(
                    _field_label(up, field, **settings)["energy"]
                    - _field_label(down, field, **settings)["energy"]
                )
                / 2e-4
            )
    np.testing.assert_allclose(res["forces"], fd_forces, rtol=0, atol=1e-4)
    no_field = make_labeller("pyscf", **settings).label([water])[0].results
    assert np.abs(res["forces"] - no_field["forces"]).max() > 0.02


def test_field_response_of_xtb_agrees_with_dft():
    """The cross-check of the xTB field labels: water in 0.1 V/Å along z, GFN2-xTB against
    PBE/def2-SVP. The change of the forces points the same way (cosine > 0.98) and agrees in
    size within a factor 2 (measured: 44.7 vs 28.4 meV/Å max); dipoles agree within 0.1 e·Å
    (0.476 vs 0.405) and both grow along the field."""
    water = molecule("H2O")
    field = np.array([0.0, 0.0, 0.1])
    change = {}
    for name in ("xtb", "pyscf"):
        (before,) = make_labeller(name).label([water])
        (after,) = make_labeller(name, electric_field=field).label([water])
        assert before.ok and after.ok
        change[name] = {
            "forces": after.results["forces"] - before.results["forces"],
            "dipole": after.results["dipole"] - before.results["dipole"],
            "dipole0": before.results["dipole"],
        }
    fx, fd = change["xtb"]["forces"].ravel(), change["pyscf"]["forces"].ravel()
    assert fx @ fd / np.linalg.norm(fx) / np.linalg.norm(fd) > 0.98
    assert 0.5 < np.abs(fx).max() / np.abs(fd).max() < 2.0
    np.testing.assert_allclose(change["xtb"]["dipole0"], change["pyscf"]["dipole0"], atol=0.1)
    assert change["xtb"]["dipole"][2] > 0 and change["pyscf"]["dipole"][2] > 0
