"""Stress: symmetric, equal to central differences of the energy and to ASE's own stress."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from mlipserve.server.models.builtin import LJ_ARGON
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.properties.stress import check_stress, deformed, provider_stress


def sheared_rattled(symbol: str, a: float, reps: int) -> object:
    atoms = bulk(symbol, "fcc", a=a, cubic=True) * (reps, reps, reps)
    atoms.rattle(0.05, seed=7)
    F = np.array([[1.0, 0.05, 0.0], [0.0, 0.98, 0.03], [0.02, 0.0, 1.01]])
    return deformed(atoms, F)


CASES = {
    "emt": (lambda: EMT(), "Cu", 3.6, 2),
    "lj": (
        lambda: LennardJones(
            sigma=LJ_ARGON["sigma"], epsilon=LJ_ARGON["epsilon"], rc=LJ_ARGON["rc"], smooth=True
        ),
        "Ar",
        5.3,
        3,
    ),
}


@pytest.mark.parametrize("model", sorted(CASES))
def test_stress_symmetric_and_equal_to_ase_and_to_energy_differences(server, model):
    make_calc, symbol, a, reps = CASES[model]
    atoms = sheared_rattled(symbol, a, reps)
    provider = RemoteProvider(server.address, model)
    try:
        res = check_stress(provider, atoms, h=1e-4)
    finally:
        provider.close()
    scale = np.abs(res.stress).max()
    assert scale > 1e-4  # a real, anisotropic stress
    # the 3×3 tensor from the wire is symmetric to rounding
    assert np.abs(res.stress - res.stress.T).max() <= 1e-12 * scale
    # ASE's own calculator on the same cell (independent code path)
    ref = atoms.copy()
    ref.calc = make_calc()
    assert np.abs(res.stress - ref.get_stress(voigt=False)).max() <= 1e-9 * scale
    # energy derivative under a general (non-symmetric) deformation: symmetric and equal
    assert res.fd_asymmetry < 1e-5
    assert res.max_difference <= 1e-5 * scale


def test_provider_stress_and_bad_input(emt):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    assert np.allclose(provider_stress(emt, atoms), np.eye(3) * provider_stress(emt, atoms)[0, 0])
    with pytest.raises(ValueError, match="periodic"):
        check_stress(emt, molecule("H2O"))
    with pytest.raises(ValueError, match="step"):
        check_stress(emt, atoms, h=0.5)
    with pytest.raises(ValueError, match="3×3"):
        deformed(atoms, np.eye(2))
