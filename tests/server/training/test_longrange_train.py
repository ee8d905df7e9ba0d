"""Both long-range variants train with the existing pipeline on rigid-ion labels, store their
pinned Ewald split, and serve a Coulomb tail a short-range model cannot have."""

from __future__ import annotations

import numpy as np
import pytest

from mlipserve.server.labellers import make_labeller
from mlipserve.server.models.batch import SystemBatch
from mlipserve.server.models.rigid_ion import nacl_rigid_ion
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore
from mlipserve.server.training.loop import TrainConfig
from mlipserve.server.training.nacl_data import clusters, ion_pairs, pair_errors
from mlipserve.server.training.pipeline import Architecture, train_version
from mlipserve.wire import SystemArrays

SIZES = {"members": 2, "features": 8, "layers": 1, "cutoff": 4.0}
LONG_RANGE = {
    "fixed": {"charges": "fixed", "element_charges": {"11": 1.0, "17": -1.0}},
    "predicted": {"charges": "predicted"},
}


@pytest.fixture(scope="module")
def labelled():
    frames = clusters(np.random.default_rng(0), 24)
    labels = make_labeller("nacl-rigid-ion").label(frames)
    assert all(label.ok for label in labels)
    return [label.atoms for label in labels]


@pytest.mark.parametrize("charges", list(LONG_RANGE))
def test_long_range_model_trains_stores_and_serves(labelled, tmp_path, charges):
    store = ModelStore(tmp_path)
    arch = Architecture(**SIZES, long_range={**LONG_RANGE[charges], "coulomb_cutoff": 6.0})
    cfg = TrainConfig(
        epochs=12, batch_size=6, lr=1e-2, stress_weight=0.0, patience=50, dtype="float64"
    )
    version, metrics = train_version(labelled, store, "ions", cfg, arch=arch, progress=False)
    meta = store.metadata("ions", version)
    assert meta["family"] == "painn-coulomb" and meta["cutoff"] == 6.0
    assert meta["config"]["ewald"]["cutoff"] == 6.0 and meta["config"]["ewald"]["accuracy"] == 1e-6
    served = store.load("ions", version, dtype="float64", device="cpu")
    assert served.info.extra["long_range"]["charges"] == charges
    provider = LocalProvider(served)
    pairs = ion_pairs()
    result = provider.evaluate(pairs, ["energy", "forces", "uncertainty"])
    assert all(np.isfinite(r["energy"]) for r in result)
    errors = pair_errors(provider, LocalProvider(nacl_rigid_ion(device="cpu")))
    if charges == "fixed":  # exact Coulomb tail: beyond 4 Å only the (exact) Coulomb term varies
        assert errors["max_abs_error_meV"] < 1.0, errors
        assert metrics["test_split"]["energy_mae_mev_per_atom"] < 2000
    else:  # predicted charges: learned from the labels' Coulomb tail, ±1 e. Energies and
        # forces fix the charges only up to a global sign (q → −q leaves every q_i q_j), so
        # each member's Na and Cl are opposite and near 1 e in size, of either sign.
        pair = SystemBatch.single(SystemArrays.from_atoms(ion_pairs((15.0,))[0]))  # charge 0
        charges_of = served.module(served.graph(pair))["charges"].detach()
        assert (charges_of[:, 0] * charges_of[:, 1] < 0).all(), charges_of
        assert (charges_of.abs() > 0.5).all(), charges_of
        assert errors["max_abs_error_meV"] < 0.8 * abs(pair_errors_flat()), errors


def pair_errors_flat() -> float:
    """The binding error of a flat tail (a short-range model's) at 10 Å, meV."""
    pairs = ion_pairs()
    ref = LocalProvider(nacl_rigid_ion(device="cpu")).evaluate(pairs, ["energy"])
    return 1e3 * (ref[0]["energy"] - ref[-1]["energy"])
