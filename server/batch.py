"""Systems as a batch (the arrays a model receives) and the checks made before batching."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
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


@dataclass
class SystemBatch:
    """S systems, A atoms, concatenated: the arrays of the design's batch contract."""

    positions: np.ndarray  # (A, 3) float64
    numbers: np.ndarray  # (A,) int64
    cell: np.ndarray  # (S, 3, 3) float64
    pbc: np.ndarray  # (S, 3) bool
    n_atoms: np.ndarray  # (S,) int64
    system_index: np.ndarray  # (A,) int64
    conditions: dict[str, np.ndarray] = field(default_factory=dict)  # (S, ...) each

    @property
    def n_systems(self) -> int:
        """Number of systems S."""
        return len(self.n_atoms)

    @property
    def offsets(self) -> np.ndarray:
        """(S + 1,) index of each system's first atom, then A."""
        return np.concatenate([[0], np.cumsum(self.n_atoms)])

    @classmethod
    def single(cls, system: SystemArrays) -> SystemBatch:
        """A batch of one system (no copies where the arrays already fit)."""
        n = len(system.numbers)
        return cls(
            positions=np.asarray(system.positions, dtype=np.float64),
            numbers=np.asarray(system.numbers, dtype=np.int64),
            cell=np.asarray(system.cell, dtype=np.float64)[None],
            pbc=np.asarray(system.pbc, dtype=bool)[None],
            n_atoms=np.array([n], dtype=np.int64),
            system_index=np.zeros(n, dtype=np.int64),
            conditions={k: np.asarray(v, dtype=np.float64)[None] for k, v in system.conditions.items()},
        )

    @classmethod
    def concat(cls, systems: Sequence[SystemArrays]) -> SystemBatch:
        """Concatenate systems in order (conditions kept where every system has them)."""
        if len(systems) == 1:
            return cls.single(systems[0])
        n_atoms = np.array([len(s.numbers) for s in systems], dtype=np.int64)
        keys = set.intersection(*(set(s.conditions) for s in systems)) if systems else set()
        return cls(
            positions=np.concatenate([np.asarray(s.positions, dtype=np.float64) for s in systems]),
            numbers=np.concatenate([np.asarray(s.numbers, dtype=np.int64) for s in systems]),
            cell=np.stack([np.asarray(s.cell, dtype=np.float64) for s in systems]),
            pbc=np.stack([np.asarray(s.pbc, dtype=bool) for s in systems]),
            n_atoms=n_atoms,
            system_index=np.repeat(np.arange(len(systems)), n_atoms),
            conditions={
                k: np.stack([np.asarray(s.conditions[k], dtype=np.float64) for s in systems])
                for k in sorted(keys)
            },
        )


def check_system(
    system: SystemArrays,
    where: str,
    limits: Limits,
    elements: frozenset[int] = frozenset(),
    conditions: Sequence[str] = (),
    need_volume: bool = False,
) -> None:
    """Raise InvalidInput naming the field when the system cannot be evaluated."""
    n = len(system.numbers)
    if len(system.positions) != n:
        raise InvalidInput(
            f"{where}.positions: {len(system.positions)} rows but {where}.numbers has {n} entries"
        )
    if n == 0:
        raise InvalidInput(f"{where}: empty system (no atoms)")
    if n > limits.max_atoms_per_system:
        raise InvalidInput(
            f"{where}: {n} atoms exceed the limit of {limits.max_atoms_per_system} per system"
        )
    if not np.isfinite(system.positions).all():
        bad = int(np.argwhere(~np.isfinite(system.positions))[0, 0])
        raise InvalidInput(f"{where}.positions: NaN or inf (first at atom {bad})")
    numbers = np.asarray(system.numbers)
    out_of_range = (numbers < 1) | (numbers > 118)
    if out_of_range.any():
        raise InvalidInput(
            f"{where}.numbers: atomic number {int(numbers[out_of_range][0])} is outside 1..118"
        )
    if elements:
        unknown = sorted(set(np.unique(numbers).tolist()) - elements)
        if unknown:
            raise InvalidInput(
                f"{where}.numbers: elements {unknown} are not supported by this model "
                f"(it knows {sorted(elements)})"
            )
    cell = np.asarray(system.cell, dtype=np.float64)
    if not np.isfinite(cell).all():
        raise InvalidInput(f"{where}.cell: NaN or inf")
    pbc = np.asarray(system.pbc, dtype=bool)
    periodic = cell[pbc]
    if len(periodic) == 3:  # the common case, without an SVD
        singular = abs(np.linalg.det(cell)) <= 1e-10 * np.prod(np.linalg.norm(cell, axis=1))
    else:
        singular = len(periodic) > 0 and np.linalg.matrix_rank(periodic, tol=1e-8) < len(periodic)
    if singular:
        raise InvalidInput(
            f"{where}.cell: singular along the periodic directions {np.flatnonzero(pbc).tolist()}"
        )
    if need_volume and abs(np.linalg.det(cell)) < 1e-8:
        raise InvalidInput(f"{where}.cell: stress needs a cell with a volume (det is 0)")
    for key in conditions:
        if key not in system.conditions:
            raise InvalidInput(f"{where}.conditions: the model needs {key!r}")
    for key, value in system.conditions.items():
        if not np.isfinite(np.asarray(value, dtype=float)).all():
            raise InvalidInput(f"{where}.conditions[{key!r}]: NaN or inf")


