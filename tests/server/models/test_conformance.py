"""Every built-in torch model family passes the shared conformance suite."""

from __future__ import annotations

import pytest
import torch

from mlipserve.server.models.base import ModelInfo, Potential
from mlipserve.server.models.builtin import lennard_jones, lj_ensemble, load_builtin, morse
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.models.torch_potential import TorchPotential
from mlipserve.server.serving.local import LocalProvider
from tests.server.models import conformance as conf


def tiny_painn(dtype: str = "float64", cutoff: float = 4.0) -> TorchPotential:
    """A randomly initialised two-member PaiNN ensemble, small enough for tests."""
    torch.manual_seed(0)
    cfg = PaiNNConfig(cutoff=cutoff, features=8, radial=6, layers=2, members=2, max_z=30)
    info = ModelInfo(
        name="painn",
        version="0",
        kind="painn",
        cutoff=cfg.cutoff,
        ensemble_size=cfg.members,
        dtype=dtype,
        device="cpu",
    )
    return TorchPotential(PaiNN(cfg), info)


def biased_painn(dtype: str = "float64", cutoff: float = 4.0) -> TorchPotential:
    """The tiny ensemble with every bias drawn from a normal distribution, as after training
    (fresh biases are zero, which hides any path by which a bias reaches past the cutoff)."""
    model = tiny_painn(dtype, cutoff)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in model.module.named_parameters():
            if name.endswith("bias"):
                param.copy_(torch.randn(param.shape, generator=generator, dtype=torch.float64))
    return model


def trained_painn(dtype: str = "float64") -> Potential:
    """The shipped default ensemble (trained weights)."""
    return load_builtin(f"default:{dtype}")


# Copper-range parameters so the 8-atom test cell has many neighbours.
FAMILIES = {
    "lj": lambda dtype="float64": lennard_jones(sigma=2.3, epsilon=0.12, rc=6.0, dtype=dtype),
    "morse": lambda dtype="float64": morse(epsilon=0.35, r0=2.6, rho0=4.0, dtype=dtype),
    "lj-ensemble": lambda dtype="float64": lj_ensemble(dtype=dtype),
    "painn": tiny_painn,
    "painn-biased": biased_painn,
    "painn-trained": trained_painn,
}
SYMBOL = {
    "lj": "Cu",
    "morse": "Cu",
    "lj-ensemble": "Ar",
    "painn": "Cu",
    "painn-biased": "Cu",
    "painn-trained": "Cu",
}
LATTICE = {
    "lj": 3.7,
    "morse": 3.7,
    "lj-ensemble": 5.3,
    "painn": 3.7,
    "painn-biased": 3.7,
    "painn-trained": 3.61,
}


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


def test_smooth_through_cutoff_in_a_strain_scan(family):
    _, provider, atoms = family
    conf.check_smooth_through_cutoff_scan(provider, atoms, provider.model.info.cutoff)
