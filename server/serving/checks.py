"""Request limits and the one input check made before a request may join a batch.

Every check runs vectorised over all systems of a request at once and names the first
system and field that fails. Besides shapes, values and limits it refuses the geometries
that would crash or stall the neighbour list (vesin's cell grid) or lose the precision a
distance needs, so no request can take the process down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from ase.data import chemical_symbols

from mlipserve.packed import PackedSystemList
from mlipserve.server.models.neighbors import (
    VESIN_MAX_CELLS,
    face_distances,
    neighbor_boxes,
    vesin_box,
    vesin_grid,
)
from mlipserve.wire import SystemArrays


class InvalidInput(ValueError):
    """A request's content is wrong; the message names the field."""


@dataclass(frozen=True)
class Limits:
    """Size limits checked before a request joins a batch."""

    max_atoms_per_system: int = 100_000
    max_atoms_per_request: int = 1_000_000
    max_systems_per_request: int = 10_000
    close_contact_fraction: float = 0.8  # of the model's shortest training distance (0: off)
    max_neighbors_per_atom: int = 2_000  # estimated from the density of periodic cells

    def message_bytes(self) -> int:
        """Largest EvaluateRequest these limits can admit, with room for the framing.

        Per atom: positions (24 B), numbers (≤ 8 B) and framing; per system: cell, pbc,
        conditions and framing. A bigger message is refused by gRPC before it is decoded.
        """
        return 48 * self.max_atoms_per_request + 1_024 * self.max_systems_per_request + (1 << 20)


# |coordinate| beyond this (Å) leaves a float64 distance less than ~1e-10 Å of precision and
# overflows vesin's int32 cell indices in small periodic cells: refused, not wrapped.
MAX_COORDINATE = 1e6
MAX_FRACTIONAL = 1e6  # periodic images away from the cell (fractional coordinate)


def symbols(numbers: Iterable[int]) -> str:
    """Atomic numbers as sorted element symbols: "Cu, Ni"."""
    return ", ".join(chemical_symbols[z] for z in sorted(numbers))


def _first(mask: np.ndarray | np.bool_) -> int:
    return int(np.flatnonzero(mask)[0])


def check_system_count(count: int, limits: Limits) -> None:
    """Refuse a request of no system or of more than the limit (before decoding any)."""
    if count == 0:
        raise InvalidInput("systems: the request holds no system")
    if count > limits.max_systems_per_request:
        raise InvalidInput(
            f"systems: {count} systems exceed the limit of "
            f"{limits.max_systems_per_request} per request"
        )


def check_request(systems: Sequence[SystemArrays], limits: Limits) -> int:
    """Check request-level limits; return the total atom count."""
    check_system_count(len(systems), limits)
    if isinstance(systems, PackedSystemList):
        total = int(systems.offsets[-1])
    else:
        total = sum(len(s.numbers) for s in systems)
    if total > limits.max_atoms_per_request:
        raise InvalidInput(
            f"systems: {total} atoms exceed the limit of {limits.max_atoms_per_request} per request"
        )
    return total


def _inverse(cells: np.ndarray) -> np.ndarray:
    """Inverses of (S, 3, 3) matrices; the pseudo-inverse where one is singular."""
    try:
        return np.linalg.inv(cells)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(cells)


def _check_far(positions, offsets, cells, pbc) -> None:
    """Refuse atoms more than MAX_FRACTIONAL cells away along a periodic direction."""
    n_atoms = np.diff(offsets)
    inverse = _inverse(np.where(pbc[:, :, None], cells, np.eye(3)[None]))
    per_atom = np.repeat(np.arange(len(n_atoms)), n_atoms)
    frac = np.einsum("ai,aij->aj", positions, inverse[per_atom])
    far = (np.abs(frac) > MAX_FRACTIONAL) & pbc[per_atom]
    if far.any():
        a = _first(far.any(axis=1))
        s = int(per_atom[a])
        raise InvalidInput(
            f"systems[{s}].positions: atom {a - offsets[s]} lies more than "
            f"{MAX_FRACTIONAL:g} cells away; wrap the positions into the cell"
        )


