"""Workers: take jobs off the queue, run each in a child process under a lease and a time limit.

The child process keeps a hung calculation (an SCF that never converges) from holding the
worker: past `time_limit_s` it is killed and the attempt ends. It forks from
multiprocessing's fork server and watches its worker's pid (and asks Linux for a
parent-death signal), so a SIGKILLed worker leaves nothing running; the lease then
expires and the reaper re-enqueues the job. Exit codes: 0 done, 2 a permanent failure
(`JobError`: bad parameters, nothing to retry), anything else a transient failure (retried
until `max_attempts`).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from mlipserve.server.queue.jobstore import FINAL, JobStore
from mlipserve.server.queue.lease import Lease, LeasePolicy, reap, retry

log = logging.getLogger("mlipserve.queue")
EXIT_PERMANENT = 2


@dataclass
class WorkerConfig:
    """Where jobs find things (passed to every job) and how the worker paces itself."""

    queue_url: str
    data_dir: str
    store_dir: str = ""
    dataset_db: str = ""  # operator's PostgreSQL template for datasets ({tenant}, {name})
    policy: LeasePolicy = field(default_factory=LeasePolicy)
    poll_s: float = 0.25

    def __post_init__(self) -> None:
        if self.dataset_db and not (
            self.dataset_db.startswith(("postgresql://", "postgres://"))
            and "{tenant}" in self.dataset_db
            and "{name}" in self.dataset_db
        ):
            raise ValueError(
                "dataset_db must be a postgresql:// URL template holding {tenant} "
                "and {name}, e.g. postgresql://db-host/ds_{tenant}_{name}"
            )

    def job_env(self) -> dict:
        """What a job's context is told about the installation."""
        return {
            "data_dir": self.data_dir,
            "dataset_db": self.dataset_db,
            "store_dir": self.store_dir or os.path.join(self.data_dir, "models"),
        }


class Worker:
    """One worker loop (run several for parallel jobs); reaps expired leases as it goes."""

    def __init__(self, config: WorkerConfig, name: str | None = None) -> None:
        self.config = config
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.store = JobStore(config.queue_url)
        self._last_reap = 0.0

    def run(self, stop: threading.Event | None = None, max_jobs: int | None = None) -> int:
        """Process jobs until `stop` is set (or `max_jobs` were taken); return how many."""
        stop = stop or threading.Event()
        done = 0
        while not stop.is_set() and (max_jobs is None or done < max_jobs):
            self.maybe_reap()
            item = self.store.dequeue()
            if item is None:
                stop.wait(self.config.poll_s)
                continue
            self.process(*item)
            done += 1
        return done

    def maybe_reap(self) -> None:
        """Run the reaper when its period has passed."""
        now = time.time()
        if now - self._last_reap >= self.config.policy.reap_every_s:
            self._last_reap = now
            try:
                reap(self.store, self.config.policy, now)
            except Exception:
                log.exception("reaper failed")

    def process(self, job_id: str, attempt: int) -> None:
        """Run one attempt of a job, unless it is stale, final or cancelled."""
        try:
            record = self.store.get(job_id)
        except KeyError:
            return
        if record.state in FINAL or record.attempts != attempt:
            return
        if self.store.cancel_requested(job_id):
            self.store.update(job_id, state="cancelled", finished=time.time())
            return
        with Lease(self.store, job_id, attempt, self.name, self.config.policy):
            self.store.update(job_id, state="running", started=time.time(), worker=self.name)
            self.store.log(job_id, f"attempt {attempt} started on {self.name}")
            outcome = self._run_child(job_id, record.time_limit_s)
            self._settle(job_id, outcome)

    def _run_child(self, job_id: str, time_limit_s: float) -> str:
        ctx = job_process_context()
        proc = ctx.Process(
            target=child_main,
            args=(self.config.queue_url, job_id, self.config.job_env(), os.getpid()),
            name=f"job-{job_id}",
            daemon=True,
        )
        proc.start()
        deadline = time.monotonic() + time_limit_s
        while True:
            proc.join(0.2)
            if proc.exitcode is not None:
                return {0: "ok", EXIT_PERMANENT: "permanent"}.get(
                    proc.exitcode, f"exit {proc.exitcode}"
                )
            if time.monotonic() > deadline:
                _kill(proc)
                return f"time limit of {time_limit_s:g} s exceeded"
            if self.store.cancel_requested(job_id):
                _kill(proc)
                return "cancelled"

    def _settle(self, job_id: str, outcome: str) -> None:
        record = self.store.get(job_id)
        if outcome == "ok" or record.state in FINAL:
            return
        if outcome == "cancelled":
            self.store.update(job_id, state="cancelled", finished=time.time())
        elif outcome == "permanent":
            self.store.update(job_id, state="failed", finished=time.time())
        else:
            reason = record.error if outcome.startswith("exit") and record.error else outcome
            retry(self.store, job_id, reason)
        if self.store.get(job_id).state in ("cancelled", "failed") and self.store.kv_get(
            f"slurm:{job_id}"
        ):  # a label job whose calculations run on Slurm: stop them too
            from mlipserve.server.queue.slurm import cancel_recorded

            cancel_recorded(self.store, job_id)


