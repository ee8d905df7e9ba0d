"""Leases: a running job's worker renews a heartbeat; a reaper re-enqueues jobs whose lease ran out.

huey (like every broker-less queue we measured) deletes a job when a worker takes it, so a
worker killed with SIGKILL would lose it. Here the worker writes `lease:<id>` = {worker,
attempt, expires} before it starts and renews it every `heartbeat_s`; any worker's reaper
scans running jobs every `reap_every_s` and puts a job whose lease expired back on the queue
as a new attempt (or fails it once `max_attempts` are spent). Jobs are idempotent, so an
attempt that runs twice (a worker frozen longer than the lease) is harmless. With the
defaults (15 s lease, 3 s heartbeat, 5 s reaper) a killed job starts again ≤ ~21 s later.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from mlipserve.server.queue.jobstore import JobStore

log = logging.getLogger("mlipserve.queue")


@dataclass(frozen=True)
class LeasePolicy:
    """How long a lease lasts, how often it is renewed and how often expired ones are reaped."""

    ttl_s: float = 15.0
    heartbeat_s: float = 3.0
    reap_every_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_s < self.ttl_s:
            raise ValueError("need 0 < heartbeat_s < ttl_s")


class Lease:
    """One attempt's hold on a job, renewed by a background thread while the job runs."""

    def __init__(
        self, store: JobStore, job_id: str, attempt: int, worker: str, policy: LeasePolicy
    ) -> None:
        self.store, self.job_id, self.attempt, self.worker = store, job_id, attempt, worker
        self.policy = policy
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def renew(self) -> None:
        """Push the expiry `ttl_s` into the future."""
        self.store.kv_put(
            f"lease:{self.job_id}",
            {
                "worker": self.worker,
                "attempt": self.attempt,
                "expires": time.time() + self.policy.ttl_s,
            },
        )

    def __enter__(self) -> Lease:
        self.renew()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"lease-{self.job_id}")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.store.kv_delete(f"lease:{self.job_id}")

    def _beat(self) -> None:
        while not self._stop.wait(self.policy.heartbeat_s):
            try:
                self.renew()
            except Exception:  # a broker hiccup: try again at the next beat
                log.exception("lease renewal of %s failed", self.job_id)


def lease_expired(store: JobStore, job_id: str, attempt: int, now: float) -> bool:
    """True when the job's current attempt holds no live lease."""
    lease = store.kv_get(f"lease:{job_id}")
    return lease is None or lease.get("attempt") != attempt or lease["expires"] < now


def reap(store: JobStore, policy: LeasePolicy, now: float | None = None) -> list[str]:
    """Re-enqueue (or fail) jobs whose worker is gone; return the ids acted on.

    Running jobs whose lease expired, and queued jobs that are older than a lease but not on
    the queue (a worker died between taking one and writing its lease), are both lost work.
    """
    now = time.time() if now is None else now
    acted = []
    waiting = None
    for record in store.list():
        if record.state == "running":
            if (
                record.started is not None
                and now - record.started < policy.ttl_s
                and store.kv_get(f"lease:{record.id}") is None
            ):
                continue  # just claimed: the lease is being written
            if not lease_expired(store, record.id, record.attempts, now):
                continue
            reason = "worker lost (lease expired)"
        elif record.state == "queued" and now - record.enqueued > policy.ttl_s:
            if waiting is None:
                waiting = {item for item in _queued_items(store)}
            if (record.id, record.attempts) in waiting:
                continue
            reason = "queue item lost"
        else:
            continue
        if not store.claim_once(f"reap:{record.id}:{record.attempts}"):
            continue  # another reaper got there first
        retry(store, record.id, reason)
        acted.append(record.id)
    return acted


def retry(store: JobStore, job_id: str, reason: str) -> None:
    """Queue the next attempt of a job, or fail it when its attempts are spent."""
    record = store.get(job_id)
    if record.state in ("done", "failed", "cancelled"):
        return
    line = f"attempt {record.attempts}/{record.max_attempts} ended: {reason}"
    record.logs.append(f"{time.strftime('%H:%M:%S')} {line}")
    if store.cancel_requested(job_id):
        record.state, record.finished = "cancelled", time.time()
    elif record.attempts >= record.max_attempts:
        record.state, record.error, record.finished = "failed", reason, time.time()
    else:
        record.attempts += 1
        record.state, record.enqueued, record.worker = "queued", time.time(), None
    store.put(record)
    if record.state == "queued":
        store.enqueue(job_id, record.attempts)
    log.warning("job %s: %s -> %s", job_id, line, record.state)


def _queued_items(store: JobStore):
    from mlipserve.server.queue.payload import unpack

    for data in store.storage.enqueued_items():
        item = unpack(data)
        yield item["job"], int(item["attempt"])
