"""The ForceProvider seam: remote and in-process providers are interchangeable."""

from __future__ import annotations

import numpy as np
from ase.build import bulk, molecule

from mlipserve.server.models.builtin import emt_model
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation import ForceProvider, RemoteProvider


def test_remote_and_local_providers_agree(server):
    systems = [bulk("Cu", cubic=True) * (2, 2, 1), molecule("CO"), bulk("Au", "fcc", a=4.1)]
    for s in systems:
        s.rattle(0.02, seed=1)
        s.center(vacuum=3.0) if not s.pbc.any() else None
    remote = RemoteProvider(server.address, "emt")
    local = LocalProvider(emt_model())
    assert isinstance(remote, ForceProvider) and isinstance(local, ForceProvider)
    try:
        r = remote.evaluate(systems, ["energy", "forces", "stress"])
        l = local.evaluate(systems, ["energy", "forces", "stress"])
    finally:
        remote.close()
    assert [x["model"] for x in r] == [x["model"] for x in l] == ["emt"] * 3
    for a, b in zip(r, l):
        assert a["energy"] == b["energy"]
        assert np.array_equal(a["forces"], b["forces"])
        assert np.array_equal(a["stress"], b["stress"])
