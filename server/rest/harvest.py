"""/v1/models/{name}/harvest: an admin reads and sets a model's harvest settings.

The settings live in the `harvest` block of the model's default version's metadata (a
round's candidate inherits it); servers sharing the store pick a change up within a
second. Both routes need an admin key: the summary names tenants and counts their data.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, HTTPException, Request

from mlipserve.server.rest.models import _lock, _store, path_names
from mlipserve.server.rest.security import admin
from mlipserve.server.serving.harvest_pool import HarvestSettings, read_summary, settings_of
from mlipserve.server.store import StoreError

router = APIRouter(
    prefix="/v1/models", tags=["harvest"], dependencies=[Depends(admin), Depends(path_names)]
)


def _current(store, name: str) -> tuple[str, dict]:
    try:
        version = store.default_version(name)
        return version, store.metadata(name, version)
    except StoreError as err:
        raise HTTPException(404, str(err)) from None


@router.get("/{name}/harvest")
async def get_harvest(name: str, request: Request) -> dict:
    """The model's harvest settings and pool summary (admin)."""
    store = _store(request)
    version, meta = await asyncio.to_thread(_current, store, name)
    return {
        "model": name,
        "version": version,
        "settings": settings_of(meta).model_dump(),
        "summary": await asyncio.to_thread(read_summary, store.root, name),
    }


@router.put("/{name}/harvest")
async def set_harvest(name: str, body: HarvestSettings, request: Request) -> dict:
    """Replace the model's harvest settings (admin); `enabled: true` turns harvesting on."""
    store = _store(request)
    async with _lock(request):
        version, _ = await asyncio.to_thread(_current, store, name)
        await asyncio.to_thread(store.update_metadata, name, version, harvest=body.model_dump())
    return {"model": name, "version": version, "settings": body.model_dump()}
