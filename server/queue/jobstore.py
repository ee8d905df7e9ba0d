"""Job records and the queue, on huey's storage: SQLite file (embedded) or Redis.

One code base for both modes: huey's `SqliteHuey` / `RedisHuey` storage gives a FIFO queue
and a key-value table that several processes and machines share. We use the storage layer
only (not huey's consumer, which deletes a job when a worker takes it and has no time
limit); records and queue items are msgpack, never pickle. Keys: `job:<id>` (the record),
`lease:<id>` (see `lease.py`), `cancel:<id>` (a cancel request).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.constants import EmptyData

from mlipserve.server.queue.payload import pack, unpack

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL = frozenset({"done", "failed", "cancelled"})
MAX_LOG_LINES = 200


@dataclass
class JobRecord:
    """What a job is, who owns it and where it stands."""

    id: str
    kind: str
    owner: str
    params: dict
    role: str = "user"  # of the key that submitted it; records without one are treated as a user's
    state: str = "queued"
    progress: float = 0.0
    logs: list[str] = field(default_factory=list)
    result: dict | None = None
    error: str | None = None
    attempts: int = 1
    max_attempts: int = 3
    time_limit_s: float = 600.0
    created: float = field(default_factory=time.time)
    enqueued: float = field(default_factory=time.time)
    worker: str | None = None
    started: float | None = None
    finished: float | None = None

    def public(self, with_params: bool = False) -> dict:
        """The record as JSON-friendly data (params only when asked: they can be large)."""
        out = asdict(self)
        if not with_params:
            out.pop("params")
        return out


def open_storage(url: str, name: str = "mlipserve"):
    """huey storage for `sqlite:///path/queue.db` or `redis://host:port/db` (a `#name`
    suffix names the queue, so several share one Redis database)."""
    url, _, fragment = url.partition("#")
    name = fragment or name
    if url.startswith("redis://") or url.startswith("rediss://"):
        return RedisHuey(name, url=url, results=True).storage
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path), results=True).storage
    raise ValueError(f"queue URL must be sqlite:///PATH or redis://HOST:PORT/DB, got {url!r}")


class JobStore:
    """Submit, read, update and list jobs; enqueue and dequeue their ids."""

    def __init__(self, url: str, name: str = "mlipserve") -> None:
        self.url, self.name = url, name
        self.storage = open_storage(url, name)

    # -- records -------------------------------------------------------------------------
    def submit(
        self,
        kind: str,
        params: dict,
        owner: str = "default",
        *,
        role: str = "user",
        max_attempts: int = 3,
        time_limit_s: float = 600.0,
    ) -> JobRecord:
        """Record a new job and put it on the queue (the worker checks its params again)."""
        if max_attempts < 1 or time_limit_s <= 0:
            raise ValueError("max_attempts must be ≥ 1 and time_limit_s > 0")
        record = JobRecord(
            id=uuid.uuid4().hex[:16],
            kind=kind,
            owner=owner,
            params=params,
            role=role,
            max_attempts=max_attempts,
            time_limit_s=time_limit_s,
        )
        self.put(record)
        self.enqueue(record.id, record.attempts)
        return record

    def put(self, record: JobRecord) -> None:
        """Write the whole record."""
        record.logs = record.logs[-MAX_LOG_LINES:]
        self.storage.put_data(f"job:{record.id}", pack(asdict(record)))

    def get(self, job_id: str) -> JobRecord:
        """The record of `job_id` (KeyError when unknown)."""
        data = self.storage.peek_data(f"job:{job_id}")
        if data is EmptyData:
            raise KeyError(job_id)
        return JobRecord(**unpack(data))

    def update(self, job_id: str, **changes: Any) -> JobRecord:
        """Read, change and write back a record."""
        record = self.get(job_id)
        for key, value in changes.items():
            setattr(record, key, value)
        self.put(record)
        return record

    def log(self, job_id: str, line: str) -> None:
        """Append a timestamped line to the job's log."""
        record = self.get(job_id)
        record.logs.append(f"{time.strftime('%H:%M:%S')} {line}")
        self.put(record)

    def list(
        self, owner: str | None = None, state: str | None = None, kind: str | None = None
    ) -> list[JobRecord]:
        """All jobs, newest first, optionally filtered."""
        out = []
        for key, value in self.storage.result_items().items():
            key = key.decode() if isinstance(key, bytes) else key
            if not key.startswith("job:"):
                continue
            rec = JobRecord(**unpack(value))
            if (
                (owner is None or rec.owner == owner)
                and (state is None or rec.state == state)
                and (kind is None or rec.kind == kind)
            ):
                out.append(rec)
        return sorted(out, key=lambda r: r.created, reverse=True)

    # -- queue ---------------------------------------------------------------------------
    def enqueue(self, job_id: str, attempt: int) -> None:
        """Put one attempt of a job on the queue."""
        self.storage.enqueue(pack({"job": job_id, "attempt": attempt}))

    def dequeue(self) -> tuple[str, int] | None:
        """Take the next (job id, attempt) off the queue, or None when it is empty."""
        data = self.storage.dequeue()
        if data is None:
            return None
        item = unpack(data)
        return item["job"], int(item["attempt"])

    def queue_length(self) -> int:
        """Items waiting on the queue."""
        return self.storage.queue_size()

    # -- cancel --------------------------------------------------------------------------
    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job: at once when queued, through its worker when running."""
        record = self.get(job_id)
        if record.state in FINAL:
            return record
        self.storage.put_data(f"cancel:{job_id}", b"1")
        if record.state == "queued":
            return self.update(job_id, state="cancelled", finished=time.time())
        return record

    def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked to cancel the job."""
        return self.storage.has_data_for_key(f"cancel:{job_id}")

    # -- small key-value helpers (leases, locks) -----------------------------------------
    def kv_put(self, key: str, value: dict) -> None:
        """Write a small msgpack value."""
        self.storage.put_data(key, pack(value))

    def kv_get(self, key: str) -> dict | None:
        """Read a small msgpack value (None when absent)."""
        data = self.storage.peek_data(key)
        return None if data is EmptyData else unpack(data)

    def kv_delete(self, key: str) -> None:
        """Remove a key (no error when absent)."""
        self.storage.delete_data(key)

    def claim_once(self, key: str) -> bool:
        """True for exactly one caller per key, across processes (an atomic put-if-empty)."""
        return bool(self.storage.put_if_empty(key, b"1"))
