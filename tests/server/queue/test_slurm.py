"""Label jobs whose calculations run as real Slurm jobs (single-node slurm-wlm on localhost)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from mlipserve.server.dataset import Dataset
from mlipserve.server.labellers.policy import LabellerEntry, LabellerPolicy, save_policy
from mlipserve.server.queue.jobstore import JobStore
from mlipserve.server.queue.payload import atoms_to_dict
from mlipserve.server.queue.worker import Worker, WorkerConfig

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def slurm():
    """A running single-node Slurm (installed and started by deploy/slurm/local-cluster.sh)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "deploy/slurm/local-cluster.sh")], capture_output=True, text=True
    )
    if proc.returncode == 3:
        pytest.skip("Slurm is not installed and apt-get is not available here")
    assert proc.returncode == 0, proc.stderr


def test_emt_labels_on_slurm_equal_in_process(slurm, tmp_path):
    policy = LabellerPolicy()
    entry = policy.labellers["emt"].model_dump()
    entry["slurm"] = {"structures_per_job": 2, "poll_s": 0.5, "mem_gb": 0.5}
    policy.labellers["emt"] = LabellerEntry.model_validate(entry)
    save_policy(tmp_path / "models", policy)
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    store = JobStore(url)
    frames = []
    for i in range(3):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=i)
        frames.append(atoms)
    job = store.submit(
        "label", {"structures": [atoms_to_dict(a) for a in frames], "dataset": "slurm"}
    )
    Worker(WorkerConfig(queue_url=url, data_dir=str(tmp_path))).run(max_jobs=1)
    record = store.get(job.id)
    assert record.state == "done", record.logs
    assert len(record.result["submitted"]) == 2 and not record.result["reattached"]
    states = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "State", "-j", ",".join(record.result["submitted"])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert states == ["COMPLETED", "COMPLETED"]
    with Dataset(tmp_path / "datasets" / "default" / "slurm.db") as data:
        rows = data.rows()
    assert len(rows) == 3
    for got in rows:
        ref = next(a for a in frames if np.allclose(a.positions, got.positions))
        ref.calc = EMT()
        assert abs(got.get_potential_energy() - ref.get_potential_energy()) < 1e-10
        assert np.allclose(got.get_forces(), ref.get_forces(), atol=1e-10)


def slurm_policy(tmp_path: Path, **slurm) -> None:
    """The operator's step: EMT labels run on Slurm with these settings."""
    policy = LabellerPolicy()
    entry = policy.labellers["emt"].model_dump()
    entry["slurm"] = {"structures_per_job": 2, "poll_s": 0.5, "mem_gb": 0.5, **slurm}
    policy.labellers["emt"] = LabellerEntry.model_validate(entry)
    save_policy(tmp_path / "models", policy)


def cu_frames(n: int, seed: int = 0) -> list[dict]:
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=seed + i)
        frames.append(atoms_to_dict(atoms))
    return frames


def sacct(*args: str) -> list[list[str]]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", *args], capture_output=True, text=True, check=True
    ).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(what)


