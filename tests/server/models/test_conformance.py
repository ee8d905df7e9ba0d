"""Every built-in torch model family passes the shared conformance suite."""

from __future__ import annotations

import pytest

from mlipserve.server.local import LocalProvider
from mlipserve.server.models.autograd import TorchPotential
from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.builtin import lennard_jones, lj_ensemble, morse
from mlipserve.server.models.painn import PaiNN, PaiNNConfig


def tiny_painn(dtype: str = "float64") -> TorchPotential:
    """A randomly initialised two-member PaiNN ensemble, small enough for tests."""
    import torch

    torch.manual_seed(0)
    cfg = PaiNNConfig(cutoff=4.0, features=8, radial=6, layers=2, members=2, max_z=30)
    info = ModelInfo(name="painn", version="0", kind="painn", cutoff=cfg.cutoff,
                     ensemble_size=cfg.members, dtype=dtype, device="cpu")
    return TorchPotential(PaiNN(cfg), info)

from tests.server.models import conformance as conf

# Copper-range parameters so the 8-atom test cell has many neighbours.
FAMILIES = {
    "lj": lambda dtype="float64": lennard_jones(sigma=2.3, epsilon=0.12, rc=6.0, dtype=dtype),
    "morse": lambda dtype="float64": morse(epsilon=0.35, r0=2.6, rho0=4.0, dtype=dtype),
    "lj-ensemble": lambda dtype="float64": lj_ensemble(dtype=dtype),
    "painn": tiny_painn,
}
SYMBOL = {"lj": "Cu", "morse": "Cu", "lj-ensemble": "Ar", "painn": "Cu"}
LATTICE = {"lj": 3.7, "morse": 3.7, "lj-ensemble": 5.3, "painn": 3.7}


@pytest.fixture(params=list(FAMILIES))
def family(request):
    name = request.param
    return name, LocalProvider(FAMILIES[name]()), conf.test_system(SYMBOL[name], LATTICE[name])


def test_forces_are_minus_gradient(family):
    _, provider, atoms = family
    conf.check_forces_are_gradient(provider, atoms)


def test_stress_is_strain_derivative(family):
    _, provider, atoms = family
    conf.check_stress_is_strain_derivative(provider, atoms)


def test_invariances(family):
    _, provider, atoms = family
    conf.check_invariances(provider, atoms)


def test_batch_of_two_equals_two_calls(family):
    name, provider, atoms = family
    other = conf.test_system(SYMBOL[name], LATTICE[name], seed=11) * (1, 2, 1)
    conf.check_batch_equals_single_calls(provider, atoms, other)


def test_float32_close_to_float64(family):
    name, provider, atoms = family
    conf.check_dtypes_agree(provider, LocalProvider(FAMILIES[name]("float32")), atoms)


def test_smooth_across_cutoff(family):
    name, provider, _ = family
    conf.check_smooth_at_cutoff(provider, SYMBOL[name], provider.model.info.cutoff)
