"""/v1/models: list, show, upload, set default (hot swap), load, unload, delete, download.

Every name and version in a path or body is a store slug; upload metadata is bounded in size
and depth and its known fields are typed, so a malformed value is a 422 naming the field.
"""

from __future__ import annotations

import asyncio
import json
import mmap
import os
import zipfile
from typing import Any, Literal

import torch
from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.families import ARCHIVE_FAMILIES, NATIVE_FAMILIES, build_module
from mlipserve.server.rest.security import admin, principal
from mlipserve.server.serving.registry import UnknownModel
from mlipserve.server.store import NAME, StoreError, check_safetensors

SLUG = "1 to 64 letters, digits, '.', '_' or '-', the first a letter or digit"
MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_DEPTH = 32
STORE_KEYS = (
    "name",
    "version",
    "sha256",
    "size_bytes",
    "artifacts",
    "artifact_sha256",
    "needs_trust",
)  # computed by the store: dropped from an upload's metadata


def shorten(text: str, limit: int = 64) -> str:
    """`text` cut to `limit` characters for a message (a caller's value may be huge)."""
    return text if len(text) <= limit else text[:limit] + f"…({len(text)} chars)"


def check_name(value: Any, field: str) -> str:
    """`value` if it is a model name or version (a store slug), else 422 naming `field`."""
    if not isinstance(value, str) or not NAME.match(value):
        shown = shorten(value) if isinstance(value, str) else type(value).__name__
        raise HTTPException(422, f"{field}: {shown!r} is not a model name or version ({SLUG})")
    return value


def path_names(request: Request) -> None:
    """Every `name` and `version` path parameter is a slug (422 naming it otherwise)."""
    for field in ("name", "version"):
        if field in request.path_params:
            check_name(request.path_params[field], field)


router = APIRouter(
    prefix="/v1/models", tags=["models"], dependencies=[Depends(principal), Depends(path_names)]
)


def describe(info: ModelInfo, is_default: bool) -> dict:
    """A loaded model version as JSON."""
    return {**info.describe(is_default), "loaded": True, "metrics": info.extra.get("metrics", {})}


def _store(request: Request):
    store = request.app.state.store
    if store is None:
        raise HTTPException(409, "this server has no model store configured")
    return store


def _lock(request: Request) -> asyncio.Lock:
    """One lock per app around store writes and loads (two uploads would pick one version)."""
    lock = getattr(request.app.state, "store_lock", None)
    if lock is None:
        lock = request.app.state.store_lock = asyncio.Lock()
    return lock


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
                out.append(
                    {
                        "name": name,
                        "version": version,
                        "kind": meta["family"],
                        "elements": meta.get("elements", []),
                        "cutoff": meta["cutoff"],
                        "ensemble_size": meta.get("ensemble_size", 0),
                        "loaded": False,
                        "is_default": version == default,
                        "size_bytes": meta.get("size_bytes"),
                        "metrics": meta.get("metrics", {}),
                    }
                )
    return out


@router.get("/{name}")
async def show_model(name: str, request: Request) -> dict:
    """One model: its versions and which is the default."""
    versions = [m for m in await list_models(request) if m["name"] == name]
    if not versions:
        raise HTTPException(404, f"unknown model {name!r}")
    return {"name": name, "versions": versions}


class PaiNNBounds(BaseModel):
    """Sizes a painn config may ask for (its parameters must also fit the artifact)."""

    model_config = ConfigDict(extra="allow")
    cutoff: float = Field(5.0, gt=0, le=100, allow_inf_nan=False)
    features: int = Field(32, ge=1, le=2048)
    radial: int = Field(16, ge=1, le=1024)
    layers: int = Field(2, ge=1, le=32)
    members: int = Field(4, ge=1, le=64)
    max_z: int = Field(94, ge=1, le=118)
    avg_neighbors: float = Field(30.0, gt=0, allow_inf_nan=False)


