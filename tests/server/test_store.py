"""The model store: versions, defaults, checksums, safetensors round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import bulk

from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore, StoreError

CFG = PaiNNConfig(cutoff=4.0, features=8, radial=6, layers=1, members=2, max_z=30)


def metadata() -> dict:
    return {
        "family": "painn",
        "config": CFG.to_dict(),
        "cutoff": CFG.cutoff,
        "elements": [29],
        "ensemble_size": CFG.members,
        "dtype": "float64",
        "units": {"energy": "eV", "length": "Å"},
    }


def test_save_load_round_trip_and_versions(tmp_path):
    torch.manual_seed(1)
    module = PaiNN(CFG)
    store = ModelStore(tmp_path)
    v1 = store.save("cu", module, metadata())
    torch.manual_seed(2)
    v2 = store.save("cu", PaiNN(CFG), metadata(), make_default=False)
    assert (v1, v2) == ("v1", "v2")
    assert store.versions("cu") == ["v1", "v2"] and store.default_version("cu") == "v1"
    atoms = bulk("Cu", cubic=True)
    atoms.rattle(0.05, seed=0)
    loaded = store.load("cu")
    assert loaded.info.version == "v1" and loaded.info.elements == frozenset({29})
    from mlipserve.server.models.base import ModelInfo
    from mlipserve.server.models.torch_potential import TorchPotential

    direct = TorchPotential(
        module,
        ModelInfo(
            name="x",
            version="0",
            kind="painn",
            cutoff=4.0,
            ensemble_size=2,
            dtype="float64",
            device="cpu",
        ),
    )
    a = LocalProvider(loaded).evaluate([atoms])[0]
    b = LocalProvider(direct).evaluate([atoms])[0]
    assert np.array_equal(a["forces"], b["forces"]) and a["energy"] == b["energy"]
    store.set_default("cu", "v2")
    assert store.load("cu").info.version == "v2"


def test_tampered_artifact_is_refused(tmp_path):
    store = ModelStore(tmp_path)
    store.save("cu", PaiNN(CFG), metadata())
    path = tmp_path / "cu" / "v1" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="checksum"):
        store.load("cu")


def test_default_cannot_be_deleted_and_bad_names_are_refused(tmp_path):
    store = ModelStore(tmp_path)
    store.save("cu", PaiNN(CFG), metadata())
    store.save("cu", PaiNN(CFG), metadata(), make_default=False)
    with pytest.raises(StoreError, match="default version"):
        store.delete("cu", "v1")
    store.delete("cu", "v2")
    assert store.versions("cu") == ["v1"]
    with pytest.raises(StoreError, match="invalid model name"):
        store.metadata("../etc")
    with pytest.raises(StoreError, match="unknown model family"):
        store.save("x", PaiNN(CFG), {**metadata(), "family": "pickle"})
    meta = json.loads((tmp_path / "cu" / "v1" / "metadata.json").read_text())
    assert len(meta["sha256"]) == 64 and meta["size_bytes"] > 0
