"""Promotions pushed through Redis pub/sub: a store's default-version change reaches every
server sharing that store at once, instead of at its next poll (polling stays the fallback).

`configure(redis_url)` (done by `serve` and `worker` when Redis is set) makes every
`ModelStore.set_default` of this process publish `name@version` on the store's channel;
`listen` wakes a server's store follower when a message arrives. The channel is named by the
store's resolved path, so servers of different stores on one Redis do not wake each other.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

log = logging.getLogger("mlipserve.server")
_URL: str | None = None


def configure(redis_url: str | None) -> None:
    """Publish this process's default-version changes on `redis_url` (None or '': don't)."""
    global _URL
    _URL = redis_url or None


def channel(root: str | Path) -> str:
    """The pub/sub channel of the store at `root`."""
    return f"mlipserve:store:{Path(root).resolve()}"


def announce(root: str | Path, name: str, version: str) -> None:
    """Publish `name@version` as the new default of the store at `root` (best effort: a
    Redis outage leaves the servers' polling to notice)."""
    if _URL is None:
        return
    import redis

    try:
        with redis.Redis.from_url(_URL, socket_timeout=2) as client:
            client.publish(channel(root), f"{name}@{version}")
    except redis.RedisError as err:
        log.warning("could not announce %s@%s on Redis (%s); servers will poll", name, version, err)


async def listen(redis_url: str, root: str | Path, wake: asyncio.Event) -> None:
    """Set `wake` on every announcement for the store at `root`, until cancelled; reconnect
    after a Redis outage."""
    import redis.asyncio as aioredis

    while True:
        try:
            client = aioredis.Redis.from_url(redis_url)
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(channel(root))
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # Redis down: poll meanwhile, try again
            log.warning("store announcements unavailable (%s); retrying in 5 s", err)
            await asyncio.sleep(5)
