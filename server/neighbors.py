"""Neighbour lists for a batch of systems, from vesin (computed outside autograd)."""

from __future__ import annotations

import numpy as np
import vesin

from mlipserve.server.batch import SystemBatch
from mlipserve.server.checks import vesin_box


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
            points=batch.positions[lo:hi], box=box, periodic=periodic, quantities="ijS")
        senders.append(i.astype(np.int64) + lo)
        receivers.append(j.astype(np.int64) + lo)
        shifts.append(shift)
    edge_index = np.stack([np.concatenate(senders), np.concatenate(receivers)])
    return edge_index, np.concatenate(shifts).astype(np.float64)
