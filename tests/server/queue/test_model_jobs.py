"""Retrain, evaluate and promote as real queue jobs on a tiny ensemble; the server hot-swaps.

A two-member PaiNN trained on bulk Cu (EMT labels) is the current model; label jobs add
surface structures; a retrain job warm-starts a candidate; a promote job makes it the
default only if its held-out force MAE is not worse than the current one's by more than the
tolerance; a deliberately ruined candidate (weights perturbed) is refused. A server that
follows the store serves the promoted version without a restart.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from ase.build import bulk, fcc100
from ase.calculators.emt import EMT

from mlipserve.client import Client
from mlipserve.server.config import Settings
from mlipserve.server.queue.jobstore import JobStore
from mlipserve.server.queue.lease import LeasePolicy
from mlipserve.server.queue.payload import atoms_to_dict
from mlipserve.server.queue.worker import Worker, WorkerConfig
from mlipserve.server.store import ModelStore
from mlipserve.server.training import TrainConfig
from mlipserve.server.training.pipeline import Architecture, train_version
from tests.conftest import ServerThread


def labelled(atoms):
    atoms.calc = EMT()
    atoms.get_potential_energy()
    return atoms


def bulk_set(n: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61 * rng.uniform(0.97, 1.03), cubic=True)
        atoms.rattle(0.08, seed=int(rng.integers(1 << 30)))
        out.append(labelled(atoms))
    return out


def surfaces(n: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        slab = fcc100("Cu", (2, 2, 3), vacuum=4.0)
        slab.rattle(0.1, seed=int(rng.integers(1 << 30)))
        out.append(slab)
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    store = ModelStore(root / "models")
    version, _ = train_version(
        bulk_set(12, 0),
        store,
        "cu",
        TrainConfig(epochs=15, batch_size=4, seed=0, lr=5e-3),
        arch=Architecture(members=2, features=8, layers=1, cutoff=4.0),
        progress=False,
    )
    assert version == "v1"
    config = WorkerConfig(
        queue_url=f"sqlite:///{root / 'queue.db'}",
        data_dir=str(root),
        store_dir=str(root / "models"),
        poll_s=0.05,
        policy=LeasePolicy(ttl_s=30, heartbeat_s=2, reap_every_s=5),
    )
    return root, store, JobStore(config.queue_url), Worker(config)


def run(lab, kind: str, params: dict) -> dict:
    _, _, jobs, worker = lab
    job = jobs.submit(kind, params, owner="ops", role="admin")
    worker.run(max_jobs=1)
    record = jobs.get(job.id)
    assert record.state == "done", (record.error, record.logs)
    return record.result


@pytest.mark.timeout(600)
def test_label_retrain_promote_and_hot_swap(lab):
    root, store, _, _ = lab
    server = ServerThread(
        Settings(
            port=0,
            rest=False,
            models=["store:cu"],
            data_dir=root,
            store_dir=str(root / "models"),
            watch_store_s=0.2,
        )
    )
    try:
        client = Client(server.address)
        probe = surfaces(1, 99)[0]
        assert client.evaluate([probe])[0]["model_version"] == "v1"
        bulk_rows = [atoms_to_dict(a) for a in bulk_set(12, 0)]
        run(
            lab,
            "label",
            {
                "structures": bulk_rows + [atoms_to_dict(a) for a in surfaces(10, 1)],
                "labeller": "emt",
                "dataset": "cu",
            },
        )
        run(
            lab,
            "label",
            {
                "structures": [atoms_to_dict(a) for a in surfaces(6, 2)],
                "labeller": "emt",
                "dataset": "holdout",
            },
        )
        trained = run(lab, "retrain", {"model": "cu", "dataset": "cu", "epochs": 15, "seed": 1})
        candidate = trained["candidate"]
        assert trained["parent"] == "v1" and trained["n_structures"] == 22
        assert store.default_version("cu") == "v1"  # a candidate is not served yet
        assert store.metadata("cu", candidate)["data_version"] == trained["data_version"]
        decision = run(
            lab,
            "promote",
            {"model": "cu", "candidate": candidate, "holdout": "holdout", "tolerance": 0.05},
        )
        assert decision["candidate_force_mae"] < decision["current_force_mae"], decision
        assert decision["promoted"] and store.default_version("cu") == candidate
        deadline = time.time() + 20
        while client.evaluate([probe])[0]["model_version"] != candidate:
            assert time.time() < deadline, "the server did not follow the store"
            time.sleep(0.1)
        module, meta = store.load_module("cu", candidate)
        with torch.no_grad():  # a ruined candidate: every weight perturbed by 50 %
            for p in module.parameters():
                p.mul_(1 + 0.5 * torch.randn_like(p))
        ruined = store.save("cu", module, {**meta, "parent_version": candidate}, make_default=False)
        refused = run(
            lab,
            "promote",
            {"model": "cu", "candidate": ruined, "holdout": "holdout", "tolerance": 0.05},
        )
        assert not refused["promoted"] and store.default_version("cu") == candidate
        log = store.promotions("cu")
        assert [(p["candidate"], p["promoted"]) for p in log] == [
            (candidate, True),
            (ruined, False),
        ]
        assert log[0]["by"] == "ops" and log[0]["previous"] == "v1"
        client.close()
    finally:
        server.stop()
