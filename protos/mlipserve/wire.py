"""Array and system codecs for the mlipserve.v1 contract (numpy only, no torch)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlipserve.v1 import potential_pb2 as pb

ALLOWED_DTYPES = frozenset({"<f8", "<f4", "<i8", "<i4", "|u1", "|b1"})
MAX_RANK = 4  # no array of the contract has more dimensions
MAX_CONDITIONS = 16  # per system
MAX_NAME = 64  # characters of a condition name

PROPERTY_NAMES: dict[str, pb.Property] = {
    "energy": pb.ENERGY,
    "free_energy": pb.ENERGY,
    "forces": pb.FORCES,
    "stress": pb.STRESS,
    "energies": pb.ENERGIES,
    "uncertainty": pb.UNCERTAINTY,
    "energy_std": pb.UNCERTAINTY,
    "forces_std": pb.UNCERTAINTY,
    "max_force_std": pb.UNCERTAINTY,
    "dipole": pb.DIPOLE,
    "born_charges": pb.BORN_CHARGES,
    "charges": pb.CHARGES,
    "polarizability": pb.POLARIZABILITY,
}
PROPERTY_BY_ENUM: dict[int, str] = {
    pb.ENERGY: "energy",
    pb.FORCES: "forces",
    pb.STRESS: "stress",
    pb.ENERGIES: "energies",
    pb.UNCERTAINTY: "uncertainty",
    pb.DIPOLE: "dipole",
    pb.BORN_CHARGES: "born_charges",
    pb.CHARGES: "charges",
    pb.POLARIZABILITY: "polarizability",
}


class WireError(ValueError):
    """A field of a message cannot be decoded; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def encode_array(values: np.ndarray, dtype: str | None = None) -> pb.Array:
    """Pack a numpy array as raw little-endian bytes with dtype and shape."""
    arr = np.asarray(values)
    if dtype is None:
        dtype = arr.dtype.newbyteorder("<").str if arr.dtype.kind in "fiu" else "|u1"
        if arr.dtype.kind == "b":
            dtype = "|u1"
    arr = np.asarray(arr, dtype=np.dtype(dtype), order="C")  # a 0-d array stays 0-d
    return pb.Array(dtype=arr.dtype.str, shape=list(arr.shape), data=arr.tobytes())


