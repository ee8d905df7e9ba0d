"""One backward pass for all members gives each member exactly its own forces and stress."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.neighborlist import neighbor_list

from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.models.torch_potential import TorchPotential, member_chunks
from mlipserve.server.serving.local import LocalProvider
from tests.server.models import conformance as conf

CFG = PaiNNConfig(cutoff=4.0, features=8, radial=6, layers=2, members=3, max_z=30)


def member_model(ensemble: PaiNN, k: int) -> PaiNN:
    """A one-member PaiNN holding member k's weights (an independent reference)."""
    single = PaiNN(PaiNNConfig(**{**CFG.to_dict(), "members": 1}))
    state = {}
    for name, value in ensemble.state_dict().items():
        per_member = name.endswith(("weight", "bias")) or name == "embedding"
        state[name] = value[k : k + 1].clone() if per_member else value.clone()
    single.load_state_dict(state)
    return single


def provider(module: PaiNN, members: int) -> LocalProvider:
    info = ModelInfo(
        name="painn",
        version="0",
        kind="painn",
        cutoff=CFG.cutoff,
        ensemble_size=members if members > 1 else 0,
        dtype="float64",
        device="cpu",
    )
    return LocalProvider(TorchPotential(module, info))


@pytest.fixture(scope="module")
def systems():
    a = conf.test_system("Cu", 3.7)
    b = conf.test_system("Cu", 3.7, seed=11) * (1, 2, 1)
    b.numbers[::3] = 28  # Ni: several elements
    return [a, b]


def test_each_member_equals_its_own_model(systems):
    torch.manual_seed(1)
    ensemble = PaiNN(CFG)
    with torch.no_grad():  # members that differ clearly (random shifts per element too)
        ensemble.shift.uniform_(-1, 1)
    singles = [provider(member_model(ensemble, k), 1) for k in range(CFG.members)]
    props = ["energy", "forces", "stress", "uncertainty"]
    got = provider(ensemble, CFG.members).evaluate(systems, props)
    per_member = [p.evaluate(systems, props[:3]) for p in singles]
    for s, result in enumerate(got):
        energies = np.array([m[s]["energy"] for m in per_member])
        forces = np.stack([m[s]["forces"] for m in per_member])
        stress = np.stack([m[s]["stress"] for m in per_member])
        assert np.ptp(energies) > 1e-3  # the members really differ
        np.testing.assert_allclose(result["energy"], energies.mean(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(result["energy_std"], energies.std(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(result["forces"], forces.mean(0), rtol=0, atol=1e-10)
        np.testing.assert_allclose(result["stress"], stress.mean(0), rtol=0, atol=1e-10)
        spread = np.sqrt(((forces - forces.mean(0)) ** 2).sum(-1).mean(0))
        np.testing.assert_allclose(result["forces_std"], spread, rtol=0, atol=1e-10)


def test_shared_geometry_gives_the_same_gradients(systems):
    """The K-backward path (positions shared by all members) agrees with the one-pass path."""
    torch.manual_seed(2)
    module = PaiNN(CFG)
    served = provider(module, CFG.members)
    props = ["energy", "forces", "stress", "uncertainty"]
    one_pass = served.evaluate(systems, props)
    module.geometry_members = 0  # opt out: shared positions, one backward per member
    loop = served.evaluate(systems, props)
    for a, b in zip(one_pass, loop):
        np.testing.assert_allclose(a["forces"], b["forces"], rtol=0, atol=1e-11)
        np.testing.assert_allclose(a["stress"], b["stress"], rtol=0, atol=1e-11)
        np.testing.assert_allclose(a["forces_std"], b["forces_std"], rtol=0, atol=1e-11)


@pytest.mark.parametrize("per_pass", [1, 2])  # three passes of one member; two, then one
def test_members_in_slices_equal_one_pass(systems, per_pass):
    """Big graphs are evaluated a slice of members at a time: same results, bounded memory."""
    torch.manual_seed(3)
    module = PaiNN(CFG)
    served = provider(module, CFG.members)
    props = ["energy", "forces", "stress", "uncertainty", "energies"]
    whole = served.evaluate(systems, props)
    n_edges = sum(len(neighbor_list("i", a, CFG.cutoff)) for a in systems)  # the served graph's
    served.model.member_edges_per_pass = per_pass * n_edges
    expected = [(0, 1), (1, 2), (2, 3)] if per_pass == 1 else [(0, 2), (2, 3)]
    assert member_chunks(CFG.members, n_edges, per_pass * n_edges) == expected
    for a, b in zip(whole, served.evaluate(systems, props)):
        for key in ("energy", "energy_std", "forces", "stress", "forces_std", "energies"):
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-11)


def test_member_chunks_follow_the_budget():
    assert member_chunks(4, 100, 1000) == [None]
    assert member_chunks(4, 100, 250) == [(0, 2), (2, 4)]
    assert member_chunks(4, 100, 300) == [(0, 3), (3, 4)]
    assert member_chunks(4, 100, 10) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert member_chunks(1, 10**9, 1) == [None]


def test_bad_edges_per_pass_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MLIPSERVE_MEMBER_EDGES_PER_PASS", "lots")
    with pytest.raises(ValueError, match="MLIPSERVE_MEMBER_EDGES_PER_PASS must be a positive"):
        provider(PaiNN(CFG), CFG.members)