_PRELOAD = [
    "mlipserve.server.queue.tasks",
    "mlipserve.server.queue.context",
    "mlipserve.server.queue.params",
    "mlipserve.server.dataset",
    "mlipserve.server.labellers",
    "mlipserve.server.labellers.policy",
]


def job_process_context():
    """Job processes fork from a clean, preloaded fork server: fast to start (no imports per
    job) and safe next to torch's threads in the worker (the server process never ran any)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _kill(proc) -> None:
    proc.terminate()
    proc.join(2.0)
    if proc.exitcode is None:
        proc.kill()
        proc.join()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _watch_worker(worker_pid: int) -> None:
    """Exit at once when the worker that started this job is gone (SIGKILL included)."""
    while True:
        time.sleep(0.5)
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            os._exit(3)


def child_main(queue_url: str, job_id: str, env: dict, worker_pid: int | None = None) -> None:
    """Entry point of a job's child process: run the job and write its outcome."""
    _die_with_parent()
    if worker_pid is not None:
        threading.Thread(target=_watch_worker, args=(worker_pid,), daemon=True).start()
    from mlipserve.server.queue.context import JobContext, JobError
    from mlipserve.server.queue.tasks import JOBS

    store = JobStore(queue_url)
    record = store.get(job_id)
    ctx = JobContext(store, record, env)
    try:
        job = JOBS.get(record.kind)
        if job is None:
            raise JobError(f"unknown job kind {record.kind!r}; known: {sorted(JOBS)}")
        result = job(ctx, ctx.checked_params())  # the same checks as at submission, again
    except JobError as err:
        store.update(job_id, error=str(err))
        store.log(job_id, f"failed: {err}")
        os._exit(EXIT_PERMANENT)
    except BaseException as err:  # noqa: BLE001 - anything else is transient: retry
        store.update(job_id, error=f"{type(err).__name__}: {err}")
        store.log(job_id, f"error: {type(err).__name__}: {err}")
        os._exit(1)
    store.update(
        job_id, state="done", result=result, progress=1.0, finished=time.time(), error=None
    )
    store.log(job_id, "done")
    os._exit(0)


def start_worker_threads(config: WorkerConfig, count: int = 1) -> tuple[threading.Event, list]:
    """Embedded mode: `count` worker loops as daemon threads of this process."""
    stop = threading.Event()
    threads = []
    for i in range(count):
        worker = Worker(config, name=f"embedded-{os.getpid()}-{i}")
        t = threading.Thread(target=worker.run, args=(stop,), daemon=True, name=f"worker-{i}")
        t.start()
        threads.append(t)
    return stop, threads
