"""The reported scan: a rattled fcc Cu cell strained along x through pair distances equal to
the cutoff gives a smooth energy, and the stress is its strain derivative (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from mlipserve.server.serving.local import LocalProvider
from tests.server.models import conformance as conf
from tests.server.models.test_conformance import biased_painn, trained_painn

STRAINS = np.linspace(-2e-3, 2e-3, 41)  # eps_xx, step 1e-4
# the tiny ensemble with the default's 5 Å cutoff: between the 3rd and 4th fcc shells
MODELS = {"default": trained_painn, "painn-biased": lambda: biased_painn(cutoff=5.0)}


@pytest.fixture(scope="module", params=list(MODELS))
def scan(request):
    """Energies and dE/dε_xx (from the stress) along the scan, and the cell's volume."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=0)
    provider = LocalProvider(MODELS[request.param]())
    energies, slope = conf.strain_scan(provider, atoms, STRAINS, axes=(1, 0, 0))
    return request.param, energies, slope, atoms.get_volume()


def test_energy_has_no_spikes_along_the_strain_scan(scan):
    name, energies, _, _ = scan
    rough, typical = conf.scan_roughness(energies)
    # before the fix: default 0.92 meV against 3.7e-6 eV typical second differences
    assert rough <= 0.25 * typical + 1e-9, (name, rough, typical)


def test_stress_is_the_scan_derivative_of_the_energy(scan):
    name, energies, slope, volume = scan
    err = conf.scan_stress_error(energies, slope, STRAINS[1] - STRAINS[0]) / volume
    assert err <= 1e-6, (name, err)  # eV/Å³; before the fix: default 1.2e-2
