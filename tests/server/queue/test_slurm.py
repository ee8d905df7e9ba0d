"""Label jobs whose calculations run as real Slurm jobs (single-node slurm-wlm on localhost)."""

from __future__ import annotations

import subprocess
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
