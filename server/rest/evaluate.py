"""POST /v1/models/{name}/evaluate: msgpack (arrays as binary) or JSON, same batcher."""

from __future__ import annotations

import json
import math

import msgpack
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response

from mlipserve.server.batch import InvalidInput
from mlipserve.server.batcher import BatchFailed
from mlipserve.server.metrics import record_request
from mlipserve.server.registry import UnknownModel
from mlipserve.server.auth import Principal
from mlipserve.server.rest.security import principal
from mlipserve.server.tenancy import Throttled
from mlipserve.server.runner import make_request
from mlipserve.wire import ALLOWED_DTYPES, SystemArrays

router = APIRouter(prefix="/v1/models", tags=["evaluate"])
MSGPACK = "application/msgpack"


def to_array(value, field: str, dtype: str) -> np.ndarray:
    """A msgpack array dict {dtype, shape, data} or a (nested) JSON list, as numpy."""
    if isinstance(value, dict):
        try:
            kind, shape, data = value["dtype"], tuple(value["shape"]), value["data"]
        except (KeyError, TypeError):
            raise InvalidInput(f"{field}: an array needs dtype, shape and data") from None
        if kind not in ALLOWED_DTYPES:
            raise InvalidInput(f"{field}: unsupported dtype {kind!r}")
        if not isinstance(data, bytes) or len(data) != math.prod(shape) * np.dtype(kind).itemsize:
            raise InvalidInput(f"{field}: data does not hold shape {shape} of {kind}")
        return np.frombuffer(data, dtype=kind).reshape(shape)
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field}: not a numeric array") from None


def parse_system(raw, where: str) -> SystemArrays:
    """One system of the body, with the shape checks of the gRPC path."""
    if not isinstance(raw, dict) or "positions" not in raw or "numbers" not in raw:
        raise InvalidInput(f"{where}: needs positions and numbers")
    positions = to_array(raw["positions"], f"{where}.positions", "float64")
    numbers = to_array(raw["numbers"], f"{where}.numbers", "int64")
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise InvalidInput(f"{where}.positions: shape {positions.shape} where (N, 3) is expected")
    if numbers.ndim != 1 or numbers.dtype.kind not in "iu":
        raise InvalidInput(f"{where}.numbers: must be a list of integers")
    cell = to_array(raw.get("cell", np.zeros((3, 3))), f"{where}.cell", "float64")
    if cell.shape != (3, 3):
        raise InvalidInput(f"{where}.cell: shape {cell.shape} where (3, 3) is expected")
    pbc = np.asarray(raw.get("pbc", [False] * 3), dtype=bool)
    if pbc.shape != (3,):
        raise InvalidInput(f"{where}.pbc: 3 booleans are expected")
    return SystemArrays(positions, numbers, cell, pbc)


def encode(value, binary: bool):
    """numpy → msgpack array dict or JSON list (other values as they are)."""
    if isinstance(value, list):
        return value
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value, dtype="<f8")
        return ({"dtype": "<f8", "shape": list(arr.shape), "data": arr.tobytes()} if binary
                else arr.tolist())
    return float(value)


@router.post("/{name}/evaluate")
async def evaluate(name: str, request: Request, caller: Principal = Depends(principal)) -> Response:
    """Evaluate systems given as msgpack (Content-Type application/msgpack) or JSON."""
    binary = request.headers.get("content-type", "").startswith(MSGPACK)
    body = await request.body()
    try:
        payload = msgpack.unpackb(body) if binary else json.loads(body or b"null")
    except Exception:
        raise HTTPException(400, "body is not valid " + ("msgpack" if binary else "JSON")) from None
    registry = request.app.state.registry
    try:
        loaded = registry.get(name, (payload or {}).get("version", "") if isinstance(payload, dict) else "")
    except UnknownModel as err:
        raise HTTPException(404, str(err)) from None
    try:
        if not isinstance(payload, dict):
            raise InvalidInput("body: an object with systems and properties is expected")
        systems = [parse_system(s, f"systems[{i}]") for i, s in enumerate(payload.get("systems") or [])]
        properties = frozenset(payload.get("properties") or ())
        job = make_request(systems, properties, loaded.model.info, request.app.state.limits)
    except InvalidInput as err:
        record_request(name, "REST", "INVALID_ARGUMENT")
        raise HTTPException(422, str(err)) from None
    try:
        request.app.state.tenants.admit(caller.tenant, job.n_atoms,
                                        loaded.batcher.queued_weight(caller.tenant))
    except Throttled as err:
        record_request(name, "REST", "RESOURCE_EXHAUSTED")
        raise HTTPException(429, str(err), headers={
            "Retry-After": str(max(1, round(err.retry_after_s)))}) from None
    priority = int(payload.get("priority", 0)) if str(payload.get("priority", 0)).isdigit() else 0
    try:
        results, stats = await loaded.batcher.submit(job, job.n_atoms, len(job.systems),
                                                     caller.tenant, min(priority, 1))
    except BatchFailed as err:
        record_request(name, "REST", "INTERNAL")
        raise HTTPException(500, f"model evaluation failed: {err}") from None
    record_request(name, "REST", "OK", stats.queue_wait_s)
    info = loaded.model.info
    out = {"model": info.name, "model_version": info.version,
           "batch": {"requests": stats.requests, "systems": stats.systems, "atoms": stats.atoms,
                     "queue_wait_s": stats.queue_wait_s, "compute_s": stats.compute_s},
           "results": [{k: encode(v, binary) for k, v in r.items()} for r in results]}
    if binary:
        return Response(msgpack.packb(out), media_type=MSGPACK)
    return Response(json.dumps(out), media_type="application/json")
