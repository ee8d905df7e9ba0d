"""Labels per hour through the queue: EMT and GFN2-xTB, one worker process vs two.

Each case: a fresh SQLite queue, N label jobs of B structures each submitted at once, then
`mlipserve worker` processes started and timed until every job is done. The figure includes
everything a user waits for: queue round trips, a child process per job, the labeller, and
the de-duplicated dataset write. Run: `python -m benchmarks.label_throughput`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk, molecule

from benchmarks.common import write_result
from mlipserve.server.queue.jobstore import JobStore
from mlipserve.server.queue.payload import atoms_to_dict

ROOT = Path(__file__).resolve().parents[1]


def cu_cells(n: int, seed: int):
    """Rattled 32-atom fcc Cu cells."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out.append(atoms)
    return out


def molecules(n: int, seed: int):
    """Rattled ethanol molecules (9 atoms) in vacuum."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = molecule("CH3CH2OH")
        atoms.rattle(0.03, seed=int(rng.integers(1 << 30)))
        out.append(atoms)
    return out


def run_case(labeller: str, make, jobs: int, per_job: int, workers: int) -> dict:
    """Submit `jobs` label jobs and time `workers` worker processes until all are done."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/queue.db"
        store = JobStore(url)
        ids = [
            store.submit(
                "label",
                {
                    "structures": [atoms_to_dict(a) for a in make(per_job, j)],
                    "labeller": labeller,
                    "dataset": "bench",
                },
            ).id
            for j in range(jobs)
        ]
        env = {
            **os.environ,
            "MLIPSERVE_QUEUE_URL": url,
            "MLIPSERVE_DATA_DIR": tmp,
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "mlipserve.cli", "worker"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        try:
            while True:
                states = [store.get(i).state for i in ids]
                if all(s in ("done", "failed") for s in states):
                    break
                time.sleep(0.1)
            elapsed = time.perf_counter() - start
        finally:
            for p in procs:
                p.kill()
                p.wait()
        failed = states.count("failed")
    labels = jobs * per_job
    return {
        "labeller": labeller,
        "workers": workers,
        "jobs": jobs,
        "per_job": per_job,
        "failed_jobs": failed,
        "seconds": elapsed,
        "labels_per_hour": 3600 * labels / elapsed,
    }


def main() -> None:
    cases = []
    for labeller, make, jobs, per_job in (("emt", cu_cells, 8, 25), ("xtb", molecules, 6, 5)):
        for workers in (1, 2):
            case = run_case(labeller, make, jobs, per_job, workers)
            print(
                f"{labeller:4s} workers={workers}: {case['labels_per_hour']:9.0f} labels/h "
                f"({case['seconds']:.1f} s for {jobs * per_job})",
                flush=True,
            )
            cases.append(case)
    by = {(c["labeller"], c["workers"]): c["labels_per_hour"] for c in cases}
    write_result(
        "label_throughput",
        {
            "cases": cases,
            "speedup_2_workers": {lab: by[(lab, 2)] / by[(lab, 1)] for lab in ("emt", "xtb")},
            "note": "queue: SQLite; each job runs in a child process (spawn); 2-core machine",
        },
    )


if __name__ == "__main__":
    main()
