"""Pair potentials against ASE's own LennardJones and MorsePotential (float64, 1e-10 rel)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.lj import LennardJones as AseLJ
from ase.calculators.morse import MorsePotential as AseMorse

from mlipserve.server.models.builtin import lennard_jones, morse
from mlipserve.server.serving.local import LocalProvider

LJ = {"sigma": 2.3, "epsilon": 0.12, "rc": 6.0}
MORSE = {"epsilon": 0.35, "r0": 2.6, "rho0": 4.0, "rcut1": 1.6, "rcut2": 2.4}


def systems() -> dict[str, Atoms]:
    rng = np.random.default_rng(7)
    out = {}
    cu = bulk("Cu", "fcc", a=3.7, cubic=True) * (2, 2, 2)
    cu.rattle(0.08, rng=rng)
    out["periodic"] = cu
    small = bulk("Cu", "fcc", a=3.6)  # 1 atom, cell much smaller than the cutoff
    small.positions += 0.01
    out["small"] = small
    skew = Atoms(
        "Cu3",
        positions=[[0, 0, 0], [1.3, 1.2, 0.4], [2.4, 0.3, 1.5]],
        cell=[[3.9, 0, 0], [1.7, 3.4, 0], [0.9, 1.1, 3.2]],
        pbc=True,
    )
    out["skewed"] = skew
    cluster = molecule("C6H6")
    cluster.positions *= 1.4
    cluster.cell = [12, 13, 14]  # non-periodic, with a cell so stress is defined
    out["cluster"] = cluster
    slab = bulk("Cu", "fcc", a=3.8, cubic=True) * (2, 2, 2)
    slab.pbc = [True, True, False]
    slab.rattle(0.05, rng=rng)
    out["slab"] = slab
    return out


def reference(atoms: Atoms, calc) -> dict:
    atoms = atoms.copy()
    atoms.calc = calc
    return {
        "energy": atoms.get_potential_energy(),
        "forces": atoms.get_forces(),
        "stress": atoms.get_stress(),
        "energies": atoms.get_potential_energies(),
    }


def assert_close(ours: dict, ref: dict, rtol: float = 1e-10) -> None:
    for key in ("energy", "forces", "stress", "energies"):
        a, b = np.asarray(ours[key]), np.asarray(ref[key])
        scale = max(np.abs(b).max(), 1e-3)
        assert np.abs(a - b).max() <= rtol * scale, (key, np.abs(a - b).max(), scale)


PROPS = ["energy", "forces", "stress", "energies"]


@pytest.mark.parametrize("name", list(systems()))
@pytest.mark.parametrize("smooth", [True, False])
def test_lennard_jones_matches_ase(name, smooth):
    atoms = systems()[name]
    ours = LocalProvider(lennard_jones(**LJ, smooth=smooth)).evaluate([atoms], PROPS)[0]
    assert_close(ours, reference(atoms, AseLJ(**LJ, smooth=smooth)))


@pytest.mark.parametrize("name", list(systems()))
def test_morse_matches_ase(name):
    atoms = systems()[name]
    ours = LocalProvider(morse(**MORSE)).evaluate([atoms], PROPS)[0]
    assert_close(ours, reference(atoms, AseMorse(**MORSE)))


def test_many_systems_in_one_batch_match_ase():
    atoms = list(systems().values())
    ours = LocalProvider(morse(**MORSE)).evaluate(atoms, PROPS)
    for a, res in zip(atoms, ours):
        assert_close(res, reference(a, AseMorse(**MORSE)))


def test_smooth_lj_has_no_force_jump_but_shifted_does():
    """Across the cutoff the smooth form's force goes to zero; the shifted form's does not."""
    rc = LJ["rc"]

    def force(smooth, r):
        dimer = Atoms("Ar2", positions=[[0, 0, 0], [r, 0, 0]])
        return LocalProvider(lennard_jones(**LJ, smooth=smooth)).evaluate([dimer])[0]["forces"][
            0, 0
        ]

    assert abs(force(True, rc - 1e-6)) < 1e-7
    assert abs(force(False, rc - 1e-6)) > 1e-4