def buffer_view(msg: pb.Array, field: str, dims: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The bytes of `msg` as a read-only array of `dims` (non-negative, the caller checks)
    and `dtype`, refused unless the byte count is exactly right."""
    count = math.prod(dims)
    data = msg.data  # each read of a bytes field makes a new object: read it once
    if len(data) != count * dtype.itemsize:
        raise WireError(
            field,
            f"{len(data)} bytes do not hold shape {dims} of {msg.dtype} "
            f"({count * dtype.itemsize} bytes expected)",
        )
    return np.frombuffer(data, dtype=dtype).reshape(dims)


def decode_array(
    msg: pb.Array, field: str, shape: tuple[int | None, ...] | None = None
) -> np.ndarray:
    """Unpack an Array message, checking dtype, byte count and (optionally) shape."""
    if msg.dtype not in ALLOWED_DTYPES:
        raise WireError(
            field, f"unsupported dtype {msg.dtype!r}; use one of {sorted(ALLOWED_DTYPES)}"
        )
    dtype = np.dtype(msg.dtype)
    if len(msg.shape) > MAX_RANK:
        raise WireError(field, f"{len(msg.shape)} dimensions; at most {MAX_RANK} are allowed")
    dims = tuple(int(d) for d in msg.shape)
    if any(d < 0 for d in dims):
        raise WireError(field, f"negative dimension in shape {dims}")
    arr = buffer_view(msg, field, dims, dtype)
    if shape is not None:
        ok = len(shape) == len(dims) and all(s is None or s == d for s, d in zip(shape, dims))
        if not ok:
            want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
            raise WireError(field, f"shape {dims} where {want} is expected")
    return arr


INFO_CONDITIONS = ("charge", "spin", "external_field", "fermi_level")  # top-level info keys


def conditions_from_info(info: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The per-system conditions an ase.Atoms carries in `info`: `charge`, `spin`,
    `external_field` (V/Å), `fermi_level` (eV), and the `conditions` mapping."""
    conditions: dict[str, np.ndarray] = {}
    for key in INFO_CONDITIONS:
        if key in info:
            conditions[key] = np.asarray(info[key], dtype=float)
    for key, value in dict(info.get("conditions", {})).items():
        conditions[key] = np.asarray(value, dtype=float)
    return conditions


def info_from_conditions(conditions: Mapping[str, Any]) -> dict[str, Any]:
    """`atoms.info` entries that `conditions_from_info` reads back as `conditions`."""
    info: dict[str, Any] = {}
    rest = {}
    for key, value in conditions.items():
        value = np.asarray(value, dtype=float)
        if key in INFO_CONDITIONS:
            info[key] = float(value) if value.ndim == 0 else value.copy()
        else:
            rest[key] = value.copy()
    if rest:
        info["conditions"] = rest
    return info


@dataclass
class SystemArrays:
    """One system as plain numpy arrays (the form both sides of the wire work with)."""

    positions: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    conditions: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_atoms(cls, atoms) -> SystemArrays:
        """Read positions, numbers, cell, pbc and conditions from an ase.Atoms."""
        conditions = conditions_from_info(atoms.info)
        return cls(
            positions=atoms.positions,
            numbers=atoms.numbers,
            cell=atoms.cell.array,
            pbc=atoms.pbc,
            conditions=conditions,
        )

    def to_proto(self) -> pb.System:
        """Encode as a System message (float64 positions and cell, int32 numbers)."""
        return pb.System(
            positions=encode_array(self.positions, "<f8"),
            numbers=encode_array(self.numbers, "<i4"),
            cell=encode_array(self.cell, "<f8"),
            pbc=[bool(p) for p in np.asarray(self.pbc).reshape(-1)],
            conditions={k: encode_array(v, "<f8") for k, v in self.conditions.items()},
        )

    @classmethod
    def from_proto(cls, msg: pb.System, where: str) -> SystemArrays:
        """Decode a System message; errors name the field, e.g. `systems[2].cell`."""
        if not msg.HasField("positions"):
            raise WireError(f"{where}.positions", "missing")
        positions = decode_array(msg.positions, f"{where}.positions", (None, 3))
        if not msg.HasField("numbers"):
            raise WireError(f"{where}.numbers", "missing")
        numbers = decode_array(msg.numbers, f"{where}.numbers", (None,))
        if numbers.dtype.kind not in "iu":
            raise WireError(f"{where}.numbers", f"must be integers, got {msg.numbers.dtype}")
        if msg.HasField("cell"):
            cell = decode_array(msg.cell, f"{where}.cell", (3, 3))
        else:
            cell = np.zeros((3, 3))
        if len(msg.pbc) not in (0, 3):
            raise WireError(f"{where}.pbc", f"{len(msg.pbc)} values where 3 are expected")
        pbc = np.array(list(msg.pbc) or [False] * 3, dtype=bool)
        if len(msg.conditions) > MAX_CONDITIONS:
            raise WireError(
                f"{where}.conditions",
                f"{len(msg.conditions)} entries; at most {MAX_CONDITIONS} are allowed",
            )
        for key in msg.conditions:
            if not key or len(key) > MAX_NAME or not key.isprintable():
                raise WireError(
                    f"{where}.conditions",
                    f"name {key[:MAX_NAME]!r}… must be 1 to {MAX_NAME} printable characters",
                )
        conditions = {
            key: decode_array(value, f"{where}.conditions[{key!r}]")
            for key, value in msg.conditions.items()
        }
        return cls(positions, numbers, cell, pbc, conditions)


def property_enums(properties: str | Iterable[str]) -> list[pb.Property]:
    """Map property names ("energy", "forces", ...) to the contract's enum values."""
    if isinstance(properties, str):
        properties = [properties]
    out: list[pb.Property] = []
    for name in properties:
        if name not in PROPERTY_NAMES:
            raise ValueError(f"unknown property {name!r}; known: {sorted(PROPERTY_NAMES)}")
        enum = PROPERTY_NAMES[name]
        if enum not in out:
            out.append(enum)
    return out


RESULT_ARRAYS = (
    "forces", "stress", "energies", "forces_std", "dipole", "born_charges", "charges",
    "polarizability",
)  # fmt: skip


def encode_result(res: Mapping[str, Any]) -> pb.SystemResult:
    """One system's result dict (the contract's keys) as a SystemResult; arrays as <f8."""
    out = pb.SystemResult(energy=float(res["energy"]))
    for key in RESULT_ARRAYS:
        if key in res:
            getattr(out, key).CopyFrom(encode_array(np.asarray(res[key]), "<f8"))
    if "energy_std" in res:
        out.energy_std = float(res["energy_std"])
    if "max_force_std" in res:
        out.max_force_std = float(res["max_force_std"])
    out.warnings.extend(res.get("warnings", ()))
    return out


def decode_result(msg: pb.SystemResult, where: str) -> dict:
    """Turn one SystemResult into a dict with the contract's result keys."""
    out: dict = {"energy": float(msg.energy)}
    for key in RESULT_ARRAYS:
        if msg.HasField(key):
            out[key] = decode_array(getattr(msg, key), f"{where}.{key}").copy()
    if msg.HasField("energy_std"):
        out["energy_std"] = float(msg.energy_std)
    if msg.HasField("max_force_std"):
        out["max_force_std"] = float(msg.max_force_std)
    if msg.warnings:
        out["warnings"] = list(msg.warnings)
    return out


BATCH_FIELDS = ("requests", "systems", "atoms", "queue_wait_s", "compute_s")


def encode_response(
    results: Iterable[Mapping[str, Any]], model: str, version: str, request_id: str, batch: Any
) -> pb.EvaluateResponse:
    """The response to one request: its results, who computed them, the batch it rode in
    (`batch`: any object with the `BATCH_FIELDS` attributes)."""
    return pb.EvaluateResponse(
        model=model,
        model_version=version,
        request_id=request_id,
        results=[encode_result(r) for r in results],
        batch=pb.BatchInfo(**{key: getattr(batch, key) for key in BATCH_FIELDS}),
    )


def encode_error(request_id: str, code: int, message: str) -> pb.EvaluateResponse:
    """A stream's answer to a request that failed: a gRPC status code and its message."""
    return pb.EvaluateResponse(request_id=request_id, error=pb.Error(code=code, message=message))


def decode_error(msg: pb.EvaluateResponse) -> tuple[int, str] | None:
    """(status code, message) of a stream response that carries an error, else None."""
    return (msg.error.code, msg.error.message) if msg.HasField("error") else None


def decode_response(msg: pb.EvaluateResponse) -> list[dict]:
    """All system results of a response, each tagged with model, version and batch info."""
    batch = {key: getattr(msg.batch, key) for key in BATCH_FIELDS}
    results = []
    for i, res in enumerate(msg.results):
        out = decode_result(res, f"results[{i}]")
        out["model"] = msg.model
        out["model_version"] = msg.model_version
        out["replica"] = msg.replica
        out["batch"] = batch
        results.append(out)
    return results


def encode_model_info(entry: Mapping[str, Any]) -> pb.ModelInfo:
    """A model's description (the keys `decode_model_info` returns) as a ModelInfo message."""
    return pb.ModelInfo(
        name=entry["name"],
        version=entry["version"],
        kind=entry["kind"],
        elements=list(entry["elements"]),
        cutoff=float(entry["cutoff"]),
        ensemble_size=int(entry["ensemble_size"]),
        conditions=list(entry["conditions"]),
        properties=[PROPERTY_NAMES[p] for p in entry["properties"]],
        dtype=entry["dtype"],
        device=entry["device"],
        is_default=bool(entry["is_default"]),
        sha256=str(entry.get("sha256", "")),
        accepted_conditions=list(entry.get("accepted_conditions", ())),
        trust={k: float(v) for k, v in entry.get("trust", {}).items()},
    )


def decode_model_info(msg: pb.ModelInfo) -> dict[str, Any]:
    """A ModelInfo message as a plain dict (property names, not enum values)."""
    return {
        "name": msg.name,
        "version": msg.version,
        "kind": msg.kind,
        "elements": list(msg.elements),
        "cutoff": msg.cutoff,
        "ensemble_size": msg.ensemble_size,
        "conditions": list(msg.conditions),
        "properties": [PROPERTY_BY_ENUM[p] for p in msg.properties],
        "dtype": msg.dtype,
        "device": msg.device,
        "is_default": msg.is_default,
        "sha256": msg.sha256,
        "accepted_conditions": list(msg.accepted_conditions),
        "trust": dict(msg.trust),
    }
