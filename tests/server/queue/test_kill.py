"""SIGKILL a worker in the middle of a label job: the job runs again, each label is stored once.

Real processes, a real kill, real Redis (default lease settings: restart within 30 s) and
the embedded mode (`mlipserve serve` with its in-process worker on the SQLite queue).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from ase.build import bulk

from mlipserve.server.dataset import Dataset
from mlipserve.server.labellers.policy import LabellerEntry, LabellerPolicy, save_policy
from mlipserve.server.queue.jobstore import JobStore
from mlipserve.server.queue.payload import atoms_to_dict
from tests.conftest import ServerProcess, free_port
from tests.server.queue.conftest import REDIS_URL, flush_queue

ROOT = Path(__file__).resolve().parents[3]
SLOW = "ase:tests.server.queue.slow_emt.SlowEMT"


def label_params(n: int = 3, delay: float = 2.0, plain: bool = False) -> dict:
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=100 + i)
        frames.append(
            {
                "numbers": atoms.numbers.tolist(),
                "positions": atoms.positions.tolist(),
                "cell": atoms.cell.array.tolist(),
                "pbc": atoms.pbc.tolist(),
            }
            if plain
            else atoms_to_dict(atoms)
        )
    return {
        "structures": frames,
        "labeller": SLOW,
        "settings": {"delay": delay},
        "dataset": "killtest",
    }


def enable_slow_emt(data_dir: Path) -> None:
    """The operator's step: let jobs use the slow test calculator (delay ≤ 10 s)."""
    policy = LabellerPolicy()
    policy.labellers[SLOW] = LabellerEntry.model_validate(
        {"user": {"delay": {"type": "float", "min": 0, "max": 10}}}
    )
    save_policy(data_dir / "models", policy)


def rows(data_dir: Path) -> int:
    path = data_dir / "datasets" / "default" / "killtest.db"
    if not path.exists():
        return 0
    with Dataset(path) as data:
        return data.count()


def wait_for(predicate, timeout: float, what: str) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return time.time()
        time.sleep(0.1)
    raise TimeoutError(what)


def check_exactly_once(data_dir: Path, n: int) -> None:
    with Dataset(data_dir / "datasets" / "default" / "killtest.db") as data:
        stored = data.rows()
    hashes = [a.info["structure_hash"] for a in stored]
    assert len(stored) == n and len(set(hashes)) == n


def test_sigkill_worker_on_redis_with_default_lease(tmp_path):
    queue = f"{REDIS_URL}#kill{uuid.uuid4().hex[:8]}"
    store = JobStore(queue)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MLIPSERVE_REDIS_URL": queue,
        "MLIPSERVE_DATA_DIR": str(tmp_path),
    }
    cmd = [sys.executable, "-m", "mlipserve.cli", "worker"]
    enable_slow_emt(tmp_path)
    job = store.submit("label", label_params())
    first = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    second = None
    try:
        wait_for(lambda: rows(tmp_path) >= 1, 90, "the first label never arrived")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = time.time()
        time.sleep(4)  # the job's child process died with its worker: nothing more is stored
        stalled = rows(tmp_path)
        assert stalled < 3
        second = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: store.get(job.id).state in ("done", "failed"), 120, "job never ended")
        record = store.get(job.id)
        assert record.state == "done", record.logs
        assert record.attempts == 2
        restart = record.started - killed_at
        print(f"redis: job restarted {restart:.1f} s after the SIGKILL")
        assert 0 < restart < 30, f"job restarted {restart:.1f} s after the kill"
        assert record.result["already_present"] == stalled  # labels made before the kill
        check_exactly_once(tmp_path, 3)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        flush_queue(REDIS_URL, queue.rsplit("#", 1)[1])


def test_sigkill_embedded_server_mid_label(tmp_path):
    env = {
        "MLIPSERVE_DATA_DIR": str(tmp_path),
        "MLIPSERVE_LEASE_TTL_S": "4",
        "MLIPSERVE_HEARTBEAT_S": "1",
        "MLIPSERVE_REAP_EVERY_S": "1",
        "PYTHONPATH": str(ROOT),
    }
    port = free_port()
    enable_slow_emt(tmp_path)
    server = ServerProcess(port, "--models", "lj", env=env)
    try:
        reply = httpx.post(
            f"{server.rest_url}/v1/jobs",
            json={"kind": "label", "params": label_params(plain=True)},
            timeout=30,
        )
        assert reply.status_code == 201, reply.text
        job_id = reply.json()["id"]
        wait_for(lambda: rows(tmp_path) >= 1, 90, "the first label never arrived")
        server.kill()
        stalled = rows(tmp_path)
        server = ServerProcess(port, "--models", "lj", env=env)
        url = server.rest_url

        def finished() -> bool:
            return httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()["state"] in (
                "done",
                "failed",
            )

        wait_for(finished, 120, "job never ended after the restart")
        record = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        assert record["state"] == "done", record["logs"]
        assert record["attempts"] == 2 and record["result"]["already_present"] == stalled
        check_exactly_once(tmp_path, 3)
    finally:
        server.terminate()