def systems_look_valid(systems: Sequence[SystemArrays], limits: Limits,
                       elements: frozenset[int] = frozenset(), conditions: Sequence[str] = (),
                       need_volume: bool = False) -> bool:
    """Vectorised fast path of `check_system` over many systems: True when every system
    passes; False means run `check_system` one by one to name the first problem."""
    try:
        n = np.array([len(s.numbers) for s in systems])
        if any(len(s.positions) != k for s, k in zip(systems, n)) or (n == 0).any() \
                or (n > limits.max_atoms_per_system).any():
            return False
        if conditions or any(s.conditions for s in systems):
            return False  # rare: leave conditions to the per-system check
        positions = np.concatenate([np.asarray(s.positions, dtype=np.float64) for s in systems])
        numbers = np.concatenate([np.asarray(s.numbers) for s in systems])
        cells = np.stack([np.asarray(s.cell, dtype=np.float64) for s in systems])
        pbc = np.stack([np.asarray(s.pbc, dtype=bool) for s in systems])
    except (ValueError, TypeError):
        return False
    if positions.shape[1:] != (3,) or cells.shape[1:] != (3, 3) or pbc.shape[1:] != (3,):
        return False
    if not (np.isfinite(positions).all() and np.isfinite(cells).all()):
        return False
    if ((numbers < 1) | (numbers > 118)).any():
        return False
    if elements and not set(np.unique(numbers).tolist()) <= elements:
        return False
    det = np.abs(np.linalg.det(cells))
    full = pbc.all(axis=1)
    scale = np.prod(np.linalg.norm(cells, axis=2), axis=1)
    if (full & (det <= 1e-10 * scale)).any():
        return False
    if (pbc.any(axis=1) & ~full).any():
        return False  # partly periodic cells need the rank test
    return not (need_volume and (det < 1e-8).any())


def check_request(systems: Sequence[SystemArrays], limits: Limits) -> int:
    """Check request-level limits; return the total atom count."""
    if not systems:
        raise InvalidInput("systems: the request holds no system")
    if len(systems) > limits.max_systems_per_request:
        raise InvalidInput(
            f"systems: {len(systems)} systems exceed the limit of "
            f"{limits.max_systems_per_request} per request"
        )
    total = sum(len(s.numbers) for s in systems)
    if total > limits.max_atoms_per_request:
        raise InvalidInput(
            f"systems: {total} atoms exceed the limit of {limits.max_atoms_per_request} per request"
        )
    return total


def closest_distance(system: SystemArrays, within: float) -> float | None:
    """The shortest interatomic distance below `within` Å (periodic images included), else None."""
    import vesin

    if len(system.numbers) < 2 and not np.asarray(system.pbc).any():
        return None
    pbc = np.asarray(system.pbc, dtype=bool)
    (d,) = vesin.NeighborList(cutoff=within, full_list=False).compute(
        points=np.asarray(system.positions, dtype=np.float64), box=np.asarray(system.cell, dtype=np.float64),
        periodic=[bool(p) for p in pbc], quantities="d")
    return float(d.min()) if len(d) else None
