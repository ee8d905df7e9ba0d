"""A real worker runs real label jobs (ASE EMT) into a real dataset; limits, retries, cancel."""

from __future__ import annotations

import threading
import time

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from mlipserve.server.dataset import Dataset
from mlipserve.server.labellers.policy import LabellerEntry, LabellerPolicy, save_policy
from mlipserve.server.queue.jobstore import JobStore
from mlipserve.server.queue.lease import LeasePolicy
from mlipserve.server.queue.payload import atoms_to_dict
from mlipserve.server.queue.worker import Worker, WorkerConfig

FAST = LeasePolicy(ttl_s=2.0, heartbeat_s=0.5, reap_every_s=0.5)


def structures(n: int, seed: int = 0):
    out = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=seed + i)
        out.append(atoms)
    return out


def config(queue_url: str, tmp_path) -> WorkerConfig:
    """A fast worker whose operator enabled the slow EMT test calculator (delay ≤ 60 s)."""
    policy = LabellerPolicy()
    policy.labellers["ase:tests.server.queue.slow_emt.SlowEMT"] = LabellerEntry.model_validate(
        {"user": {"delay": {"type": "float", "min": 0, "max": 60}}}
    )
    save_policy(tmp_path / "models", policy)
    return WorkerConfig(queue_url=queue_url, data_dir=str(tmp_path), policy=FAST, poll_s=0.05)


def test_label_job_stores_each_structure_once_with_emt_values(queue_url, tmp_path):
    store = JobStore(queue_url)
    frames = structures(3)
    params = {"structures": [atoms_to_dict(a) for a in frames], "labeller": "emt", "dataset": "cu"}
    first = store.submit("label", params, owner="lab")
    again = store.submit("label", params, owner="lab")  # the same structures once more
    assert Worker(config(queue_url, tmp_path)).run(max_jobs=2) == 2
    one, two = store.get(first.id), store.get(again.id)
    assert one.state == "done", one.logs
    assert len(one.result["stored"]) == 3 and one.result["already_present"] == 0
    assert two.state == "done" and two.result["already_present"] == 3 and not two.result["stored"]
    with Dataset(tmp_path / "datasets" / "lab" / "cu.db") as data:
        rows = data.rows()
    assert len(rows) == 3
    for ref, row in zip(frames, rows):
        ref.calc = EMT()
        assert np.isclose(row.get_potential_energy(), ref.get_potential_energy(), rtol=1e-10)
        np.testing.assert_allclose(row.get_forces(), ref.get_forces(), atol=1e-10)
    assert one.started >= one.created and one.finished >= one.started


def test_time_limit_then_bounded_retries_then_failed_with_reason(queue_url, tmp_path):
    store = JobStore(queue_url)
    job = store.submit(
        "label",
        {
            "structures": [atoms_to_dict(structures(1)[0])],
            "labeller": "ase:tests.server.queue.slow_emt.SlowEMT",
            "settings": {"delay": 30},
            "dataset": "slow",
        },
        time_limit_s=5.0,
        max_attempts=2,
    )
    started = time.time()
    Worker(config(queue_url, tmp_path)).run(max_jobs=2)
    record = store.get(job.id)
    assert record.state == "failed" and record.attempts == 2
    assert "time limit of 5 s exceeded" in record.error
    assert time.time() - started < 30  # the hung calculation did not hold the worker
    with Dataset(tmp_path / "datasets" / "default" / "slow.db") as data:
        assert data.count() == 0


def test_bad_parameters_fail_at_once_without_retry(queue_url, tmp_path):
    store = JobStore(queue_url)
    job = store.submit("label", {"structures": [{"numbers": [29]}], "dataset": "x"})
    unknown = store.submit("nonsense", {})
    Worker(config(queue_url, tmp_path)).run(max_jobs=2)
    record = store.get(job.id)
    assert (record.state, record.attempts) == ("failed", 1)
    assert "malformed structure" in record.error
    assert "unknown job kind 'nonsense'" in store.get(unknown.id).error


def test_cancel_stops_a_running_job(queue_url, tmp_path):
    store = JobStore(queue_url)
    job = store.submit(
        "label",
        {
            "structures": [atoms_to_dict(a) for a in structures(2)],
            "labeller": "ase:tests.server.queue.slow_emt.SlowEMT",
            "settings": {"delay": 30},
            "dataset": "c",
        },
    )
    worker = threading.Thread(
        target=Worker(config(queue_url, tmp_path)).run, kwargs={"max_jobs": 1}
    )
    worker.start()
    deadline = time.time() + 30
    while store.get(job.id).state != "running" and time.time() < deadline:
        time.sleep(0.05)
    store.cancel(job.id)
    worker.join(30)
    assert not worker.is_alive()
    assert store.get(job.id).state == "cancelled"