def _grids_fit(positions, offsets, cells, pbc, cutoff: float) -> bool:
    """True when no system's box can need vesin's rescaled grid (the only way to a grid of 0
    cells): a face distance is never longer than its box row, so |row| / cutoff bounds the
    cells along each axis. Fully periodic and non-periodic systems only (else False)."""
    full, none = pbc.all(axis=1), ~pbc.any(axis=1)
    if not (full | none).all():
        return False
    rows = np.sqrt(np.einsum("sij,sij->si", cells, cells))
    if none.any():  # the box of the atoms' extent, as in neighbor_boxes
        lo = np.minimum.reduceat(positions, offsets[:-1], axis=0)
        hi = np.maximum.reduceat(positions, offsets[:-1], axis=0)
        rows = np.where(full[:, None], rows, np.maximum(hi - lo, 1e-12))
    cells_per_axis = np.clip(np.trunc(rows / cutoff), 1.0, np.inf)
    return bool((cells_per_axis.prod(axis=1) <= VESIN_MAX_CELLS).all())


def _check_geometry(positions, offsets, cells, pbc, cutoffs, limits, det=None, reach=None) -> None:
    """Refuse what the neighbour list cannot do: degenerate grids, far images, dense cells."""
    for cutoff in cutoffs:
        if _grids_fit(positions, offsets, cells, pbc, cutoff):
            continue
        lengths = face_distances(neighbor_boxes(positions, offsets, cells, pbc, cutoff))
        bad = (vesin_grid(lengths, cutoff) < 1).any(axis=1)
        if bad.any():
            s = _first(bad)
            raise InvalidInput(
                f"systems[{s}]: a box of {np.array2string(lengths[s], precision=4)} Å (the cell, "
                f"or the atoms' extent along non-periodic axes) is too elongated or flat for a "
                f"{cutoff:g} Å neighbour list; bring the atoms closer together"
            )
    periodic = pbc.any(axis=1)
    if not periodic.any():
        return
    n_atoms = np.diff(offsets)
    full = pbc.all(axis=1)
    if det is None:
        det = np.abs(_det3(cells))
    # |fractional coordinate| <= |r| / sigma_min(cell) <= |r| |cell|_F^2 / (2 |det|): where that
    # bound is within the limit (any sane cell), no atom can be far and nothing is inverted
    if reach is None:
        reach = float(np.abs(positions).max())
    fro2 = np.einsum("sij,sij->s", cells, cells)
    bounded = full & (math.sqrt(3.0) * reach * fro2 < 2.0 * MAX_FRACTIONAL * det)
    if (periodic & ~bounded).any():
        _check_far(positions, offsets, cells, pbc)
    if not cutoffs:
        return
    if full.any():
        volume = det[full]
        sphere = 4.0 / 3.0 * math.pi * max(cutoffs, default=0.0) ** 3
        estimate = n_atoms[full] / volume * sphere
        dense = estimate > limits.max_neighbors_per_atom
        if dense.any():
            s = int(np.flatnonzero(full)[_first(dense)])
            raise InvalidInput(
                f"systems[{s}]: {n_atoms[s]} atoms in {volume[_first(dense)]:.4g} Å^3 give about "
                f"{estimate[_first(dense)]:.3g} neighbours per atom within {max(cutoffs):g} Å "
                f"(limit {limits.max_neighbors_per_atom}); is the cell in the right unit (Å)?"
            )


def _conditions(
    systems: Sequence[SystemArrays], needed: Sequence[str], shapes: Mapping[str, tuple[int, ...]]
) -> list[SystemArrays]:
    """Check needed conditions' shapes and values; drop those the model does not use."""
    out = list(systems)
    for i, system in enumerate(systems):
        given = system.conditions
        for key in needed:
            if key not in given:
                raise InvalidInput(f"systems[{i}].conditions: the model needs {key!r}")
        kept = {}
        for key, value in given.items():
            if key not in shapes and key not in needed:
                _unusable(i, key, value)
                continue
            want = tuple(shapes.get(key, ()))
            value = np.asarray(value)
            if value.shape != want:
                raise InvalidInput(
                    f"systems[{i}].conditions[{key!r}]: shape {value.shape} where "
                    f"{want} is expected by the model"
                )
            if not np.isfinite(value.astype(np.float64)).all():
                raise InvalidInput(f"systems[{i}].conditions[{key!r}]: NaN or inf")
            kept[key] = value
        if len(kept) != len(given):
            out[i] = replace(system, conditions=kept)
    return out