class UploadMetadata(BaseModel):
    """The typed fields of an upload's metadata (other keys are stored as given)."""

    model_config = ConfigDict(extra="allow")
    family: Literal[tuple(NATIVE_FAMILIES) + ARCHIVE_FAMILIES]  # type: ignore[valid-type]
    config: dict[str, Any] | None = None
    cutoff: float | None = Field(None, gt=0, le=100, allow_inf_nan=False)
    elements: list[int] | None = Field(None, max_length=118)
    ensemble_size: int | None = Field(None, ge=0, le=1024)
    dtype: Literal["float32", "float64"] | None = None
    trust_lo: float | None = Field(None, ge=0, allow_inf_nan=False)
    trust_hi: float | None = Field(None, ge=0, allow_inf_nan=False)
    energy_trust_lo: float | None = Field(None, ge=0, allow_inf_nan=False)
    energy_trust_hi: float | None = Field(None, ge=0, allow_inf_nan=False)
    min_distance: float | None = Field(None, ge=0, allow_inf_nan=False)
    created: float | None = Field(None, ge=0, allow_inf_nan=False)
    metrics: dict[str, Any] | None = None
    head: str | None = Field(None, max_length=64)


def _pydantic_message(err: ValidationError, prefix: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in (prefix, *first["loc"]))
    return f"{where}: {first['msg']}"


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON (iterative: no recursion on hostile input)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            todo.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_metadata(text: str) -> dict:
    """An upload's metadata JSON, bounded and typed, without the keys the store computes."""
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise HTTPException(422, f"metadata: more than {MAX_METADATA_BYTES} bytes")
    try:
        raw = json.loads(text)
    except RecursionError:
        raise HTTPException(
            422, f"metadata: nested deeper than {MAX_METADATA_DEPTH} levels"
        ) from None
    except ValueError as err:
        raise HTTPException(422, f"metadata: not JSON ({err})") from None
    if not isinstance(raw, dict):
        raise HTTPException(
            422,
            "metadata: a JSON object with family (config and cutoff for "
            "native families) is expected",
        )
    if _depth(raw) > MAX_METADATA_DEPTH:
        raise HTTPException(422, f"metadata: nested deeper than {MAX_METADATA_DEPTH} levels")
    if "trusted" in raw:
        raise HTTPException(
            422,
            "metadata.trusted: cannot be uploaded: an admin sets it on a "
            "stored version (mlipserve models trust NAME VERSION --store DIR)",
        )
    try:
        meta = UploadMetadata.model_validate(raw).model_dump(exclude_unset=True)
    except ValidationError as err:
        raise HTTPException(422, _pydantic_message(err, "metadata")) from None
    if meta["family"] in NATIVE_FAMILIES and (
        meta.get("config") is None or meta.get("cutoff") is None
    ):
        raise HTTPException(422, f"metadata: family {meta['family']!r} needs config and cutoff")
    if meta["family"] == "painn":
        try:
            meta["config"] = PaiNNBounds.model_validate(meta["config"]).model_dump(
                exclude_unset=True
            )
        except ValidationError as err:
            raise HTTPException(422, _pydantic_message(err, "metadata.config")) from None
    for element in meta.get("elements") or ():
        if not 1 <= element <= 118:
            raise HTTPException(
                422, f"metadata.elements: atomic number {element} is outside 1..118"
            )
    return {k: v for k, v in meta.items() if k not in STORE_KEYS}


def native_parameters(meta: dict) -> int:
    """How many parameters a native family's config describes (built on the meta device)."""
    try:
        with torch.device("meta"):
            module = build_module(meta)
    except (TypeError, ValueError, RuntimeError) as err:
        raise HTTPException(422, f"metadata.config: {err}") from None
    return sum(p.numel() for p in module.parameters())


def _contents(part: UploadFile):
    """An uploaded part's bytes without a copy in memory: a read-only map of its spooled file."""
    fileno = part.file.fileno()  # a small part still in memory is written out first
    part.file.flush()
    if os.fstat(fileno).st_size == 0:
        return b""
    return mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)


