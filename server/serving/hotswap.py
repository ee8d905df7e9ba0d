"""Follow the model store: when a name's default version changes there, serve the new one.

Promotion (a queue job, possibly on another machine) only writes the store; every server
sharing that store picks the change up within `period` seconds. The new version is loaded
off the event loop and then made the default in one step, so requests never see a gap:
calls in flight finish on the version they started with.
"""

from __future__ import annotations

import asyncio
import logging

from mlipserve.server.serving.registry import Registry
from mlipserve.server.store import ModelStore, StoreError

log = logging.getLogger("mlipserve.server")


async def sync_defaults(registry: Registry, store: ModelStore, device: str = "auto") -> list[str]:
    """Bring the registry's defaults in line with the store's for names served from it."""
    changed = []
    loaded_names = {loaded.model.info.name for loaded, _ in registry.entries()}
    for name in sorted(loaded_names & set(store.names())):
        try:
            wanted = store.default_version(name)
        except StoreError:
            continue
        if registry.default_version(name) == wanted:
            continue
        try:
            registry.get(name, wanted)
        except KeyError:
            model = await asyncio.to_thread(store.load, name, wanted, device=device)
            registry.add(model, make_default=False)
        registry.set_default(name, wanted)
        log.info("hot swap: %s now serves version %s (store default changed)", name, wanted)
        changed.append(f"{name}@{wanted}")
    return changed


async def follow_store(
    registry: Registry,
    store: ModelStore,
    period: float,
    device: str = "auto",
    wake: asyncio.Event | None = None,
) -> None:
    """Run `sync_defaults` every `period` seconds, and at once when `wake` is set (a Redis
    announcement of a promotion), until cancelled."""
    wake = wake or asyncio.Event()
    while True:
        try:
            await asyncio.wait_for(wake.wait(), period)
        except TimeoutError:
            pass
        wake.clear()
        try:
            await sync_defaults(registry, store, device)
        except Exception:  # a half-written version or a vanished file: try again later
            log.exception("following the model store failed")
