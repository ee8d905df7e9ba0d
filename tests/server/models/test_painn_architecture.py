"""PaiNN architectures: weights stored before architecture 2 keep their meaning (envelope on
the basis, so the filter bias reaches past the cutoff); new weights say which they are;
a mismatch or an unknown architecture is a clear error; a warm start upgrades."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlipserve.server.models.painn import ARCHITECTURE, PaiNN, PaiNNConfig
from mlipserve.server.models.torch_potential import TorchPotential
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore
from mlipserve.server.training import TrainConfig, train
from tests.server.models import conformance as conf

# A tiny model with random biases written by mlipserve before architecture 2 (no
# `architecture` in its config or weights), and what that code computed for it.
LEGACY = Path(__file__).parent / "data" / "legacy_store"
LEGACY_ENERGY = -26.65593497335326
LEGACY_FORCE_0 = [-0.54848009, -0.15146208, -0.24668022]
LEGACY_STRESS = [-0.06586995, -0.06695958, -0.06904261, 0.00993324, 0.00698174, 0.00724497]


def legacy_system() -> Atoms:
    atoms = conf.test_system("Cu", 3.7)
    atoms.numbers[::3] = 28
    return atoms


def dimer_jump(provider: LocalProvider, cutoff: float) -> float:
    """|E(r = rc − 1e-7) − E(far apart)| of a Cu dimer."""
    near, far = provider.evaluate(
        [Atoms("Cu2", positions=[[0, 0, 0], [r, 0, 0]]) for r in (cutoff - 1e-7, 3 * cutoff)],
        ["energy"],
    )
    return abs(near["energy"] - far["energy"])


def test_legacy_weights_load_with_their_old_meaning(caplog):
    with caplog.at_level(logging.WARNING, logger="mlipserve.server.models.painn"):
        model = ModelStore(LEGACY).load("tiny-v1", dtype="float64")
    assert model.module.cfg.architecture == 1 and int(model.module.architecture) == 1
    assert "loaded as architecture 1" in caplog.text
    res = LocalProvider(model).evaluate([legacy_system()], ["energy", "forces", "stress"])[0]
    assert res["energy"] == pytest.approx(LEGACY_ENERGY, abs=1e-9)
    np.testing.assert_allclose(res["forces"][0], LEGACY_FORCE_0, atol=1e-7)
    np.testing.assert_allclose(res["stress"], LEGACY_STRESS, atol=1e-7)
    # the old meaning includes the old defect; the upgraded architecture has none
    assert dimer_jump(LocalProvider(model), 4.0) > 1e-3
    model.module.upgrade()
    assert dimer_jump(LocalProvider(model), 4.0) < 1e-9


def test_new_weights_record_their_architecture_and_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = PaiNNConfig(cutoff=4.0, features=8, radial=6, layers=1, members=2, max_z=30)
    module = PaiNN(cfg)
    with torch.no_grad():
        module.layers[0].filter.bias.normal_()
    store = ModelStore(tmp_path)
    store.save("m", module, {"family": "painn", "config": cfg.to_dict(), "cutoff": 4.0})
    assert store.metadata("m")["config"]["architecture"] == ARCHITECTURE == 2
    loaded, _ = store.load_module("m")
    assert int(loaded.architecture) == 2
    atoms = legacy_system()
    a = LocalProvider(store.load("m", dtype="float64")).evaluate([atoms])[0]
    b = LocalProvider(TorchPotential(module, store.load("m", dtype="float64").info)).evaluate(
        [atoms]
    )[0]
    assert a["energy"] == pytest.approx(b["energy"], abs=1e-12)


def test_mismatched_or_unknown_architecture_is_refused(tmp_path):
    root = tmp_path / "store"
    shutil.copytree(LEGACY, root)
    store = ModelStore(root)
    module = store.load_module("tiny-v1")[0]
    module.upgrade()  # weights now say architecture 2
    meta = {"family": "painn", "config": {**module.cfg.to_dict(), "architecture": 1}, "cutoff": 4.0}
    store.save("x", module, meta)
    with pytest.raises(ValueError, match="weights are architecture 2 but the config says 1"):
        store.load_module("x")
    with pytest.raises(ValueError, match="architecture 3 is unknown"):
        PaiNNConfig(architecture=3)
    with torch.no_grad():
        module.architecture.fill_(3)
    data = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(ValueError, match="weights of architecture 3 are unknown"):
        PaiNN(PaiNNConfig(**{**module.cfg.to_dict(), "architecture": 2})).load_state_dict(data)


def test_warm_start_from_legacy_weights_trains_the_current_architecture():
    frames = []
    for i in range(6):
        atoms = bulk("Cu", cubic=True)
        atoms.rattle(0.1, seed=i)
        atoms.calc = EMT()
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=atoms.get_potential_energy(),
            forces=atoms.get_forces(),
            stress=atoms.get_stress(),
        )
        frames.append(atoms)
    parent = ModelStore(LEGACY).load_module("tiny-v1")[0]
    result = train(frames, parent.cfg, TrainConfig(epochs=1), init=parent, progress=False)
    assert result.module.cfg.architecture == 2 and int(result.module.architecture) == 2
    assert parent.cfg.architecture == 1  # the parent is left as it was
