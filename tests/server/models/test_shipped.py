"""The shipped default model: loads from the package, checks out, and tracks EMT."""

from __future__ import annotations

import numpy as np
from ase.build import bulk

from mlipserve.server.models.builtin import DEFAULT_MODELS, SHIPPED, load_builtin
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore
from mlipserve.server.training.alloy_testset import independent_alloys
from mlipserve.server.training.emt_data import generate, random_alloy


def test_default_model_is_served_by_default_and_declares_itself():
    assert DEFAULT_MODELS[0] == "default"
    meta = ModelStore(SHIPPED).metadata("default")
    assert meta["ensemble_size"] == 4 and meta["elements"] == [13, 28, 29, 46, 47, 78, 79]
    assert meta["metrics"]["held_out"]["force_mae_mev_per_A"] <= 40
    model = load_builtin("default")
    assert model.info.ensemble_size == 4 and model.info.min_distance > 1.5


def test_default_model_tracks_emt_on_new_structures():
    frames = generate(seed=11)[:20]  # a seed the model never saw
    provider = LocalProvider(load_builtin("default"))
    results = provider.evaluate(frames, ["energy", "forces", "uncertainty"])
    f_err = np.concatenate(
        [np.abs(r["forces"] - a.calc.results["forces"]).ravel() for r, a in zip(results, frames)]
    )
    e_err = [abs(r["energy"] - a.calc.results["energy"]) / len(a) for r, a in zip(results, frames)]
    assert 1e3 * f_err.mean() < 60  # meV/Å against EMT
    assert 1e3 * np.mean(e_err) < 30  # meV/atom
    assert all(r["max_force_std"] > 0 for r in results)


def test_uncertainty_grows_outside_the_training_distribution():
    provider = LocalProvider(load_builtin("default"))
    rng = np.random.default_rng(0)
    usual = random_alloy(rng, ["Cu", "Ni", "Au"], (1, 2, 2))
    squeezed = bulk("Cu", "fcc", a=3.61 * 0.8, cubic=True) * (1, 2, 2)
    squeezed.rattle(0.1, seed=1)
    usual.rattle(0.05, seed=1)
    a, b = provider.evaluate([usual, squeezed], ["energy", "forces", "uncertainty"])
    assert b["max_force_std"] > 3 * a["max_force_std"]


def test_default_model_holds_on_alloys_built_another_way():
    """The widened model (v3) on 10 independent-procedure frames of a seed never used: force
    MAE < 80 meV/Å and energy < 22 meV/atom (measured: v3 54 and 16; v2, trained before the
    widening, 104 and 26, fails both), and its metadata names the procedure."""
    frames = independent_alloys(seed=21, n=10)
    results = LocalProvider(load_builtin("default")).evaluate(frames, ["energy", "forces"])
    f_err = np.concatenate(
        [np.abs(r["forces"] - a.calc.results["forces"]).ravel() for r, a in zip(results, frames)]
    )
    e_err = [abs(r["energy"] - a.calc.results["energy"]) / len(a) for r, a in zip(results, frames)]
    assert 1e3 * f_err.mean() < 80 and 1e3 * np.mean(e_err) < 22
    meta = ModelStore(SHIPPED).metadata("default")["metrics"]["independent_alloys"]
    assert "(110)" in meta["procedure"] and meta["force_mae_mev_per_A"] < 80
