"""/v1/models: list, show, upload, set default (hot swap), load, unload, delete, download."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel

from mlipserve.server.models.base import ModelInfo
from mlipserve.server.registry import UnknownModel
from mlipserve.server.rest.security import admin, principal
from mlipserve.server.store import ARCHIVE_FAMILIES, StoreError

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[Depends(principal)])


def describe(info: ModelInfo, is_default: bool) -> dict:
    """A loaded model version as JSON."""
    return {"name": info.name, "version": info.version, "kind": info.kind,
            "elements": sorted(info.elements), "cutoff": info.cutoff,
            "ensemble_size": info.ensemble_size, "conditions": list(info.conditions),
            "properties": list(info.properties), "dtype": info.dtype, "device": info.device,
            "is_default": is_default, "loaded": True, "metrics": info.extra.get("metrics", {})}


def _store(request: Request):
    store = request.app.state.store
    if store is None:
        raise HTTPException(409, "this server has no model store configured")
    return store


@router.get("")
async def list_models(request: Request) -> list[dict]:
    """Loaded versions, and stored versions that are not loaded."""
    registry, store = request.app.state.registry, request.app.state.store
    out = [describe(l.model.info, d) for l, d in registry.entries()]
    loaded = {(m["name"], m["version"]) for m in out}
    for name in store.names() if store is not None else []:
        default = store.default_version(name)
        for version in store.versions(name):
            if (name, version) not in loaded:
                meta = store.metadata(name, version)
                out.append({"name": name, "version": version, "kind": meta["family"],
                            "elements": meta.get("elements", []), "cutoff": meta["cutoff"],
                            "ensemble_size": meta.get("ensemble_size", 0), "loaded": False,
                            "is_default": version == default, "size_bytes": meta.get("size_bytes"),
                            "metrics": meta.get("metrics", {})})
    return out


@router.get("/{name}")
async def show_model(name: str, request: Request) -> dict:
    """One model: its versions and which is the default."""
    versions = [m for m in await list_models(request) if m["name"] == name]
    if not versions:
        raise HTTPException(404, f"unknown model {name!r}")
    return {"name": name, "versions": versions}


@router.post("/{name}/versions", dependencies=[Depends(admin)], status_code=201)
async def upload(name: str, request: Request, artifact: list[UploadFile] = File(...),
                 metadata: str = Form(...)) -> dict:
    """Add a version: a safetensors artifact and its JSON metadata (family, config, cutoff ...);
    for the torchscript / metatomic families, TorchScript files (several `artifact` parts:
    a metatomic committee) and metadata with at least the family."""
    store = _store(request)
    try:
        meta = json.loads(metadata)
        archive = isinstance(meta, dict) and meta.get("family") in ARCHIVE_FAMILIES
        if not isinstance(meta, dict) or not archive and ("config" not in meta
                                                           or "cutoff" not in meta):
            raise ValueError("metadata needs family, config and cutoff")
    except ValueError as err:
        raise HTTPException(422, f"metadata: {err}") from None
    files = [await part.read() for part in artifact]
    data = files if len(files) > 1 else files[0]
    try:
        version = await asyncio.to_thread(store.add_artifact, name, data, meta,
                                          request.app.state.max_upload_bytes)
    except (StoreError, TypeError, KeyError) as err:
        raise HTTPException(422, f"artifact: {err}") from None
    return {"name": name, "version": version, "sha256": store.metadata(name, version)["sha256"]}


async def _ensure_loaded(request: Request, name: str, version: str, make_default: bool):
    """Load a stored version; the store's default goes first when nothing of `name` is loaded,
    so that requests naming no version keep going to the default."""
    registry, store = request.app.state.registry, _store(request)
    try:
        registry.get(name, version)
        return
    except UnknownModel:
        pass
    try:
        if not any(l.model.info.name == name for l, _ in registry.entries()):
            default = store.default_version(name)
            if default != version:
                registry.add(await asyncio.to_thread(store.load, name, default,
                                                     device=request.app.state.device))
        model = await asyncio.to_thread(store.load, name, version, device=request.app.state.device)
    except StoreError as err:
        raise HTTPException(404, str(err)) from None
    registry.add(model, make_default=make_default)


class DefaultVersion(BaseModel):
    """Body of PUT /v1/models/{name}/default."""

    version: str


@router.put("/{name}/default", dependencies=[Depends(admin)])
async def set_default(name: str, body: DefaultVersion, request: Request) -> dict:
    """Hot swap: load the version if needed, then route new requests to it."""
    await _ensure_loaded(request, name, body.version, make_default=False)
    request.app.state.registry.set_default(name, body.version)
    _store(request).set_default(name, body.version)
    return {"name": name, "default": body.version}


@router.post("/{name}/versions/{version}/load", dependencies=[Depends(admin)])
async def load(name: str, version: str, request: Request) -> dict:
    """Load a stored version (not made the default)."""
    await _ensure_loaded(request, name, version, make_default=False)
    return {"name": name, "version": version, "loaded": True}


@router.post("/{name}/versions/{version}/unload", dependencies=[Depends(admin)])
async def unload(name: str, version: str, request: Request) -> dict:
    """Take a non-default version out of memory (its queued requests finish first)."""
    try:
        loaded = request.app.state.registry.remove(name, version)
    except UnknownModel as err:
        raise HTTPException(404, str(err)) from None
    except ValueError as err:
        raise HTTPException(409, str(err)) from None
    await loaded.batcher.drain_and_close()
    return {"name": name, "version": version, "loaded": False}


@router.delete("/{name}/versions/{version}", dependencies=[Depends(admin)])
async def delete(name: str, version: str, request: Request) -> dict:
    """Delete a stored version that is neither the default nor loaded."""
    try:
        request.app.state.registry.get(name, version)
        raise HTTPException(409, f"{name}@{version} is loaded; unload it first")
    except UnknownModel:
        pass
    try:
        _store(request).delete(name, version)
    except StoreError as err:
        raise HTTPException(409 if "default" in str(err) else 404, str(err)) from None
    return {"name": name, "version": version, "deleted": True}


@router.get("/{name}/versions/{version}/download")
async def download(name: str, version: str, request: Request) -> FileResponse:
    """The version's safetensors artifact."""
    try:
        path = _store(request).artifact_path(name, version)
    except StoreError as err:
        raise HTTPException(404, str(err)) from None
    return FileResponse(path, filename=f"{name}-{version}{path.suffix}")