@router.post("/{name}/versions", dependencies=[Depends(admin)], status_code=201)
async def upload(
    name: str, request: Request, artifact: list[UploadFile] = File(...), metadata: str = Form(...)
) -> dict:
    """Add a version: a safetensors artifact and its JSON metadata (family, config, cutoff ...);
    for the torchscript / metatomic families, TorchScript files (several `artifact` parts:
    a metatomic committee) and metadata with at least the family."""
    store = _store(request)
    meta = parse_metadata(metadata)
    files = [_contents(part) for part in artifact]
    try:
        size = sum(len(f) for f in files)
        if meta["family"] in NATIVE_FAMILIES and len(files) == 1:
            check_safetensors(files[0])  # what the file is comes first, its size second
            count = await asyncio.to_thread(native_parameters, meta)
            if count > size:  # a byte a parameter at the least: the build stays near its size
                raise HTTPException(
                    422,
                    f"metadata.config: describes {count} parameters, more "
                    f"than an artifact of {size} bytes can hold (the "
                    "artifact does not fit the config)",
                )
        data = files if len(files) > 1 else files[0]
        async with _lock(request):
            version = await asyncio.to_thread(
                store.add_artifact, name, data, meta, request.app.state.max_upload_bytes
            )
    except (StoreError, TypeError, KeyError, ValueError, AttributeError, zipfile.BadZipFile) as err:
        raise HTTPException(422, f"artifact: {err}") from None
    finally:
        for f in files:
            if isinstance(f, mmap.mmap):
                try:
                    f.close()
                except BufferError:  # still exported somewhere: the GC closes it
                    pass
    return {"name": name, "version": version, "sha256": store.metadata(name, version)["sha256"]}


async def _ensure_loaded(request: Request, name: str, version: str, make_default: bool):
    """Load a stored version; the store's default goes first when nothing of `name` is loaded,
    so that requests naming no version keep going to the default."""
    registry, store = request.app.state.registry, _store(request)
    async with _lock(request):  # two loads of one version would both try to add it
        try:
            registry.get(name, version)
            return
        except UnknownModel:
            pass
        try:
            if not any(l.model.info.name == name for l, _ in registry.entries()):
                default = store.default_version(name)
                if default != version:
                    registry.add(
                        await asyncio.to_thread(
                            store.load, name, default, device=request.app.state.device
                        )
                    )
            model = await asyncio.to_thread(
                store.load, name, version, device=request.app.state.device
            )
        except StoreError as err:
            raise HTTPException(404, str(err)) from None
        registry.add(model, make_default=make_default)


class DefaultVersion(BaseModel):
    """Body of PUT /v1/models/{name}/default."""

    version: str = Field(pattern=NAME.pattern, description=f"a stored version ({SLUG})")


@router.put("/{name}/default", dependencies=[Depends(admin)])
async def set_default(name: str, body: DefaultVersion, request: Request) -> dict:
    """Hot swap: load the version if needed, then route new requests to it (here and in the
    store). A version that is not in the store (a built-in) changes nothing: 409."""
    registry, store = request.app.state.registry, _store(request)
    try:
        await asyncio.to_thread(store.metadata, name, body.version)
    except StoreError:
        try:
            registry.get(name, body.version)
        except UnknownModel:
            raise HTTPException(
                404, f"version: model {name!r} has no version {body.version!r} in the store"
            ) from None
        raise HTTPException(
            409,
            f"version: {name}@{body.version} is not in the model store (a "
            "built-in model): its default is chosen at start",
        ) from None
    await _ensure_loaded(request, name, body.version, make_default=False)
    try:
        registry.set_default(
            name, body.version, persist=lambda: store.set_default(name, body.version)
        )
    except StoreError as err:
        raise HTTPException(409, f"version: {err}") from None
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
    store = _store(request)
    try:
        store.metadata(name, version)  # a version that is not there is a 404, not a crash
    except StoreError as err:
        raise HTTPException(404, str(err)) from None
    try:
        async with _lock(request):
            await asyncio.to_thread(store.delete, name, version)
    except StoreError as err:
        raise HTTPException(409 if "default" in str(err) else 404, str(err)) from None
    return {"name": name, "version": version, "deleted": True}


@router.get("/{name}/versions/{version}/download")
async def download(name: str, version: str, request: Request) -> FileResponse:
    """The version's artifact (a committee's first file); never a path outside the version."""
    store = _store(request)
    try:
        path = store.artifact_path(name, version)
    except StoreError as err:
        raise HTTPException(404, str(err)) from None
    if not path.resolve().is_relative_to((store.root / name / version).resolve()):
        raise HTTPException(
            404, f"{name}@{version}: its metadata names an artifact outside the version's folder"
        )
    return FileResponse(path, filename=f"{name}-{version}{path.suffix}")
