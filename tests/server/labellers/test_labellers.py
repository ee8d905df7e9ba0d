"""EMT and any-ASE-calculator labellers against direct ASE calls; failures become failed Labels."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from mlipserve.server.labellers import Label, Labeller, make_labeller


def rattled_cu(seed: int) -> Atoms:
    atoms = bulk("Cu", cubic=True) * (2, 1, 1)
    atoms.rattle(0.05, seed=seed)
    return atoms


def direct(atoms: Atoms, calc) -> dict:
    atoms = atoms.copy()
    atoms.calc = calc
    return {
        "energy": atoms.get_potential_energy(),
        "forces": atoms.get_forces(),
        "stress": atoms.get_stress(),
    }


@pytest.mark.parametrize(
    "name,kwargs,reference",
    [
        ("emt", {}, EMT),
        ("ase:ase.calculators.emt.EMT", {}, EMT),
        (
            "ase:ase.calculators.lj.LennardJones",
            {"sigma": 2.3, "epsilon": 0.4, "rc": 6.0},
            lambda: LennardJones(sigma=2.3, epsilon=0.4, rc=6.0),
        ),
    ],
)
def test_calculator_labellers_match_a_direct_ase_call(name, kwargs, reference):
    """Energy, forces, stress equal a direct ASE call on the same structure (tolerance 1e-12)."""
    labeller = make_labeller(name, **kwargs)
    assert isinstance(labeller, Labeller) and labeller.name == name
    structures = [rattled_cu(0), rattled_cu(1)]
    labels = labeller.label(structures)
    assert len(labels) == 2 and all(isinstance(lab, Label) and lab.ok for lab in labels)
    for atoms, lab in zip(structures, labels):
        ref = direct(atoms, reference())
        for key in ("energy", "forces", "stress"):
            np.testing.assert_allclose(lab.results[key], ref[key], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(lab.atoms.positions, atoms.positions)
        assert atoms.calc is None, "the input structure must not be modified"
        prov = lab.provenance
        assert prov["labeller"] == name and prov["version"] == __import__("ase").__version__
        assert prov["settings"] == kwargs and prov["wall_time_s"] >= 0 and prov["host"]
    assert labels[0].results["energy"] != labels[1].results["energy"]


def test_molecule_gets_no_stress_and_a_slab_neither():
    """Stress is attached only to fully periodic 3D cells."""
    slab = rattled_cu(2)
    slab.pbc = (True, True, False)
    labels = make_labeller("emt").label([molecule("H2O"), slab, rattled_cu(3)])
    assert [("stress" in lab.results) for lab in labels] == [False, False, True]


def test_calculator_exception_becomes_a_failed_label_not_a_crash():
    """EMT has no iron parameters: that structure fails with the reason, its neighbours succeed."""
    iron = bulk("Fe", cubic=True)
    labels = make_labeller("emt").label([rattled_cu(0), iron, rattled_cu(1)])
    assert [lab.ok for lab in labels] == [True, False, True]
    failed = labels[1]
    assert failed.error == "NotImplementedError: No EMT-potential for Fe"
    assert failed.atoms.calc is None and failed.results == {}
    assert failed.provenance["labeller"] == "emt" and "wall_time_s" in failed.provenance


def test_bad_names_and_settings_are_value_errors():
    with pytest.raises(ValueError, match="unknown labeller 'dft'"):
        make_labeller("dft")
    with pytest.raises(ValueError, match="cannot import module"):
        make_labeller("ase:no_such_package.Calc")
    with pytest.raises(ValueError, match="no calculator class 'Nope'"):
        make_labeller("ase:ase.calculators.emt.Nope")
    with pytest.raises(ValueError, match="package.module.Class"):
        make_labeller("ase:EMT")
    with pytest.raises(ValueError, match="bad settings for labeller 'xtb'"):
        make_labeller("xtb", functional="PBE")
    with pytest.raises(ValueError, match="sequence of ase.Atoms"):
        make_labeller("emt").label(rattled_cu(0))
    with pytest.raises(ValueError, match="structure 1 has no atoms"):
        make_labeller("emt").label([rattled_cu(0), Atoms()])
