"""Labelled structures for training: reading, splitting, batching into graphs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from mlipserve.server.models.batch import SystemBatch
from mlipserve.server.models.neighbors import batch_neighbors
from mlipserve.wire import SystemArrays


def load_structures(path: str | Path) -> list[Atoms]:
    """Read labelled structures (energy, forces, optional stress) from extxyz or an ase.db."""
    path = Path(path)
    if path.suffix == ".db":
        from ase.db import connect

        frames = [row.toatoms() for row in connect(path).select()]
    else:
        import ase.io

        frames = ase.io.read(path, index=":")
    for i, atoms in enumerate(frames):
        if atoms.calc is None or "energy" not in atoms.calc.results:
            raise ValueError(f"{path}: structure {i} has no energy label")
        if "forces" not in atoms.calc.results:
            raise ValueError(f"{path}: structure {i} has no force labels")
    return frames


def split_indices(
    n: int, fractions: tuple[float, float, float], seed: int
) -> tuple[np.ndarray, ...]:
    """Shuffle 0..n-1 with `seed` and cut it into train / validation / test."""
    if abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"split fractions {fractions} must be non-negative and sum to 1")
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


def element_shifts(
    structures: Sequence[Atoms], max_z: int, known: np.ndarray | None = None
) -> np.ndarray:
    """Least-squares reference energy per element (eV/atom) from the structures' energies
    (less a `known` part of each, e.g. a fixed-charge Coulomb energy)."""
    counts = np.zeros((len(structures), max_z + 1))
    for i, atoms in enumerate(structures):
        counts[i] = np.bincount(atoms.numbers, minlength=max_z + 1)
    energies = np.array([a.calc.results["energy"] for a in structures])
    if known is not None:
        energies = energies - known
    present = counts.sum(0) > 0
    solution, *_ = np.linalg.lstsq(counts[:, present], energies, rcond=None)
    shifts = np.zeros(max_z + 1)
    shifts[present] = solution
    return shifts


class GraphCache:
    """Neighbour lists of the training structures, computed once."""

    def __init__(self, structures: Sequence[Atoms], cutoff: float) -> None:
        self.structures = list(structures)
        for i, atoms in enumerate(self.structures):
            weight = atoms.info.get("force_weight", 1.0)
            if not isinstance(weight, (int, float, np.number)) or not 0 <= weight < np.inf:
                raise ValueError(
                    f"structure {i}: info['force_weight'] must be a finite number >= 0, "
                    f"got {weight!r}"
                )
        self.cutoff = cutoff
        self._edges: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def batch(self, indices: Sequence[int], dtype: torch.dtype, device: torch.device) -> dict:
        """Tensors of a batch: graph inputs and the labels."""
        systems = [SystemArrays.from_atoms(self.structures[i]) for i in indices]
        batch = SystemBatch.concat(systems)
        senders, receivers, shifts = [], [], []
        offsets = batch.offsets
        for k, i in enumerate(indices):
            if i not in self._edges:
                single = SystemBatch.single(systems[k])
                self._edges[i] = batch_neighbors(single, self.cutoff)
            edge_index, edge_shift = self._edges[i]
            senders.append(edge_index[0] + offsets[k])
            receivers.append(edge_index[1] + offsets[k])
            shifts.append(edge_shift)
        labels = [self.structures[i].calc.results for i in indices]

        def t(x, dt=dtype):
            return torch.tensor(np.asarray(x), dtype=dt, device=device)

        has_stress = all("stress" in r for r in labels) and np.all(
            np.abs(np.linalg.det(batch.cell)) > 1e-8
        )
        return {
            "pbc": t(batch.pbc, torch.bool),
            "conditions": {k: t(v) for k, v in batch.conditions.items()},
            "positions": t(batch.positions),
            "cell": t(batch.cell),
            "numbers": t(batch.numbers, torch.long),
            "system_index": t(batch.system_index, torch.long),
            "n_systems": batch.n_systems,
            "n_atoms": t(batch.n_atoms),
            "edge_index": t(
                np.stack([np.concatenate(senders), np.concatenate(receivers)]), torch.long
            ),
            "edge_shift": t(np.concatenate(shifts)),
            "energy": t([r["energy"] for r in labels]),
            "forces": t(np.concatenate([r["forces"] for r in labels])),
            "stress": t(np.stack([r["stress"] for r in labels])) if has_stress else None,
            "dipole": (
                t(np.stack([r["dipole"] for r in labels]))
                if all("dipole" in r for r in labels)
                else None
            ),
            "volume": t(np.abs(np.linalg.det(batch.cell))),
            # per structure, atoms.info["force_weight"] (default 1): 0 trains its energy only
            "force_weight": t([self.structures[i].info.get("force_weight", 1.0) for i in indices]),
        }
