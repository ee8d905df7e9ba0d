"""Leases and the reaper on both backends (SQLite file, real Redis): no job is lost or doubled."""

from __future__ import annotations

import time

import pytest

from mlipserve.server.queue.jobstore import JobStore
from mlipserve.server.queue.lease import Lease, LeasePolicy, reap

POLICY = LeasePolicy(ttl_s=1.0, heartbeat_s=0.2, reap_every_s=0.1)


def take(store: JobStore, worker: str = "w1"):
    """Dequeue like a worker and mark the job running (without running it)."""
    job_id, attempt = store.dequeue()
    store.update(job_id, state="running", started=time.time(), worker=worker)
    return job_id, attempt


def test_submit_roundtrip_and_listing(queue_url):
    store = JobStore(queue_url)
    a = store.submit("label", {"x": [1, 2]}, owner="lab-a")
    b = store.submit("retrain", {}, owner="lab-b")
    assert store.get(a.id).params == {"x": [1, 2]}
    assert [r.id for r in store.list()] == [b.id, a.id]
    assert [r.id for r in store.list(owner="lab-a")] == [a.id]
    assert store.queue_length() == 2
    assert store.dequeue() == (a.id, 1)
    with pytest.raises(KeyError):
        store.get("nope")


def test_expired_lease_is_requeued_once_as_next_attempt(queue_url):
    store = JobStore(queue_url)
    job = store.submit("label", {})
    job_id, attempt = take(store)
    Lease(store, job_id, attempt, "w1", POLICY).renew()
    assert reap(store, POLICY) == []  # live lease: left alone
    later = time.time() + 2 * POLICY.ttl_s
    assert reap(store, POLICY, now=later) == [job.id]
    assert reap(store, POLICY, now=later) == []  # a second reaper does not enqueue it again
    record = store.get(job.id)
    assert (record.state, record.attempts) == ("queued", 2)
    assert "worker lost" in record.logs[-1]
    assert store.dequeue() == (job.id, 2) and store.dequeue() is None


def test_heartbeat_keeps_a_long_job_alive(queue_url):
    store = JobStore(queue_url)
    store.submit("label", {})
    job_id, attempt = take(store)
    with Lease(store, job_id, attempt, "w1", POLICY):
        time.sleep(3 * POLICY.ttl_s)  # three lease lengths: only the heartbeat keeps it
        assert reap(store, POLICY) == []
    assert store.kv_get(f"lease:{job_id}") is None


def test_attempts_are_bounded(queue_url):
    store = JobStore(queue_url)
    job = store.submit("label", {}, max_attempts=2)
    for _ in range(2):
        take(store)
        reap(store, POLICY, now=time.time() + 10)
    record = store.get(job.id)
    assert record.state == "failed" and record.attempts == 2
    assert "lease expired" in record.error
    assert store.dequeue() is None


def test_queue_item_lost_between_dequeue_and_lease_is_recovered(queue_url):
    store = JobStore(queue_url)
    job = store.submit("label", {})
    store.dequeue()  # a worker took it and died before writing its lease
    assert reap(store, POLICY) == []  # too recent to tell from a worker about to lease it
    assert reap(store, POLICY, now=time.time() + 5) == [job.id]
    assert store.dequeue() == (job.id, 2)


def test_cancel_queued_and_running(queue_url):
    store = JobStore(queue_url)
    queued = store.submit("label", {})
    running = store.submit("label", {})
    store.dequeue()
    take(store)
    assert store.cancel(queued.id).state == "cancelled"
    assert store.cancel(running.id).state == "running"  # its worker stops it
    assert store.cancel_requested(running.id)
    reap(store, POLICY, now=time.time() + 10)  # a lost cancelled job is not re-run
    assert store.get(running.id).state == "cancelled"


def test_payload_is_msgpack_not_pickle(queue_url):
    store = JobStore(queue_url)
    job = store.submit("label", {"a": 1})
    raw = store.storage.peek_data(f"job:{job.id}")
    assert raw[:1] != b"\x80"  # a pickle starts with PROTO 0x80
    import msgpack

    assert msgpack.unpackb(raw)["params"] == {"a": 1}
