"""The packed form of the wire: all systems of a request (and all their results) in one set
of arrays, decoded as numpy views with no per-system message (numpy only, no torch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any

import numpy as np

from mlipserve.v1 import potential_pb2 as pb
from mlipserve.wire import (
    ALLOWED_DTYPES,
    BATCH_FIELDS,
    MAX_CONDITIONS,
    MAX_NAME,
    SystemArrays,
    WireError,
    buffer_view,
    decode_array,
    decode_response,
)

ATOM_RESULTS = ("forces", "energies", "forces_std", "born_charges", "charges")
SYSTEM_RESULTS = ("energy", "stress", "energy_std", "max_force_std", "dipole", "polarizability")
KNOWN_RESULTS = frozenset(ATOM_RESULTS + SYSTEM_RESULTS)
SCALAR_RESULTS = frozenset({"energy", "energy_std", "max_force_std"})  # floats, not arrays


class PackedSystemList(list):
    """The decoded systems (views into the packed arrays), with the packed arrays kept for
    checks that run over all atoms at once: `positions`, `numbers`, `offsets`, `cells`, `pbc`."""

    positions: np.ndarray
    numbers: np.ndarray
    offsets: np.ndarray
    cells: np.ndarray
    pbc: np.ndarray


def _fill(target: pb.Array, values: Any, dtype: str) -> None:
    """Write `values` as `dtype` (one of the contract's), C order, into the Array `target`
    in place (no intermediate message to copy)."""
    arr = np.asarray(values, dtype=_DTYPES[dtype], order="C")
    target.dtype = dtype
    target.shape[:] = arr.shape
    target.data = arr.tobytes()


def pack_systems(
    systems: Sequence[SystemArrays], into: pb.PackedSystems | None = None
) -> pb.PackedSystems | None:
    """All systems as one PackedSystems message (written into `into` when given); None
    where a condition's shape differs between systems (those go unpacked)."""
    if len(systems) == 1:
        s = systems[0]
        positions, numbers = s.positions, s.numbers
        cells: Any = s.cell
        pbc: Any = s.pbc
        counts: Any = (len(s.numbers),)
    else:
        positions = np.concatenate([np.asarray(s.positions, dtype="<f8") for s in systems])
        numbers = np.concatenate([np.asarray(s.numbers) for s in systems])
        counts = [len(s.numbers) for s in systems]
        cells = [s.cell for s in systems]
        pbc = [np.asarray(s.pbc, dtype=bool) for s in systems]
    n = len(systems)
    out = pb.PackedSystems() if into is None else into
    _fill(out.positions, positions, "<f8")
    _fill(out.numbers, numbers, "<i4")
    _fill(out.counts, counts, "<i8")
    _fill(out.cells, np.reshape(cells, (n, 3, 3)), "<f8")
    _fill(out.pbc, np.reshape(pbc, (n, 3)), "|u1")
    names = {key for s in systems for key in s.conditions}
    for key in sorted(names):
        present = [key in s.conditions for s in systems]
        rows = [np.asarray(s.conditions[key], dtype="<f8") for s in systems if key in s.conditions]
        if len({r.shape for r in rows}) != 1:
            out.Clear()
            return None
        entry = out.conditions[key]
        _fill(entry.values, np.stack(rows), "<f8")
        if not all(present):
            _fill(entry.present, present, "|u1")
    return out


_DTYPES = {name: np.dtype(name) for name in ALLOWED_DTYPES}
FLOATS, INTEGERS, BOOLEANS = "f", "iu", "ub"
SMALL = 32  # systems up to which the counts are summed in Python


def _view(msg: pb.Array, field: str, shape: tuple[int | None, ...], kinds: str) -> np.ndarray:
    """An Array as a read-only view of its bytes, of one of the dtype `kinds` and the given
    `shape` (None: any length); the short path of `decode_array` for the packed fields."""
    dtype = _DTYPES.get(msg.dtype)
    if dtype is None or dtype.kind not in kinds:
        what = {FLOATS: "floats (<f8 or <f4)", INTEGERS: "integers (<i4 or <i8)"}
        raise WireError(field, f"must be {what.get(kinds, '|u1 booleans')}, got {msg.dtype!r}")
    dims = tuple(msg.shape)
    ok = len(dims) == len(shape)
    for want, d in zip(shape, dims):
        ok = ok and d >= 0 and (want is None or want == d)
    if not ok:
        text = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise WireError(field, f"shape {dims} where {text} is expected")
    return buffer_view(msg, field, dims, dtype)


def _bool_mask(msg: pb.Array, field: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """A |u1 (or |b1) array of 0/1 values as a bool view."""
    arr = _view(msg, field, shape, BOOLEANS)
    if arr.tobytes().translate(None, b"\x00\x01"):  # a byte other than 0 or 1
        raise WireError(field, "booleans must be 0 or 1")
    return arr.view(bool)


def _counts(msg: pb.PackedSystems, n_atoms: int, max_systems: int) -> list[int]:
    """The S + 1 bounds of the systems' atoms, from `counts` (its size checked first)."""
    if not msg.HasField("counts"):
        raise WireError("packed.counts", "missing (atoms per system)")
    shape = tuple(msg.counts.shape)
    if len(shape) == 1 and shape[0] > max_systems:  # before the bytes are looked at
        raise WireError(
            "packed.counts",
            f"{shape[0]} systems exceed the limit of {max_systems} per request",
        )
    counts = _view(msg.counts, "packed.counts", (None,), INTEGERS)
    if len(counts) == 0:
        raise WireError("packed.counts", "the request holds no system")
    if len(counts) <= SMALL:  # a few systems: cheaper in Python than in numpy calls
        values = counts.tolist()
        low, high = min(values), max(values)
    else:
        low, high = int(counts.min()), int(counts.max())
    if low < 0:
        raise WireError("packed.counts", f"negative count at system {int(np.argmax(counts < 0))}")
    if high > n_atoms:  # also keeps the sum below int64's range
        raise WireError(
            "packed.counts",
            f"system {int(np.argmax(counts))} counts {high} atoms of {n_atoms} sent",
        )
    if len(counts) <= SMALL:
        bounds = [0, *accumulate(values)]
    else:
        bounds = [0, *np.cumsum(counts, dtype=np.int64).tolist()]
    if bounds[-1] != n_atoms:
        raise WireError(
            "packed.counts", f"counts sum to {int(bounds[-1])} but positions hold {n_atoms} atoms"
        )
    return bounds


def _conditions(msg: pb.PackedSystems, n_systems: int) -> list[dict[str, np.ndarray]]:
    """Per-system condition dicts (rows of the packed values, views)."""
    out: list[dict[str, np.ndarray]] = [{} for _ in range(n_systems)]
    if len(msg.conditions) > MAX_CONDITIONS:
        raise WireError(
            "packed.conditions",
            f"{len(msg.conditions)} entries; at most {MAX_CONDITIONS} are allowed",
        )
    for key, entry in msg.conditions.items():
        if not key or len(key) > MAX_NAME or not key.isprintable():
            raise WireError(
                "packed.conditions",
                f"name {key[:MAX_NAME]!r}… must be 1 to {MAX_NAME} printable characters",
            )
        where = f"packed.conditions[{key!r}]"
        if not entry.HasField("values"):
            raise WireError(f"{where}.values", "missing")
        values = decode_array(entry.values, f"{where}.values")
        if entry.HasField("present"):
            index = np.flatnonzero(_bool_mask(entry.present, f"{where}.present", (n_systems,)))
        else:
            index = np.arange(n_systems)
        if values.ndim == 0 or values.shape[0] != len(index):
            raise WireError(
                f"{where}.values",
                f"shape {values.shape}: one row for each of the {len(index)} systems that "
                "carry it is expected",
            )
        for row, s in enumerate(index.tolist()):
            out[s][key] = values[row, ...]  # a view, 0-d for a scalar (as per system)
    return out


def unpack_systems(msg: pb.PackedSystems, max_systems: int) -> PackedSystemList:
    """Decode a PackedSystems message into per-system views; errors name the field, e.g.
    `packed.counts`, and a request of more than `max_systems` is refused before decoding."""
    if not msg.HasField("positions"):
        raise WireError("packed.positions", "missing")
    positions = _view(msg.positions, "packed.positions", (None, 3), FLOATS)
    if not msg.HasField("numbers"):
        raise WireError("packed.numbers", "missing")
    numbers = _view(msg.numbers, "packed.numbers", (len(positions),), INTEGERS)
    offsets = _counts(msg, len(positions), max_systems)
    n = len(offsets) - 1
    if msg.HasField("cells"):
        cells = _view(msg.cells, "packed.cells", (n, 3, 3), FLOATS)
    else:
        cells = np.zeros((n, 3, 3))
    if msg.HasField("pbc"):
        pbc = _bool_mask(msg.pbc, "packed.pbc", (n, 3))
    else:
        pbc = np.zeros((n, 3), dtype=bool)
    conditions = _conditions(msg, n) if msg.conditions else None
    bounds = offsets
    out = PackedSystemList(
        SystemArrays(
            positions[bounds[s] : bounds[s + 1]],
            numbers[bounds[s] : bounds[s + 1]],
            cells[s],
            pbc[s],
            conditions[s] if conditions is not None else {},
        )
        for s in range(n)
    )
    out.positions, out.numbers, out.cells, out.pbc = positions, numbers, cells, pbc
    out.offsets = np.array(offsets, dtype=np.int64)
    return out


def pack_results(
    results: Sequence[Mapping[str, Any]], into: pb.PackedResults | None = None
) -> pb.PackedResults | None:
    """All systems' result dicts as one PackedResults (written into `into` when given);
    None where they do not all hold the same keys (those go as per-system results)."""
    keys = set(results[0]) & KNOWN_RESULTS
    if "energy" not in keys or any(set(r) & KNOWN_RESULTS != keys for r in results[1:]):
        return None
    out = pb.PackedResults() if into is None else into
    for key in keys:
        if len(results) == 1:
            value = results[0][key]
            value = value if key in ATOM_RESULTS else [value]
        elif key in ATOM_RESULTS:
            value = np.concatenate([np.asarray(r[key], dtype="<f8") for r in results])
        else:
            value = [r[key] for r in results]
        _fill(getattr(out, key), value, "<f8")
    atom_key = next((k for k in ATOM_RESULTS if k in keys), None)
    if atom_key is not None:
        _fill(out.counts, [len(r[atom_key]) for r in results], "<i8")
    if any(r.get("warnings") for r in results):
        out.warnings.extend(pb.Warnings(items=list(r.get("warnings", ()))) for r in results)
    return out


# the shape of one system's (or atom's) row of each packed result
ROW_SHAPES: dict[str, tuple[int, ...]] = {
    "stress": (6,), "energy_std": (), "max_force_std": (), "dipole": (3,), "polarizability": (3, 3),
    "forces": (3,), "energies": (), "forces_std": (), "born_charges": (3, 3), "charges": (),
}  # fmt: skip


def unpack_results(msg: pb.PackedResults) -> list[dict]:
    """Per-system result dicts (the contract's keys) of a PackedResults message; the arrays
    are writable views of one copy of each packed array."""
    if not msg.HasField("energy"):
        raise WireError("packed.energy", "missing")
    energy = _view(msg.energy, "packed.energy", (None,), FLOATS)
    n = len(energy)
    out: list[dict] = [{"energy": e} for e in energy.tolist()]
    for key in SYSTEM_RESULTS[1:]:
        if msg.HasField(key):
            value = _view(getattr(msg, key), f"packed.{key}", (n, *ROW_SHAPES[key]), FLOATS)
            rows = value.tolist() if key in SCALAR_RESULTS else value.copy()
            for res, row in zip(out, rows):
                res[key] = row
    if msg.HasField("counts"):
        counts = _view(msg.counts, "packed.counts", (n,), INTEGERS)
        bounds = [0, *np.cumsum(counts).tolist()]
    for key in ATOM_RESULTS:
        if msg.HasField(key):
            if not msg.HasField("counts"):
                raise WireError("packed.counts", f"missing (needed to split packed.{key})")
            shape = (bounds[-1], *ROW_SHAPES[key])
            value = _view(getattr(msg, key), f"packed.{key}", shape, FLOATS).copy()
            for s, res in enumerate(out):
                res[key] = value[bounds[s] : bounds[s + 1]]
    if msg.warnings:
        if len(msg.warnings) != n:
            raise WireError("packed.warnings", f"{len(msg.warnings)} entries for {n} systems")
        for res, flags in zip(out, msg.warnings):
            if flags.items:
                res["warnings"] = list(flags.items)
    return out


def encode_packed_response(
    results: Sequence[Mapping[str, Any]], model: str, version: str, request_id: str, batch: Any
) -> pb.EvaluateResponse | None:
    """The response to one packed request (`batch`: any object with `BATCH_FIELDS`); None
    where the results cannot be packed (see `pack_results`)."""
    out = pb.EvaluateResponse(
        model=model,
        model_version=version,
        request_id=request_id,
        batch=pb.BatchInfo(**{key: getattr(batch, key) for key in BATCH_FIELDS}),
    )
    return out if pack_results(results, out.packed) is not None else None


def decode_any_response(msg: pb.EvaluateResponse) -> list[dict]:
    """All system results of a response (packed or per-system), each tagged with model,
    version, replica and batch info."""
    if not msg.HasField("packed"):
        return decode_response(msg)
    batch = {key: getattr(msg.batch, key) for key in BATCH_FIELDS}
    results = unpack_results(msg.packed)
    for res in results:
        res["model"] = msg.model
        res["model_version"] = msg.model_version
        res["replica"] = msg.replica
        res["batch"] = batch
    return results
