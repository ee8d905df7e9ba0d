"""The shipped nacl-longrange model: served by default, tracks the rigid-ion reference on new
structures, has the Coulomb tail, and passes the conformance checks on its trained weights."""

from __future__ import annotations

import numpy as np
from ase.build import bulk

from mlipserve.server.models.builtin import DEFAULT_MODELS, SHIPPED, load_builtin
from mlipserve.server.models.rigid_ion import nacl_rigid_ion
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore
from mlipserve.server.training.nacl_data import clusters, crystals, pair_errors
from tests.server.models import conformance as conf


def test_shipped_and_served_by_default_with_its_figures():
    assert {"nacl-rigid-ion", "nacl-longrange"} <= set(DEFAULT_MODELS)
    meta = ModelStore(SHIPPED).metadata("nacl-longrange")
    assert meta["family"] == "painn-coulomb" and meta["config"]["ewald"]["accuracy"] == 1e-6
    assert meta["metrics"]["held_out"]["force_mae_mev_per_A"] < 30
    assert meta["metrics"]["ion_pair"]["max_abs_error_meV"] < 5


def test_tracks_the_rigid_ion_model_on_new_structures():
    rng = np.random.default_rng(21)  # a seed the training never saw
    frames = crystals(rng, 3) + clusters(rng, 6)
    model = LocalProvider(load_builtin("nacl-longrange"))
    reference = LocalProvider(nacl_rigid_ion(device="cpu"))
    got = model.evaluate(frames, ["energy", "forces", "uncertainty"])
    ref = reference.evaluate(frames, ["energy", "forces"])
    f_err = np.concatenate([np.abs(g["forces"] - r["forces"]).ravel() for g, r in zip(got, ref)])
    assert 1e3 * f_err.mean() < 40  # meV/Å
    assert pair_errors(model, reference)["max_abs_error_meV"] < 5  # the Coulomb tail is exact


def test_conformance_on_trained_weights():
    provider = LocalProvider(load_builtin("nacl-longrange:float64"))
    cluster = clusters(np.random.default_rng(3), 1)[0]  # a rattled Na4Cl4 without a cell
    conf.check_forces_are_gradient(provider, cluster)
    cell = bulk("NaCl", "rocksalt", a=5.7, cubic=True) * (2, 2, 2)
    cell.rattle(0.08, seed=4)
    conf.check_stress_is_strain_derivative(provider, cell)
    for cutoff in (5.0, 8.0):  # short-range PaiNN, Ewald real space
        conf.check_smooth_through_cutoff_scan(provider, cell, cutoff)
