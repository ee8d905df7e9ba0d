"""Neighbour lists for a batch of systems, from vesin (computed outside autograd)."""

from __future__ import annotations

import threading

import numpy as np
import vesin

from mlipserve.server.models.batch import SystemBatch

VESIN_MAX_CELLS = 1e5  # vesin's MAX_NUMBER_OF_CELLS (cpu_cell_list.cpp)


def vesin_grid(lengths: np.ndarray, cutoff: float) -> np.ndarray:
    """The cell grid vesin builds for boxes with face distances `lengths (S, 3)` (its arithmetic).

    A zero in a row means vesin would divide by zero (SIGFPE): its memory cap rescales the
    grid keeping the aspect ratio, and a very elongated or flat box truncates to 0 cells.
    Each truncation of the rescaled grid rounds a hair down, so a value on the edge (C's
    cbrt may give 99999.99… where numpy gives 1e5) counts as the smaller grid.
    """
    down = 1.0 - 1e-9
    n = np.clip(np.trunc(lengths / cutoff), 1.0, np.inf)
    big = n.prod(axis=1) > VESIN_MAX_CELLS
    if big.any():
        m = n[big]
        rxy, ryz = m[:, 0] / m[:, 1], m[:, 1] / m[:, 2]
        nz = np.trunc(np.cbrt(VESIN_MAX_CELLS / (rxy * ryz * ryz)) * down)
        ny = np.trunc(ryz * nz * down)
        nx = np.trunc(rxy * ny * down)
        n[big] = np.stack([nx, ny, nz], axis=1)
    return n


def face_distances(boxes: np.ndarray) -> np.ndarray:
    """(S, 3) distances between opposite faces of each box (S, 3, 3), rows as vectors."""
    normals = np.stack(
        [
            np.cross(boxes[:, 1], boxes[:, 2]),
            np.cross(boxes[:, 2], boxes[:, 0]),
            np.cross(boxes[:, 0], boxes[:, 1]),
        ],
        axis=1,
    )
    norm = np.linalg.norm(normals, axis=2)
    norm[norm == 0] = 1.0
    return np.abs(np.einsum("sij,sij->si", normals, boxes)) / norm


def vesin_box(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> tuple[np.ndarray, list[bool]]:
    """The box and periodicity one system's neighbour list is asked of vesin with.

    A partly periodic system becomes fully periodic: each non-periodic row is replaced by a
    vector orthogonal to the periodic ones, longer than the atoms' extent along it plus
    twice the cutoff, so no image along it is within the cutoff (the pairs and the periodic
    shifts are the same; the padded shift components are 0). vesin 0.6 is slow on mixed
    boxes: 2 atoms in a wire cell with 100 Å of vacuum took 3.3 s at a 1.8 Å cutoff.
    """
    pbc = np.asarray(pbc, dtype=bool)
    if pbc.all() or not pbc.any():
        return np.asarray(cell, dtype=np.float64), pbc.tolist()
    box = np.array(cell, dtype=np.float64)
    _, _, vt = np.linalg.svd(box[pbc])
    for d, u in zip(np.flatnonzero(~pbc), vt[int(pbc.sum()) :]):
        along = positions @ u
        box[d] = u * (float(along.max() - along.min()) + 2.0 * cutoff + 1.0)
    return box, [True, True, True]


def neighbor_boxes(
    positions: np.ndarray, offsets: np.ndarray, cells: np.ndarray, pbc: np.ndarray, cutoff: float
) -> np.ndarray:
    """The box vesin bins each system in: the cell (partly periodic ones padded as in
    `vesin_box`), or the atoms' extent along each axis of a non-periodic system."""
    lo = np.minimum.reduceat(positions, offsets[:-1], axis=0)
    hi = np.maximum.reduceat(positions, offsets[:-1], axis=0)
    extent = np.maximum(hi - lo, 1e-12)
    boxes = np.where(pbc[:, :, None], cells, np.eye(3)[None] * extent[:, :, None])
    for s in np.flatnonzero(pbc.any(axis=1) & ~pbc.all(axis=1)):
        boxes[s] = vesin_box(positions[offsets[s] : offsets[s + 1]], cells[s], pbc[s], cutoff)[0]
    return boxes


def batch_neighbors(batch: SystemBatch, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Full neighbour list of every system, in batch atom indices.

    Returns `edge_index (2, E)` (i, j) and `edge_shift (E, 3)` integer cell shifts, such
    that the vector from i to j is `positions[j] - positions[i] + edge_shift @ cell`.
    """
    calculator = vesin.NeighborList(cutoff=cutoff, full_list=True)
    offsets = batch.offsets
    senders, receivers, shifts = [], [], []
    for s in range(batch.n_systems):
        lo, hi = offsets[s], offsets[s + 1]
        box, periodic = vesin_box(batch.positions[lo:hi], batch.cell[s], batch.pbc[s], cutoff)
        i, j, shift = calculator.compute(
            points=batch.positions[lo:hi], box=box, periodic=periodic, quantities="ijS"
        )
        senders.append(i.astype(np.int64) + lo)
        receivers.append(j.astype(np.int64) + lo)
        shifts.append(shift)
    edge_index = np.stack([np.concatenate(senders), np.concatenate(receivers)])
    return edge_index, np.concatenate(shifts).astype(np.float64)


def _batch_key(batch: SystemBatch) -> tuple:
    """What must stay the same for a stored pair list to be reused: atoms, cells, pbc."""
    return (
        batch.numbers.tobytes(),
        batch.n_atoms.tobytes(),
        np.ascontiguousarray(batch.cell, dtype=np.float64).tobytes(),
        np.ascontiguousarray(batch.pbc, dtype=bool).tobytes(),
    )


class VerletNeighbors:
    """A Verlet list: pairs within cutoff + skin, rebuilt only when an atom has moved more
    than skin/2 since the last build (or the atoms, cells or pbc changed).

    Each call returns exactly the pairs within the cutoff of the current positions (the
    same set as `batch_neighbors`, possibly in another order): the stored candidates are
    filtered by their current distance. `rebuilds` counts the full neighbour searches.
    Thread-safe; one batch at a time is remembered (another batch replaces it).
    """

    def __init__(self, cutoff: float, skin: float) -> None:
        if skin < 0:
            raise ValueError(f"neighbour skin must be ≥ 0 Å, not {skin}")
        self.cutoff, self.skin = float(cutoff), float(skin)
        self.rebuilds = 0
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._reference: np.ndarray | None = None
        self._pairs: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, batch: SystemBatch) -> tuple[np.ndarray, np.ndarray]:
        """`edge_index (2, E)` and `edge_shift (E, 3)` within the cutoff, as `batch_neighbors`."""
        if self.skin == 0:
            return batch_neighbors(batch, self.cutoff)
        key = _batch_key(batch)
        with self._lock:
            stale = (
                self._key != key
                or self._reference is None
                or np.max(np.linalg.norm(batch.positions - self._reference, axis=1), initial=0.0)
                > 0.5 * self.skin
            )
            if stale:
                self._pairs = batch_neighbors(batch, self.cutoff + self.skin)
                self._key, self._reference = key, batch.positions.copy()
                self.rebuilds += 1
            edge_index, edge_shift = self._pairs  # type: ignore[misc]
        i, j = edge_index
        shift = np.einsum("ek,ekl->el", edge_shift, batch.cell[batch.system_index[i]])
        vec = batch.positions[j] - batch.positions[i] + shift
        keep = np.einsum("ec,ec->e", vec, vec) < self.cutoff**2
        return edge_index[:, keep], edge_shift[keep]
