"""Job payloads as msgpack (never pickle): arrays as dtype + shape + raw bytes, Atoms as dicts."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

_ARRAY = "__ndarray__"
_RESULT_KEYS = ("energy", "forces", "stress", "free_energy")


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {
            _ARRAY: True,
            "dtype": arr.dtype.str,
            "shape": list(arr.shape),
            "data": arr.tobytes(),
        }
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Atoms):
        return atoms_to_dict(obj)
    raise TypeError(f"cannot put {type(obj).__name__} in a job payload")


def _hook(obj: dict) -> Any:
    if obj.get(_ARRAY):
        dtype = np.dtype(obj["dtype"])
        if dtype.kind == "O":
            raise ValueError("object arrays are not allowed in payloads")
        return np.frombuffer(obj["data"], dtype=dtype).reshape(obj["shape"]).copy()
    return obj


def pack(obj: Any) -> bytes:
    """Serialize plain data, numpy arrays and ase.Atoms to msgpack bytes."""
    return msgpack.packb(obj, default=_default, use_bin_type=True)


def unpack(data: bytes) -> Any:
    """Inverse of `pack` (Atoms come back as dicts; see `atoms_from_dict`)."""
    return msgpack.unpackb(data, object_hook=_hook, raw=False, strict_map_key=False)


def atoms_to_dict(atoms: Atoms) -> dict:
    """numbers, positions, cell, pbc, info and any attached energy/forces/stress."""
    out: dict[str, Any] = {
        "numbers": atoms.numbers.astype(np.int64),
        "positions": atoms.positions.astype(np.float64),
        "cell": np.asarray(atoms.cell, dtype=np.float64),
        "pbc": atoms.pbc.astype(bool),
        "info": {k: v for k, v in atoms.info.items() if isinstance(v, (int, float, str, bool))},
    }
    results = getattr(atoms.calc, "results", None) or {}
    out["results"] = {k: np.asarray(results[k]) for k in _RESULT_KEYS if k in results}
    return out


def atoms_from_dict(data: dict) -> Atoms:
    """Rebuild Atoms (with a SinglePointCalculator when results were attached); checks shapes."""
    try:
        numbers = np.asarray(data["numbers"], dtype=np.int64)
        positions = np.asarray(data["positions"], dtype=np.float64).reshape(len(numbers), 3)
        cell = np.asarray(data.get("cell", np.zeros((3, 3))), dtype=np.float64).reshape(3, 3)
        pbc = np.asarray(data.get("pbc", [False] * 3), dtype=bool).reshape(3)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"malformed structure in payload: {exc}") from exc
    if not np.isfinite(positions).all() or not np.isfinite(cell).all():
        raise ValueError("structure has non-finite positions or cell")
    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
    atoms.info.update(data.get("info") or {})
    results = {
        k: (float(v) if np.ndim(v) == 0 else np.asarray(v))
        for k, v in (data.get("results") or {}).items()
    }
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms
