"""Batch selection: spread over uncertain candidates, never below the trust floor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk, fcc100

from mlipserve.server.models.families import native_potential
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.training import selection
from mlipserve.server.training.selection import select_batch, structure_descriptors

TINY = PaiNNConfig(cutoff=4.0, features=6, radial=6, layers=1, members=2, max_z=30)


def clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two tight clusters of 10 high-sigma points (A highest) and one far moderate point."""
    rng = np.random.default_rng(seed)
    a = rng.normal([0.0, 0.0], 0.01, (10, 2))
    b = rng.normal([3.0, 0.0], 0.01, (10, 2))
    far = np.array([[0.0, 10.0]])
    sigma = np.concatenate([rng.uniform(0.9, 1.0, 10), rng.uniform(0.8, 0.85, 10), [0.5]])
    return np.vstack([a, b, far]), sigma


def test_spreads_over_clusters_where_top_sigma_stays_in_one():
    x, sigma = clusters()
    top = set(np.argsort(sigma)[::-1][:3].tolist())
    assert top <= set(range(10))  # top-sigma: three frames of cluster A
    picks = select_batch(x, sigma, 3, trust_lo=0.1)
    assert picks[0] == int(np.argmax(sigma))  # the most uncertain first
    assert sorted(p // 10 for p in picks) == [0, 1, 2]  # one of A, one of B, the far one
    assert picks[1] == 20  # 0.5 x distance ~10 beats cluster B's ~0.8 x 3


def test_uncertainty_weights_the_distance():
    # the far point at sigma 0.5 beats a second A frame (distance ~0.01), but a
    # nearly-confident far point does not beat the uncertain cluster B
    x, sigma = clusters()
    sigma[20] = 1e-4
    picks = select_batch(x, sigma, 2, trust_lo=0.0)
    assert sorted(p // 10 for p in picks) == [0, 1]


def test_nothing_at_or_below_trust_lo():
    x, sigma = clusters()
    sigma[20] = 0.3  # the far point sits exactly at the floor: never picked
    picks = select_batch(x, sigma, 15, trust_lo=0.3)
    assert 20 not in picks and len(picks) == 15 and len(set(picks)) == 15
    picks = select_batch(x, sigma, 5, trust_lo=0.86)  # only cluster A qualifies
    assert set(picks) <= set(range(10)) and len(picks) == 5


def test_k_larger_than_the_qualifying_count():
    x, sigma = clusters()
    picks = select_batch(x, sigma, 50, trust_lo=0.7)  # A and B qualify: 20
    assert sorted(picks) == list(range(20))
    assert list(sigma[picks]) == sorted(sigma[picks], reverse=True)
    assert select_batch(x, sigma, 4, trust_lo=2.0) == []
    assert select_batch(x, sigma, 0, trust_lo=0.0) == []


def test_deterministic_for_a_seed_and_ties_go_by_seed():
    x, sigma = clusters()
    assert select_batch(x, sigma, 6, 0.1, seed=3) == select_batch(x, sigma, 6, 0.1, seed=3)
    # ten identical candidates: any one is right, the seed says which
    same = np.zeros((10, 3))
    flat = np.ones(10)
    firsts = {select_batch(same, flat, 1, 0.0, seed=s)[0] for s in range(20)}
    assert len(firsts) > 1
    assert len(set(select_batch(same, flat, 4, 0.0, seed=1))) == 4


def test_scale_of_one_descriptor_column_does_not_matter():
    x, sigma = clusters()
    stretched = x * np.array([1000.0, 1.0])
    assert select_batch(stretched, sigma, 3, 0.1) == select_batch(x, sigma, 3, 0.1)


@pytest.mark.parametrize(
    ("descriptors", "sigma", "k", "trust_lo", "match"),
    [
        (np.zeros((4, 2)), np.ones(3), 1, 0.0, "one value per descriptor row"),
        (np.zeros(4), np.ones(4), 1, 0.0, "2-D"),
        (np.zeros((4, 2)), np.ones((4, 1)), 1, 0.0, "1-D"),
        (np.zeros((4, 2)), np.ones(4), -1, 0.0, "k must be >= 0"),
        (np.zeros((4, 2)), np.ones(4), 1.5, 0.0, "k must be an integer"),
        (np.zeros((4, 2)), np.ones(4), 1, float("nan"), "trust_lo"),
        (np.zeros((4, 2)), np.array([1, np.nan, 1, 1]), 1, 0.0, "finite"),
        (np.zeros((4, 2)), np.array([1, -1, 1, 1]), 1, 0.0, "sigma must be >= 0"),
    ],
)
def test_bad_input_raises_a_clear_error(descriptors, sigma, k, trust_lo, match):
    with pytest.raises(ValueError, match=match):
        select_batch(descriptors, sigma, k, trust_lo)


@pytest.fixture(scope="module")
def model() -> PaiNN:
    torch.manual_seed(0)
    return PaiNN(TINY)


def cu_frames(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.rattle(0.03, rng=rng)
        frames.append(atoms)
    return frames


def test_descriptors_shape_invariance_and_contrast(model):
    frames = cu_frames(3, 0)
    slab = fcc100("Cu", (2, 2, 3), vacuum=4.0)
    desc = structure_descriptors(model, [*frames, slab], spread=True)
    assert desc.shape == (4, 2 * TINY.members * TINY.features)
    assert desc.dtype == np.float64
    moved = frames[0].copy()
    moved.translate([0.3, -0.2, 0.7])  # periodic: the same structure
    perm = moved[np.random.default_rng(1).permutation(len(moved))]
    again = structure_descriptors(model, [perm], spread=True)
    np.testing.assert_allclose(again[0], desc[0], atol=1e-9)
    # a slab (surface atoms) is further from bulk than two rattled bulk frames are
    d_bulk = np.linalg.norm(desc[0] - desc[1])
    d_slab = np.linalg.norm(desc[0] - desc[3])
    assert d_slab > 3 * d_bulk > 0
    # the spread over atoms (second half of each member's block) of a perfect crystal is zero
    perfect = structure_descriptors(model, [bulk("Cu", "fcc", a=3.61, cubic=True)], True)[0]
    spread = perfect.reshape(TINY.members, 2, TINY.features)[:, 1]
    assert np.abs(spread).max() < 1e-6 < np.abs(desc[0]).max()
    means = structure_descriptors(model, frames)  # the default: means alone
    blocks = desc[:3].reshape(3, TINY.members, 2, TINY.features)[:, :, 0]
    np.testing.assert_allclose(means, blocks.reshape(3, -1), atol=1e-12)


def test_descriptors_same_from_module_potential_and_in_chunks(model, monkeypatch):
    frames = cu_frames(5, 2)
    whole = structure_descriptors(model, frames)
    assert next(model.parameters()).dtype == torch.float32  # the module passed is untouched
    served = native_potential(PaiNN(TINY), "x")
    served.module.load_state_dict(model.state_dict())
    np.testing.assert_allclose(structure_descriptors(served, frames), whole, atol=1e-12)
    monkeypatch.setattr(selection, "CHUNK", 2)
    np.testing.assert_allclose(structure_descriptors(model, frames), whole, atol=1e-12)


def test_descriptors_bad_input(model):
    with pytest.raises(ValueError, match="no PaiNN features"):
        structure_descriptors(torch.nn.Linear(2, 2), cu_frames(1, 0))
    with pytest.raises(ValueError, match="TorchPotential or a native module"):
        structure_descriptors("painn", cu_frames(1, 0))
    with pytest.raises(ValueError, match="at least one structure"):
        structure_descriptors(model, [])


def test_unweighted_is_farthest_point_sampling():
    # ten points on a line, sigma falling along it: with sigma_power 0 the distance alone
    # decides after the first (most uncertain) pick: the far end, then the middle
    x = np.arange(10.0)[:, None] * np.array([[5.0, 0.0]]) + np.array([[0.0, 1.0]])
    x[:, 1] = np.arange(10.0) ** 2  # a second column, so standardising keeps real distances
    sigma = np.linspace(1.0, 0.5, 10)
    picks = select_batch(x, sigma, 3, 0.0, sigma_power=0.0)
    assert picks[:2] == [0, 9]
    assert picks[2] in (4, 5, 6)
    # with the weight on, the far end still wins: relative sigma 0.5 x the whole span
    assert select_batch(x, sigma, 2, 0.0) == [0, 9]


def test_cluster_method_takes_the_most_uncertain_of_each_cluster():
    x, sigma = clusters()
    picks = select_batch(x, sigma, 3, 0.1, method="cluster")
    assert sorted(p // 10 for p in picks) == [0, 1, 2]
    assert set(picks) == {int(np.argmax(sigma[:10])), 10 + int(np.argmax(sigma[10:20])), 20}
    assert picks == select_batch(x, sigma, 3, 0.1, method="cluster")  # seeded, repeatable
    assert 20 not in select_batch(x, sigma, 6, 0.5, method="cluster")  # 0.5 is the floor
    with pytest.raises(ValueError, match="method must be one of"):
        select_batch(x, sigma, 3, 0.1, method="kmeans")