def _unusable(i: int, key: str, value: object) -> None:
    """A field or an electron chemical potential the model cannot use changes the physics
    the caller asked for: refused, not dropped (charge and spin of other models are dropped)."""
    if key == "fermi_level" or (key == "external_field" and np.any(np.asarray(value) != 0)):
        raise InvalidInput(
            f"systems[{i}].conditions[{key!r}]: this model does not accept {key!r} "
            "(ListModels says which conditions a model accepts)"
        )


def _gather(systems: Sequence[SystemArrays]) -> tuple[np.ndarray, ...]:
    """(positions, numbers, offsets, cells, pbc) of all systems: the packed arrays as they came,
    or the systems concatenated."""
    if isinstance(systems, PackedSystemList):
        return (
            systems.positions.astype(np.float64, copy=False),
            systems.numbers,
            systems.offsets,
            systems.cells.astype(np.float64, copy=False),
            systems.pbc,
        )
    n = np.array([len(s.numbers) for s in systems], dtype=np.int64)
    rows = np.array([len(s.positions) for s in systems], dtype=np.int64)
    if (rows != n).any():
        i = _first(rows != n)
        raise InvalidInput(
            f"systems[{i}].positions: {rows[i]} rows but systems[{i}].numbers has {n[i]} entries"
        )
    offsets = np.zeros(len(n) + 1, dtype=np.int64)
    np.cumsum(n, out=offsets[1:])
    return (
        np.concatenate([np.asarray(s.positions, dtype=np.float64) for s in systems]),
        np.concatenate([np.asarray(s.numbers) for s in systems]),
        offsets,
        np.stack([np.asarray(s.cell, dtype=np.float64) for s in systems]),
        np.stack([np.asarray(s.pbc, dtype=bool) for s in systems]),
    )


@lru_cache(maxsize=64)
def _element_table(elements: frozenset[int]) -> np.ndarray:
    """(119,) True at the atomic numbers in `elements`."""
    table = np.zeros(119, dtype=bool)
    table[[z for z in elements if 0 <= z <= 118]] = True
    return table


def _check_atoms(positions, numbers, offsets, elements: frozenset[int]) -> float:
    """Coordinates finite and in range, atomic numbers known: one test each, the message
    (which system, which atom) worked out only when one fails. Returns max |coordinate|."""

    def atom_error(mask: np.ndarray, field: str, what: str) -> None:
        if mask.any():
            a = _first(mask)
            s = int(np.searchsorted(offsets, a, side="right")) - 1
            raise InvalidInput(f"systems[{s}].{field}: {what} (first at atom {a - offsets[s]})")

    reach = float(np.abs(positions).max())
    if not reach <= MAX_COORDINATE:  # NaN too
        atom_error(~np.isfinite(positions).all(axis=1), "positions", "NaN or inf")
        atom_error(
            (np.abs(positions) > MAX_COORDINATE).any(axis=1),
            "positions",
            f"a coordinate beyond ±{MAX_COORDINATE:g} Å (distances would lose precision)",
        )
    if numbers.min() < 1 or numbers.max() > 118:
        a = _first((numbers < 1) | (numbers > 118))
        s = int(np.searchsorted(offsets, a, side="right")) - 1
        raise InvalidInput(
            f"systems[{s}].numbers: atomic number {int(numbers[a])} is outside 1..118"
        )
    if elements:
        unknown = ~_element_table(elements)[numbers]
        if unknown.any():
            s = int(np.searchsorted(offsets, _first(unknown), side="right")) - 1
            bad = sorted(set(np.unique(numbers[offsets[s] : offsets[s + 1]]).tolist()) - elements)
            raise InvalidInput(
                f"systems[{s}].numbers: elements {symbols(bad)} are not supported by this "
                f"model (it knows {symbols(elements)})"
            )
    return reach


