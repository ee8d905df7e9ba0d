"""Systems as a batch: the arrays a model receives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mlipserve.wire import SystemArrays


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
            conditions={
                k: np.asarray(v, dtype=np.float64)[None] for k, v in system.conditions.items()
            },
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
