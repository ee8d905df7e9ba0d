"""The field model's data recipe (xTB labels in fields, ions) and its warm start from the
shipped default-molecular trunk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlipserve.server.labellers.xtb import charge_scan
from mlipserve.server.models.builtin import SHIPPED, load_builtin
from mlipserve.server.models.families import native_family
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore
from mlipserve.server.training import field_data as fd
from mlipserve.server.training.loop import TrainConfig
from mlipserve.server.training.pipeline import train_version


def test_recipe_counts_fields_and_ions():
    frames = fd.dataset(5, per_molecule=1, charged=2, extra=1, md=1)
    # 5 rattled + 4 extra + 9 molecules x 2 temperatures x 1 snapshot + 6 ions x 2 charges
    assert len(frames) == 5 + 4 + 18 + 12
    first = fd.dataset(5, per_molecule=1, charged=0)
    for a, b in zip(first, frames[:5]):  # v1's frames come first, unchanged by the extras
        assert np.array_equal(a.positions, b.positions)
    for atoms in frames:
        assert np.linalg.norm(atoms.info["external_field"]) <= fd.MAX_FIELD + 1e-12
        assert np.isfinite(atoms.get_forces()).all()
    ions = frames[-12:]
    assert [a.info["charge"] for a in ions] == [-1.0, 1.0] * 6
    assert all(np.linalg.norm(a.info["external_field"]) == 0 for a in ions)
    # an ion's energy minus the neutral's at the same geometry: xTB's IP or −EA (> 5 eV
    # for a cation of these closed-shell molecules, as the charge scan of the same geometry)
    cation = ions[1]
    scan = charge_scan(cation, charges=(0, 1))
    assert abs(cation.get_potential_energy() - scan[1]) < 1e-6
    assert scan[1] - scan[0] > 5.0


def _provider(module: torch.nn.Module, root) -> LocalProvider:
    """Serve an unsaved module through a scratch store."""
    store = ModelStore(root)
    meta = {"family": native_family(module), "config": module.cfg.to_dict(), "dtype": "float32",
            "cutoff": module.cutoff, "elements": [1, 6, 7, 8], "ensemble_size": 4}  # fmt: skip
    version = store.save("start", module, meta)
    return LocalProvider(store.load("start", version, dtype="float64", device="cpu"))


def test_warm_module_is_the_default_molecular_trunk_and_trains(tmp_path):
    module = fd.warm_module()
    parent = ModelStore(SHIPPED).load_module(*fd.TRUNK)[0]
    for key, value in parent.state_dict().items():
        assert torch.equal(module.short.state_dict()[key], value), key
    # at zero field the neutral molecule's energy is the trunk's, plus the small QEq term of
    # the near-uniform starting electronegativities (a random trunk is eV away)
    water = fd._base("H2O")
    water.rattle(0.02, seed=3)
    e_parent = LocalProvider(load_builtin("default-molecular:float64")).evaluate(
        [water], ["energy"]
    )[0]["energy"]
    e_start = _provider(module, tmp_path / "a").evaluate([water], ["energy"])[0]["energy"]
    assert abs(e_start - e_parent) < 0.1, (e_start, e_parent)
    # the pipeline's init_module hook trains from it and records the family and sizes
    frames = fd.dataset(3, per_molecule=1, charged=2)
    store = ModelStore(tmp_path / "b")
    cfg = TrainConfig(epochs=1, batch_size=4, stress_weight=0.0, split=(0.6, 0.4, 0.0))
    version, _ = train_version(
        frames, store, "f", cfg, init_module=module, metadata={"trunk_from": "x"}, progress=False
    )
    with pytest.raises(ValueError, match="not both"):
        train_version(frames, store, "f", cfg, warm_start=version, init_module=module)
    meta = store.metadata("f", version)
    assert meta["family"] == "painn-field" and meta["trunk_from"] == "x"
    assert meta["config"]["features"] == 32 and meta["config"]["cutoff"] == 4.5
    trained = store.load_module("f", version)[0]
    before, after = parent.state_dict(), trained.short.state_dict()
    assert torch.allclose(after["shift"].double(), before["shift"].double())  # kept, not refit
    assert any(not torch.allclose(after[k].double(), before[k].double()) for k in before)
