"""POST /v1/models/{name}/evaluate: msgpack (arrays as binary) or JSON, same batcher."""

from __future__ import annotations

import json
import math

import msgpack
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response

from mlipserve.server.auth import Principal
from mlipserve.server.rest.models import SLUG, path_names, shorten
from mlipserve.server.rest.security import principal
from mlipserve.server.serving.batcher import BatchFailed
from mlipserve.server.serving.checks import InvalidInput
from mlipserve.server.serving.dispatch import make_request
from mlipserve.server.serving.metrics import record_request
from mlipserve.server.serving.registry import UnknownModel
from mlipserve.server.serving.tenancy import Throttled
from mlipserve.server.store import NAME
from mlipserve.wire import ALLOWED_DTYPES, MAX_CONDITIONS, MAX_NAME, SystemArrays

router = APIRouter(prefix="/v1/models", tags=["evaluate"], dependencies=[Depends(path_names)])
MSGPACK = "application/msgpack"
MAX_PROPERTIES = 16
MAX_RANK = 4  # dimensions of an array dict, as on the gRPC side


def to_array(value, field: str, kinds: str, dtype: str) -> np.ndarray:
    """A msgpack array dict {dtype, shape, data} or a (nested) JSON list as numpy `dtype`; its
    values must be of numpy `kinds` ("iu": integers), so 29.7 is refused, never truncated."""
    if isinstance(value, dict):
        kind, shape, data = value.get("dtype"), value.get("shape"), value.get("data")
        if kind is None or shape is None or data is None:
            raise InvalidInput(f"{field}: an array needs dtype, shape and data")
        if not isinstance(kind, str) or kind not in ALLOWED_DTYPES:
            raise InvalidInput(
                f"{field}.dtype: unsupported dtype {shorten(str(kind))!r}; use one "
                f"of {sorted(ALLOWED_DTYPES)}"
            )
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_RANK
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise InvalidInput(
                f"{field}.shape: a list of at most {MAX_RANK} non-negative integers is expected"
            )
        if not isinstance(data, bytes):
            raise InvalidInput(f"{field}.data: raw bytes are expected")
        expected = math.prod(shape) * np.dtype(kind).itemsize
        if len(data) != expected:
            raise InvalidInput(
                f"{field}.data: {len(data)} bytes do not hold shape {tuple(shape)}"
                f" of {kind} ({expected} bytes)"
            )
        arr = np.frombuffer(data, dtype=kind).reshape(shape)
    else:
        try:
            arr = np.asarray(value)  # no dtype given: a float stays a float, a string a string
        except (TypeError, ValueError):
            raise InvalidInput(f"{field}: not a numeric array") from None
    if arr.dtype.kind not in kinds:
        want = "integers" if kinds == "iu" else "numbers"  # JSON 29.7 for an atomic number
        raise InvalidInput(f"{field}: not a numeric array of {want} ({_kind_name(arr)} given)")
    return arr.astype(dtype, copy=False)


def _kind_name(arr: np.ndarray) -> str:
    names = {"f": "floats", "b": "booleans", "U": "strings", "S": "bytes", "O": "mixed values"}
    return names.get(arr.dtype.kind, arr.dtype.str)


def parse_system(raw, where: str) -> SystemArrays:
    """One system of the body, with the shape checks of the gRPC path."""
    if not isinstance(raw, dict) or "positions" not in raw or "numbers" not in raw:
        raise InvalidInput(f"{where}: needs positions and numbers")
    positions = to_array(raw["positions"], f"{where}.positions", "fiu", "float64")
    numbers = to_array(raw["numbers"], f"{where}.numbers", "iu", "int64")
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise InvalidInput(f"{where}.positions: shape {positions.shape} where (N, 3) is expected")
    if numbers.ndim != 1:
        raise InvalidInput(f"{where}.numbers: must be a list of integers")
    cell = to_array(raw.get("cell", np.zeros((3, 3))), f"{where}.cell", "fiu", "float64")
    if cell.shape != (3, 3):
        raise InvalidInput(f"{where}.cell: shape {cell.shape} where (3, 3) is expected")
    pbc = raw.get("pbc", [False] * 3)
    if (
        not isinstance(pbc, list)
        or len(pbc) != 3
        or not all(v in (0, 1) and type(v) in (bool, int) for v in pbc)
    ):
        raise InvalidInput(f"{where}.pbc: 3 booleans are expected")
    conditions = parse_conditions(raw.get("conditions", {}), f"{where}.conditions")
    return SystemArrays(positions, numbers, cell, np.asarray(pbc, dtype=bool), conditions)