def test_sigkill_worker_while_slurm_runs_reattaches(slurm, tmp_path):
    """The worker dies while its Slurm jobs run; the next worker re-attaches, stores once."""
    slurm_policy(tmp_path, setup=["sleep 6"])
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    store = JobStore(url)
    job = store.submit("label", {"structures": cu_frames(3, seed=10), "dataset": "slurm"})
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MLIPSERVE_QUEUE_URL": url,
        "MLIPSERVE_DATA_DIR": str(tmp_path),
        "MLIPSERVE_LEASE_TTL_S": "3",
        "MLIPSERVE_HEARTBEAT_S": "1",
        "MLIPSERVE_REAP_EVERY_S": "1",
    }
    cmd = [sys.executable, "-m", "mlipserve.cli", "worker"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": ROOT}
    first = subprocess.Popen(cmd, env=env, **quiet)
    second = None
    try:
        wait_until(
            lambda: len(store.kv_get(f"slurm:{job.id}") or {}) == 2, 60, "no Slurm ids recorded"
        )
        ids = sorted(store.kv_get(f"slurm:{job.id}").values())
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        alive = subprocess.run(
            ["squeue", "-h", "-o", "%i", "-j", ",".join(ids)], capture_output=True, text=True
        ).stdout.split()
        assert sorted(alive) == ids  # the Slurm jobs outlive the worker
        second = subprocess.Popen(cmd, env=env, **quiet)
        wait_until(lambda: store.get(job.id).state in ("done", "failed"), 90, "job never ended")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    record = store.get(job.id)
    assert record.state == "done", record.logs
    assert record.attempts == 2
    assert sorted(record.result["reattached"]) == ids and not record.result["submitted"]
    names = [
        row[0]
        for row in sacct(
            "-o",
            "JobName%80",
            "--name",
            ",".join(f"mlipserve-{job.id}-{chunk}" for chunk in store.kv_get(f"slurm:{job.id}")),
            "-S",
            "now-1hours",
        )
    ]
    assert len(names) == 2 and len(set(names)) == 2  # one Slurm job per chunk, never a second
    with Dataset(tmp_path / "datasets" / "default" / "slurm.db") as data:
        hashes = [a.info["structure_hash"] for a in data.rows()]
    assert len(hashes) == 3 and len(set(hashes)) == 3


def run_one(tmp_path: Path, frames: list[dict]):
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    store = JobStore(url)
    job = store.submit("label", {"structures": frames, "dataset": "slurm"})
    Worker(WorkerConfig(queue_url=url, data_dir=str(tmp_path))).run(max_jobs=1)
    return store, store.get(job.id)


def test_failed_slurm_job_becomes_a_failed_label_with_the_reason(slurm, tmp_path):
    slurm_policy(tmp_path, setup=["echo the node is broken >&2", "exit 3"])
    store, record = run_one(tmp_path, cu_frames(2, seed=20))
    assert record.state == "failed"
    assert "ended FAILED" in record.error and "the node is broken" in record.error
    (slurm_id,) = set(store.kv_get(f"slurm:{record.id}").values())
    assert sacct("-o", "State", "-j", slurm_id) == [["FAILED"]]


def test_timeout_becomes_a_failed_label_and_others_are_stored(slurm, tmp_path):
    """One chunk runs out of time (Slurm ends it at its EndTime); the other chunk's labels
    are stored and the failed structures name TIMEOUT.

    slurmctld looks at time limits only every 30 s (PERIODIC_TIMEOUT): a fixed sleep in the
    setup could end first, and the batch script then reaches srun as the job is being ended
    (it ends FAILED, "Unable to create step", not TIMEOUT). So each chunk waits at a gate:
    the other chunk is let through, the first never is."""
    gate = f"until [ -e {tmp_path}/go-$SLURM_JOB_ID ]; do sleep 0.5; done"
    slurm_policy(tmp_path, structures_per_job=1, setup=[gate], time_min=5)
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    store = JobStore(url)
    job = store.submit("label", {"structures": cu_frames(2, seed=30), "dataset": "slurm"})
    worker = threading.Thread(
        target=Worker(WorkerConfig(queue_url=url, data_dir=str(tmp_path))).run,
        kwargs={"max_jobs": 1},
    )
    worker.start()
    wait_until(lambda: len(store.kv_get(f"slurm:{job.id}") or {}) == 2, 60, "not submitted")
    first = sorted(store.kv_get(f"slurm:{job.id}").values())[0]
    (second,) = set(store.kv_get(f"slurm:{job.id}").values()) - {first}
    wait_until(lambda: sacct("-o", "State", "-j", first) == [["RUNNING"]], 60, "never ran")
    subprocess.run(["scontrol", "update", f"jobid={first}", "EndTime=now"], check=True)
    (tmp_path / f"go-{second}").touch()
    worker.join(120)
    record = store.get(job.id)
    assert record.state == "done", record.logs
    assert len(record.result["stored"]) == 1
    (failure,) = record.result["failed"]
    assert failure["slurm_job"] == first and "ended TIMEOUT" in failure["error"]


def test_cancel_scancels_the_slurm_jobs(slurm, tmp_path):
    slurm_policy(tmp_path, setup=["sleep 60"])
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    store = JobStore(url)
    job = store.submit("label", {"structures": cu_frames(3, seed=40), "dataset": "slurm"})
    worker = threading.Thread(
        target=Worker(WorkerConfig(queue_url=url, data_dir=str(tmp_path))).run,
        kwargs={"max_jobs": 1},
    )
    worker.start()
    wait_until(lambda: len(store.kv_get(f"slurm:{job.id}") or {}) == 2, 60, "not submitted")
    ids = sorted(store.kv_get(f"slurm:{job.id}").values())
    store.cancel(job.id)
    worker.join(60)
    assert store.get(job.id).state == "cancelled"
    wait_until(
        lambda: all(
            s[0].startswith("CANCELLED") for s in sacct("-o", "State", "-j", ",".join(ids))
        ),
        30,
        "Slurm jobs still alive after the cancel",
    )


def test_out_of_memory_becomes_a_failed_label(slurm, tmp_path):
    """A calculation over its --mem is killed by Slurm's cgroup: OUT_OF_MEMORY, not FAILED."""
    hog = "python3 -c 'import time; x = bytearray(900 * 2**20); time.sleep(2)'"
    slurm_policy(tmp_path, setup=[hog], mem_gb=0.25)
    store, record = run_one(tmp_path, cu_frames(2, seed=50))
    assert record.state == "failed" and "ended OUT_OF_MEMORY" in record.error, record.error
