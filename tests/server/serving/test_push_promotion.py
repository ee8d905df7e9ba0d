"""Promotions pushed through Redis: two servers sharing a store switch to a new default
within 2 s of `set_default` though they poll only every minute; without Redis, polling."""

from __future__ import annotations

import time

import pytest
import torch
from ase.build import bulk

from mlipserve.client import Client
from mlipserve.server import store_events
from mlipserve.server.config import Settings
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.store import ModelStore
from tests.conftest import ServerThread

REDIS = "redis://127.0.0.1:6379/0"


def tiny_store(root) -> ModelStore:
    store = ModelStore(root)
    cfg = PaiNNConfig(cutoff=4.0, features=8, radial=6, layers=1, members=2, max_z=29)
    for seed in (0, 1):
        torch.manual_seed(seed)
        meta = {"family": "painn", "config": cfg.to_dict(), "cutoff": 4.0, "ensemble_size": 2,
                "elements": [29], "dtype": "float64"}  # fmt: skip
        store.save("cu", PaiNN(cfg), meta, make_default=seed == 0)
    return store


def versions_served(servers, atoms) -> set[str]:
    return {Client(s.address, "cu").evaluate(atoms, ["energy"])["model_version"] for s in servers}


def wait_for(servers, atoms, version: str, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if versions_served(servers, atoms) == {version}:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not every server serves {version} after {timeout} s")


@pytest.mark.parametrize("polling", [False, True])
def test_a_promotion_reaches_every_replica(tmp_path, polling):
    store = tiny_store(tmp_path)
    settings = Settings(
        port=0, models=["store:cu"], store_dir=str(tmp_path), data_dir=tmp_path, workers=0,
        watch_store_s=0.5 if polling else 60.0,
        redis_url="redis://127.0.0.1:1/0" if polling else REDIS,  # polling: Redis is down
    )  # fmt: skip
    servers = [ServerThread(settings) for _ in range(2)]
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    try:
        assert versions_served(servers, atoms) == {"v1"}
        time.sleep(0.3)  # the subscriptions are up
        store_events.configure(settings.redis_url)
        store.set_default("cu", "v2")
        took = wait_for(servers, atoms, "v2", 2.0 if not polling else 5.0)
        assert took < 2.0
    finally:
        store_events.configure(None)
        for srv in servers:
            srv.stop()