def parse_conditions(raw, where: str) -> dict[str, np.ndarray]:
    """Per-system conditions {"external_field": [0, 0, 0.05], "charge": 0, ...}: the gRPC
    path's limits (count, name length, rank) and numbers only."""
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: an object of name → number or list is expected")
    if len(raw) > MAX_CONDITIONS:
        raise InvalidInput(f"{where}: {len(raw)} conditions exceed the limit of {MAX_CONDITIONS}")
    out = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise InvalidInput(f"{where}: names must be strings of 1 to {MAX_NAME} characters")
        arr = to_array(value, f"{where}[{name!r}]", "fiu", "float64")
        if arr.ndim > MAX_RANK or arr.size > 64:
            raise InvalidInput(f"{where}[{name!r}]: at most {MAX_RANK} axes and 64 numbers")
        out[name] = arr
    return out


def parse_body(payload, limits) -> tuple[str, list[SystemArrays], frozenset[str], int]:
    """(version, systems, properties, priority) of a decoded body; InvalidInput names the field."""
    if not isinstance(payload, dict):
        raise InvalidInput("body: an object with systems and properties is expected")
    version = payload.get("version")
    version = "" if version is None else version
    if not isinstance(version, str) or version and not NAME.match(version):
        shown = shorten(version) if isinstance(version, str) else type(version).__name__
        raise InvalidInput(f"version: {shown!r} is not a version name ({SLUG})")
    raw = payload.get("systems")
    raw = [] if raw is None else raw
    if not isinstance(raw, list):
        raise InvalidInput("systems: a list of systems is expected")
    if len(raw) > limits.max_systems_per_request:
        raise InvalidInput(
            f"systems: {len(raw)} systems exceed the limit of "
            f"{limits.max_systems_per_request} per request"
        )
    properties = payload.get("properties")
    properties = [] if properties is None else properties
    if (
        not isinstance(properties, list)
        or len(properties) > MAX_PROPERTIES
        or not all(isinstance(p, str) and len(p) <= 64 for p in properties)
    ):
        raise InvalidInput(
            f"properties: a list of at most {MAX_PROPERTIES} property names is "
            "expected (energy, forces, stress, energies, uncertainty, dipole, born_charges, "
            "charges, polarizability)"
        )
    priority = payload.get("priority", 0)
    if type(priority) is not int or priority not in (0, 1):
        raise InvalidInput("priority: 0 (interactive) or 1 (bulk) is expected")
    systems = [parse_system(s, f"systems[{i}]") for i, s in enumerate(raw)]
    return version, systems, frozenset(properties), priority


def encode(value, binary: bool):
    """numpy → msgpack array dict or JSON list (other values as they are)."""
    if isinstance(value, list):
        return value
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value, dtype="<f8")
        return (
            {"dtype": "<f8", "shape": list(arr.shape), "data": arr.tobytes()}
            if binary
            else arr.tolist()
        )
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
    limits = request.app.state.limits
    try:
        version, systems, properties, priority = parse_body(payload, limits)
        loaded = request.app.state.registry.get(name, version)
        job = make_request(systems, properties, loaded.model.info, limits)
        no_harvest = payload.get("no_harvest", False)
        if not isinstance(no_harvest, bool):
            raise InvalidInput("no_harvest: true or false is expected")
    except UnknownModel as err:
        raise HTTPException(404, str(err)) from None
    except InvalidInput as err:
        record_request(name, "REST", "INVALID_ARGUMENT")
        raise HTTPException(422, str(err)) from None
    if request.app.state.harvester is not None:  # the batch also computes the spread
        job = request.app.state.harvester.mark(job, loaded.model.info, no_harvest)
    try:
        request.app.state.tenants.admit(
            caller.tenant, job.n_atoms, loaded.batcher.queued_weight(caller.tenant)
        )
    except Throttled as err:
        record_request(name, "REST", "RESOURCE_EXHAUSTED")
        raise HTTPException(
            429, str(err), headers={"Retry-After": str(max(1, round(err.retry_after_s)))}
        ) from None
    try:
        results, stats = await loaded.batcher.submit(
            job, job.n_atoms, len(job.systems), caller.tenant, priority
        )
    except BatchFailed as err:
        record_request(name, "REST", "INTERNAL")
        raise HTTPException(500, f"model evaluation failed: {err}") from None
    if isinstance(results, InvalidInput):  # a non-finite result, refused
        record_request(name, "REST", "INVALID_ARGUMENT")
        raise HTTPException(422, str(results))
    record_request(name, "REST", "OK", stats.queue_wait_s)
    harvester = request.app.state.harvester
    if harvester is not None:
        harvester.collect(job, loaded.model.info, caller.tenant, results)
    request.app.state.registry.live.record_request(
        name, caller.tenant, job.n_atoms, stats.queue_wait_s, stats.compute_s, stats.atoms
    )
    info = loaded.model.info
    out = {
        "model": info.name,
        "model_version": info.version,
        "batch": {
            "requests": stats.requests,
            "systems": stats.systems,
            "atoms": stats.atoms,
            "queue_wait_s": stats.queue_wait_s,
            "compute_s": stats.compute_s,
        },
        "results": [{k: encode(v, binary) for k, v in r.items()} for r in results],
    }
    if binary:
        return Response(msgpack.packb(out), media_type=MSGPACK)
    return Response(json.dumps(out), media_type="application/json")
