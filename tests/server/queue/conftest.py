"""Queue fixtures: a job store on a SQLite file and one on the machine's real Redis."""

from __future__ import annotations

import uuid

import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def flush_queue(url: str, name: str) -> None:
    """Remove every key huey made for queue `name` on Redis."""
    conn = redis.Redis.from_url(url)
    for key in conn.scan_iter(f"huey.*.{name}"):
        conn.delete(key)


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request, tmp_path):
    """A fresh queue on each backend (Redis must answer on 127.0.0.1:6379, as CI ensures)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
        return
    if not redis_available():
        pytest.fail("Redis does not answer on 127.0.0.1:6379 (.ci/run starts one)")
    db = uuid.uuid4().hex[:8]
    url = f"{REDIS_URL}#test{db}"
    yield url
    flush_queue(REDIS_URL, f"test{db}")
