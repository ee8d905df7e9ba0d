"""The scheduled active-learning round end to end: tenants' MD → pool → label → retrain → promote.

A two-member PaiNN (8 features, 1 layer) trained on bulk fcc Cu only (EMT labels) is served
as cu@v1 with harvesting on (every 24 new candidates a round; 12 labels a round, a quarter
held out) and no client-side AL driver. Two tenants run Langevin MD (the batched driver on
a RemoteProvider, 2 replicas × 20 steps, 600 K) of Cu(100) slabs with a surface vacancy,
which the model has never seen: their frames' max force std is above trust_lo, so the server
keeps them. The server submits a `harvest_round` job; one queue worker runs it (EMT
labels, warm-started retrain, promote at tolerance 0), the server follows the store. A
third tenant runs the same MD with `harvest=False`: none of its structures is in the pool.
Reference for "the error falls": EMT forces on the tenants' last MD frames (labelled here,
never given to the service) and the round's own held-out comparison.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from ase import units
from ase.build import bulk, fcc100
from ase.calculators.emt import EMT

from mlipserve.client import Client
from mlipserve.server.auth import KeyStore
from mlipserve.server.config import Settings
from mlipserve.server.dataset import Dataset, structure_hash
from mlipserve.server.queue.datasets import DatasetRef, dataset_location
from mlipserve.server.queue.jobstore import JobStore
from mlipserve.server.queue.lease import LeasePolicy
from mlipserve.server.queue.worker import Worker, WorkerConfig
from mlipserve.server.serving.harvest_pool import HASH_DECIMALS, Pool, read_summary
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore
from mlipserve.server.training import TrainConfig
from mlipserve.server.training.pipeline import Architecture, train_version
from mlipserve.simulation import MDState, RemoteProvider, langevin_baoab
from mlipserve.simulation.md import MolecularDynamics
from tests.conftest import ServerThread

pytestmark = pytest.mark.filterwarnings("ignore:The implementation of `fixcm=True`")
HARVEST = {
    "enabled": True,
    "budget_per_tenant": 40,
    "rate_per_minute": 1000,
    "round_every_candidates": 24,
    "labels_per_round": 12,
    "holdout_fraction": 0.25,
    "epochs": 30,
    "labeller": "emt",
}


def labelled(atoms):
    atoms = atoms.copy()
    atoms.calc = EMT()
    atoms.get_potential_energy()
    return atoms


def bulk_set(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61 * rng.uniform(0.98, 1.02), cubic=True)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out.append(labelled(atoms))
    return out


def vacancy_slabs(n: int) -> list:
    slab = fcc100("Cu", (2, 2, 3), vacuum=4.0)
    del slab[next(a.index for a in slab if a.tag == 1)]
    return [slab.copy() for _ in range(n)]


def run_md(address: str, key: str, seed: int, harvest: bool = True) -> list:
    """20 Langevin steps of two slab replicas on the served model; the final frames."""
    provider = RemoteProvider(address, "cu", api_key=key, harvest=harvest)
    try:
        state = MDState.from_atoms(vacancy_slabs(2), temperature_K=600.0, seeds=[seed, seed + 1])
        md = MolecularDynamics(
            provider, state, langevin_baoab(5 * units.fs, 600.0, 0.02 / units.fs)
        )
        frames = []
        md.attach(lambda: frames.extend(md.state.to_atoms(r) for r in range(2)), 1)
        md.run(20)
    finally:
        provider.close()
    return frames


def force_mae(store: ModelStore, version: str, frames: list) -> float:
    """Mean |F_model − F_EMT| (eV/Å) of a stored version over EMT-labelled frames."""
    provider = LocalProvider(store.load("cu", version, device="cpu"))
    results = provider.evaluate(frames, ("energy", "forces"))
    return float(
        np.mean([np.abs(r["forces"] - a.get_forces()).mean() for r, a in zip(results, frames)])
    )


@pytest.mark.timeout(300)
def test_two_tenants_md_is_harvested_labelled_retrained_and_promoted(tmp_path):
    store = ModelStore(tmp_path / "models")
    train_version(
        bulk_set(12, 0),
        store,
        "cu",
        TrainConfig(epochs=15, batch_size=4, seed=0, lr=5e-3),
        arch=Architecture(members=2, features=8, layers=1, cutoff=4.0),
        progress=False,
    )
    store.update_metadata("cu", "v1", harvest=HARVEST)  # an admin's setting (REST: PUT .../harvest)
    settings = Settings(
        port=0, models=["store:cu"], auth=True, data_dir=tmp_path, watch_store_s=0.2
    )
    server = ServerThread(settings)
    keys = KeyStore(server.settings.key_db_url)
    alice, bob, carol = (keys.create("user", t)[1] for t in ("alice", "bob", "carol"))
    try:
        harvested = run_md(server.address, alice, 10) + run_md(server.address, bob, 20)
        private = run_md(server.address, carol, 30, harvest=False)
        assert server.running.harvester.idle.wait(30)
        pool = Pool(store.root, "cu")
        counts = pool.counts()
        assert set(counts) == {"alice", "bob"} and min(counts.values()) >= 12, counts
        carol_hashes = {structure_hash(a, HASH_DECIMALS) for a in private}
        assert not carol_hashes & {a.info["structure_hash"] for a in pool.waiting()}
        jobs = JobStore(server.settings.job_queue_url)
        (round_job,) = jobs.list(kind="harvest_round")  # one at a time, however many are due
        config = WorkerConfig(
            queue_url=server.settings.job_queue_url,
            data_dir=str(tmp_path),
            store_dir=str(store.root),
            poll_s=0.05,
            policy=LeasePolicy(ttl_s=60, heartbeat_s=2, reap_every_s=30),
        )
        Worker(config).run(max_jobs=1)
        record = jobs.get(round_job.id)
        assert record.state == "done", (record.error, record.logs)
        result = record.result
        print(f"\nround: {result}")
        assert result["picked"] == 12 and result["held_out"] == 3 and result["labels_total"] == 12
        assert result["candidate_force_mae_meV"] < result["current_force_mae_meV"]
        assert result["promoted"] and result["version"] == "v2" == store.default_version("cu")
        kinds = {
            jobs.get(f"{round_job.id}-{s}").kind
            for s in ("label", "label-holdout", "retrain", "promote")
        }
        assert kinds == {"label", "retrain", "promote"}
        (decision,) = store.promotions("cu")
        assert (
            decision["promoted"] and decision["tolerance"] == 0.0 and decision["previous"] == "v1"
        )
        assert store.metadata("cu", "v2")["harvest"] == store.metadata("cu", "v1")["harvest"]
        summary = read_summary(store.root, "cu")
        assert summary["rounds"] == [
            {
                "round": 1,
                "labels_total": 12,
                "heldout_force_mae_meV": result["candidate_force_mae_meV"],
                "promoted": True,
                "version": "v2",
                "time": result["time"],
            }
        ]
        assert summary["pool_size"] == sum(pool.counts().values()) == sum(counts.values()) - 12
        assert "carol" not in pool.tenants_ever()
        train, held = (
            Dataset(dataset_location(tmp_path, DatasetRef("_harvest", f"cu-{part}")))
            for part in ("train", "holdout")
        )
        with train, held:  # the held-out slice never reaches training
            assert (train.count(), held.count()) == (9, 3)
            train_hashes = {a.info["structure_hash"] for a in train.rows()}
            assert not train_hashes & {a.info["structure_hash"] for a in held.rows()}
        frames = [labelled(a) for a in harvested[-4:]]  # the tenants' last frames, EMT here
        before, after = force_mae(store, "v1", frames), force_mae(store, "v2", frames)
        print(f"tenants' last frames: force MAE v1 {before:.4f} -> v2 {after:.4f} eV/Å")
        assert after < before
        with Client(server.address, "cu", api_key=alice) as client:
            deadline = time.time() + 20
            while client.evaluate(frames[0])["model_version"] != "v2":
                assert time.time() < deadline, "the server did not follow the store"
                time.sleep(0.1)
    finally:
        server.stop()
