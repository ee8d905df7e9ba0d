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

import numpy as np
from ase.data import chemical_symbols

from mlipserve.server.models.neighbors import face_distances, neighbor_boxes, vesin_box, vesin_grid
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
    total = sum(len(s.numbers) for s in systems)
    if total > limits.max_atoms_per_request:
        raise InvalidInput(
            f"systems: {total} atoms exceed the limit of {limits.max_atoms_per_request} per request"
        )
    return total


def _check_geometry(positions, offsets, cells, pbc, cutoffs, limits) -> None:
    """Refuse what the neighbour list cannot do: degenerate grids, far images, dense cells."""
    for cutoff in cutoffs:
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
    per_atom = np.repeat(np.arange(len(n_atoms)), n_atoms)
    full = pbc.all(axis=1)
    inverse = np.linalg.pinv(np.where(pbc[:, :, None], cells, np.eye(3)[None]))
    frac = np.einsum("ai,aij->aj", positions, inverse[per_atom])
    far = (np.abs(frac) > MAX_FRACTIONAL) & pbc[per_atom]
    if far.any():
        a = _first(far.any(axis=1))
        s = int(per_atom[a])
        raise InvalidInput(
            f"systems[{s}].positions: atom {a - offsets[s]} lies more than "
            f"{MAX_FRACTIONAL:g} cells away; wrap the positions into the cell"
        )
    if full.any():
        volume = np.abs(np.linalg.det(cells[full]))
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
    request will be run with (the model's and the contact check's)."""
    n = np.array([len(s.numbers) for s in systems], dtype=np.int64)
    rows = np.array([len(s.positions) for s in systems], dtype=np.int64)
    if (rows != n).any():
        i = _first(rows != n)
        raise InvalidInput(
            f"systems[{i}].positions: {rows[i]} rows but systems[{i}].numbers has {n[i]} entries"
        )
    if (n == 0).any():
        raise InvalidInput(f"systems[{_first(n == 0)}]: empty system (no atoms)")
    if (n > limits.max_atoms_per_system).any():
        i = _first(n > limits.max_atoms_per_system)
        raise InvalidInput(
            f"systems[{i}]: {n[i]} atoms exceed the limit of "
            f"{limits.max_atoms_per_system} per system"
        )
    offsets = np.concatenate([[0], np.cumsum(n)])
    positions = np.concatenate([np.asarray(s.positions, dtype=np.float64) for s in systems])
    numbers = np.concatenate([np.asarray(s.numbers) for s in systems])
    cells = np.stack([np.asarray(s.cell, dtype=np.float64) for s in systems])
    pbc = np.stack([np.asarray(s.pbc, dtype=bool) for s in systems])
    system_of = np.repeat(np.arange(len(systems)), n)

    def atom_error(mask: np.ndarray, field: str, what: str) -> None:
        if mask.any():
            a = _first(mask)
            s = int(system_of[a])
            raise InvalidInput(f"systems[{s}].{field}: {what} (first at atom {a - offsets[s]})")

    atom_error(~np.isfinite(positions).all(axis=1), "positions", "NaN or inf")
    atom_error(
        (np.abs(positions) > MAX_COORDINATE).any(axis=1),
        "positions",
        f"a coordinate beyond ±{MAX_COORDINATE:g} Å (distances would lose precision)",
    )
    out_of_range = (numbers < 1) | (numbers > 118)
    if out_of_range.any():
        a = _first(out_of_range)
        raise InvalidInput(
            f"systems[{int(system_of[a])}].numbers: atomic number "
            f"{int(numbers[a])} is outside 1..118"
        )
    if elements:
        unknown = ~np.isin(numbers, np.fromiter(elements, dtype=np.int64))
        if unknown.any():
            s = int(system_of[_first(unknown)])
            bad = sorted(set(np.unique(numbers[offsets[s] : offsets[s + 1]]).tolist()) - elements)
            raise InvalidInput(
                f"systems[{s}].numbers: elements {symbols(bad)} are not supported by this "
                f"model (it knows {symbols(elements)})"
            )
    bad_cell = ~np.isfinite(cells).all(axis=(1, 2)) | (np.abs(cells) > MAX_COORDINATE).any(
        axis=(1, 2)
    )
    if bad_cell.any():
        raise InvalidInput(
            f"systems[{_first(bad_cell)}].cell: NaN, inf or a component beyond "
            f"±{MAX_COORDINATE:g} Å"
        )
    det = np.abs(np.linalg.det(cells))
    full = pbc.all(axis=1)
    scale = np.prod(np.linalg.norm(cells, axis=2), axis=1)
    singular = full & (det <= 1e-10 * scale)
    for k in np.flatnonzero(pbc.any(axis=1) & ~full):  # partly periodic: a rank test
        periodic = cells[k][pbc[k]]
        singular[k] = np.linalg.matrix_rank(periodic, tol=1e-8) < len(periodic)
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
    _check_geometry(positions, offsets, cells, pbc, [c for c in cutoffs if c > 0], limits)
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