def _det3(c: np.ndarray) -> np.ndarray:
    """(S,) determinants of (S, 3, 3) matrices by cofactors: plain ufuncs, which neither
    release the GIL (as LAPACK's det does: a handoff per call under threads) nor loop."""
    return (
        c[:, 0, 0] * (c[:, 1, 1] * c[:, 2, 2] - c[:, 1, 2] * c[:, 2, 1])
        - c[:, 0, 1] * (c[:, 1, 0] * c[:, 2, 2] - c[:, 1, 2] * c[:, 2, 0])
        + c[:, 0, 2] * (c[:, 1, 0] * c[:, 2, 1] - c[:, 1, 1] * c[:, 2, 0])
    )


def _check_cells(cells: np.ndarray, pbc: np.ndarray, need_volume: bool) -> np.ndarray | None:
    """Finite cells, not singular along the periodic directions; the |det| of each cell
    (None where no system is periodic and no volume is needed)."""
    if not (np.abs(cells) <= MAX_COORDINATE).all():  # False for NaN too
        bad_cell = ~np.isfinite(cells).all(axis=(1, 2)) | (np.abs(cells) > MAX_COORDINATE).any(
            axis=(1, 2)
        )
        raise InvalidInput(
            f"systems[{_first(bad_cell)}].cell: NaN, inf or a component beyond "
            f"±{MAX_COORDINATE:g} Å"
        )
    periodic = pbc.any(axis=1)
    if not need_volume and not periodic.any():
        return None
    det = np.abs(_det3(cells))
    full = pbc.all(axis=1)
    scale = np.sqrt(np.einsum("sij,sij->si", cells, cells)).prod(axis=1)
    singular = full & (det <= 1e-10 * scale)
    partly = periodic & ~full
    for k in np.flatnonzero(partly) if partly.any() else ():  # a rank test
        rows = cells[k][pbc[k]]
        singular[k] = np.linalg.matrix_rank(rows, tol=1e-8) < len(rows)
    if singular.any():
        s = _first(singular)
        raise InvalidInput(
            f"systems[{s}].cell: singular along the periodic directions "
            f"{np.flatnonzero(pbc[s]).tolist()}"
        )
    if need_volume and (det < 1e-8).any():
        raise InvalidInput(
            f"systems[{_first(det < 1e-8)}].cell: stress needs a cell with a volume (det is 0)"
        )
    return det


def check_systems(
    systems: Sequence[SystemArrays],
    limits: Limits,
    elements: frozenset[int] = frozenset(),
    needed: Sequence[str] = (),
    condition_shapes: Mapping[str, tuple[int, ...]] | None = None,
    need_volume: bool = False,
    cutoffs: Sequence[float] = (),
) -> list[SystemArrays]:
    """Raise InvalidInput naming the first bad system and field; return the systems with the
    conditions the model does not use dropped. `cutoffs` are the neighbour-list radii the
    request will be run with (the model's and the contact check's). Packed systems
    (`PackedSystemList`) are checked over their packed arrays, with no concatenation."""
    positions, numbers, offsets, cells, pbc = _gather(systems)
    n = np.diff(offsets)
    if not (n > 0).all():
        raise InvalidInput(f"systems[{_first(n == 0)}]: empty system (no atoms)")
    if n.max() > limits.max_atoms_per_system:
        i = _first(n > limits.max_atoms_per_system)
        raise InvalidInput(
            f"systems[{i}]: {n[i]} atoms exceed the limit of "
            f"{limits.max_atoms_per_system} per system"
        )
    reach = _check_atoms(positions, numbers, offsets, elements)
    det = _check_cells(cells, pbc, need_volume)
    radii = [c for c in cutoffs if c > 0]
    _check_geometry(positions, offsets, cells, pbc, radii, limits, det, reach)
    if not needed and not any(s.conditions for s in systems):
        return list(systems)
    return _conditions(systems, needed, condition_shapes or {})


def closest_distance(system: SystemArrays, within: float) -> float | None:
    """The shortest interatomic distance below `within` Å (periodic images included), else None."""
    import vesin

    if len(system.numbers) < 2 and not np.asarray(system.pbc).any():
        return None
    positions = np.asarray(system.positions, dtype=np.float64)
    box, periodic = vesin_box(positions, system.cell, system.pbc, within)
    (d,) = vesin.NeighborList(cutoff=within, full_list=False).compute(
        points=positions, box=box, periodic=periodic, quantities="d"
    )
    return float(d.min()) if len(d) else None
