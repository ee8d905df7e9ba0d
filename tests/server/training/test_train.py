"""Training a tiny ensemble on EMT labels: it learns, reports, and warm-starts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlipserve.server.models.painn import PaiNNConfig
from mlipserve.server.training import TrainConfig, train
from mlipserve.server.training.data import split_indices
from mlipserve.server.training.report import evaluate_split

TINY = PaiNNConfig(cutoff=4.5, features=16, radial=8, layers=2, members=2, max_z=79)


def emt_frames(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        atoms = bulk(["Cu", "Au"][i % 2], cubic=True) * (1, 1, 2)
        atoms.set_cell(atoms.cell * (1 + rng.uniform(-0.03, 0.03)), scale_atoms=True)
        atoms.rattle(0.1, rng=rng)
        atoms.calc = EMT()
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=atoms.get_potential_energy(),
            forces=atoms.get_forces(),
            stress=atoms.get_stress(),
        )
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    frames = emt_frames(40, seed=0)
    result = train(
        frames, TINY, TrainConfig(epochs=40, lr=5e-3, patience=100), out_dir=out, progress=False
    )
    return frames, result, out


def test_training_learns_the_labels(trained):
    frames, result, _ = trained
    assert result.history[-1]["val"] < 0.1 * result.history[0]["val"]
    test = [frames[i] for i in result.split["test"]]
    zero_force_mae = 1e3 * np.mean(
        np.concatenate([np.abs(a.calc.results["forces"]).ravel() for a in test])
    )
    assert result.metrics["force_mae_mev_per_A"] < 0.6 * zero_force_mae
    assert result.metrics["energy_mae_mev_per_atom"] < 100
    assert set(result.split) == {"train", "val", "test"}
    assert sorted(sum(result.split.values(), [])) == list(range(40))


def test_report_files(trained):
    _, result, out = trained
    for name in ("learning_curve.png", "parity_forces.png", "metrics.json"):
        assert (out / name).stat().st_size > 1000 or name == "metrics.json"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"]["force_mae_mev_per_A"] == pytest.approx(
        result.metrics["force_mae_mev_per_A"]
    )
    assert saved["train_config"]["seed"] == 0


def test_warm_start_continues_from_the_parent(trained):
    frames, result, _ = trained
    fresh = train(frames, TINY, TrainConfig(epochs=1), progress=False)
    warm = train(frames, TINY, TrainConfig(epochs=1, lr=1e-4), init=result.module, progress=False)
    assert warm.history[0]["val"] < 0.2 * fresh.history[0]["val"]


def test_split_is_reproducible_and_checked():
    a = split_indices(50, (0.8, 0.1, 0.1), seed=3)
    b = split_indices(50, (0.8, 0.1, 0.1), seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="sum to 1"):
        split_indices(10, (0.5, 0.1, 0.1), seed=0)


def test_metrics_match_a_direct_computation(trained):
    frames, result, _ = trained
    test = [frames[i] for i in result.split["test"]]
    metrics = evaluate_split(result.module, test)
    from mlipserve.server.training.report import as_provider

    res = as_provider(result.module).evaluate(test, ["energy", "forces"])
    direct = 1e3 * np.mean(
        np.concatenate(
            [np.abs(r["forces"] - a.calc.results["forces"]).ravel() for r, a in zip(res, test)]
        )
    )
    assert metrics["force_mae_mev_per_A"] == pytest.approx(direct, rel=1e-9)


def test_force_weight_zero_trains_a_structure_on_its_energy_only():
    """atoms.info["force_weight"] = 0 (the field model's vertical ions): the loss ignores that
    structure's forces, however wrong, and still counts its energy."""
    import torch

    from mlipserve.server.models.painn import PaiNN
    from mlipserve.server.training.data import GraphCache
    from mlipserve.server.training.loop import batch_loss

    torch.manual_seed(0)
    module = PaiNN(TINY).double()
    frames = emt_frames(2, seed=3)
    bad = frames[1].copy()
    res = frames[1].calc.results
    bad.calc = SinglePointCalculator(
        bad, energy=res["energy"] + 1.0, forces=res["forces"] + 5.0, stress=res["stress"]
    )
    cfg = TrainConfig(stress_weight=0.0)
    weights = torch.ones(TINY.members, 2, dtype=torch.float64)

    def loss(structures):
        g = GraphCache(structures, TINY.cutoff).batch([0, 1], torch.float64, torch.device("cpu"))
        return float(batch_loss(module, g, weights, cfg).detach())

    exact_forces = bad.copy()
    exact_forces.calc = SinglePointCalculator(
        exact_forces, energy=res["energy"] + 1.0, forces=res["forces"], stress=res["stress"]
    )
    # the model's own force error on frame 1 still counts with weight 1 but not with weight 0
    bad.info["force_weight"] = exact_forces.info["force_weight"] = 0.0
    assert loss([frames[0], bad]) == pytest.approx(loss([frames[0], exact_forces]), rel=1e-12)
    weighted = loss([frames[0], bad])
    bad.info["force_weight"] = 1.0
    assert loss([frames[0], bad]) > weighted + 1e5  # 5 eV/Å more error: (5000 meV/Å)² scale
    # its energy still counts: the 1 eV offset moves the loss with the forces weighted out
    plain = frames[1].copy()
    plain.calc = frames[1].calc
    plain.info["force_weight"] = 0.0
    assert abs(weighted - loss([frames[0], plain])) > 1.0
    for bad_weight in (float("nan"), -1.0, np.inf, "0"):  # a clear error, not a NaN loss
        plain.info["force_weight"] = bad_weight
        with pytest.raises(ValueError, match="structure 1: info\\['force_weight'\\]"):
            GraphCache([frames[0], plain], TINY.cutoff)
