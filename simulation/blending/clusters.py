"""Geometry of a blended region: the system seen from its core, and clusters carved from it.

A periodic system is unwrapped about the core centre c (minimum image of every atom
relative to c), so each atom within r_outer of c has one unambiguous image; the cell must be
at least 2·r_outer high in every periodic direction. Clusters are cut from these unwrapped
positions as they are (no capping atoms) and placed in a non-periodic box with vacuum.

Buffer/cap policy: the cluster of a partition holds exactly the partition's atoms. For
metals (the tested case) no capping is needed: the reference and the MLIP both see the same
bare cluster surface, and in E_ref(P) − E_mlip(P) the surface terms cancel to the extent the
MLIP describes the surface like the reference. For molecular systems, pass `groups` (e.g.
molecule ids) so whole molecules enter and leave together and no covalent bond between the
core/inner region and a group is cut; hydrogen link-atom capping of cut bonds is not
implemented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.geometry import find_mic


@dataclass
class CoreFrame:
    """A system unwrapped about its core: per-atom (N,...) and per-group (G,...) geometry.

    `positions` (N,3) Å are minimum-image positions about `centre` (the core's centroid);
    `distances` (G,) Å and `directions` (G,3) are |c_g − c| and (c_g − c)/|c_g − c| for each
    group's centroid c_g.
    """

    positions: np.ndarray
    centre: np.ndarray
    distances: np.ndarray
    directions: np.ndarray


def check_groups(
    groups: Sequence[int] | np.ndarray | None, n_atoms: int, core: np.ndarray
) -> list[np.ndarray]:
    """Atom index arrays of the non-core groups (default: every non-core atom alone)."""
    if core.size == 0:
        raise ValueError("the core needs at least one atom index")
    if core.min() < 0 or core.max() >= n_atoms:
        raise ValueError(f"core indices {core.tolist()} out of range for {n_atoms} atoms")
    is_core = np.zeros(n_atoms, bool)
    is_core[core] = True
    if groups is None:
        return [np.array([i]) for i in range(n_atoms) if not is_core[i]]
    labels = np.asarray(groups)
    if labels.shape != (n_atoms,):
        raise ValueError(f"groups has {labels.size} labels for {n_atoms} atoms")
    out = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        inside = is_core[members]
        if inside.any() and not inside.all():
            raise ValueError(f"group {label} mixes core and non-core atoms; put it all in the core")
        if not inside.any():
            out.append(members)
    return out


def core_frame(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    core: np.ndarray,
    groups: list[np.ndarray],
    r_outer: float,
) -> CoreFrame:
    """Unwrap about the core centroid and measure each group's distance from it."""
    pbc = np.asarray(pbc, bool)
    if pbc.any():
        cell = np.asarray(cell, float)
        volume = abs(np.linalg.det(cell))
        if volume < 1e-12:
            raise ValueError("a periodic system needs a non-degenerate cell")
        heights = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
        if np.any(heights[pbc] <= 2.0 * r_outer):
            raise ValueError(
                f"the cell is too small for r_inner + width = {r_outer:.3f} Å: every periodic "
                f"height must exceed {2 * r_outer:.3f} Å (heights {np.round(heights, 3).tolist()})"
            )
    first = positions[core[0]]
    core_vectors, _ = find_mic(positions[core] - first, cell, pbc)
    centre = first + core_vectors.mean(0)
    vectors, _ = find_mic(positions - centre, cell, pbc)
    unwrapped = centre + vectors
    centroids = np.array([unwrapped[g].mean(0) for g in groups]).reshape(-1, 3)
    rel = centroids - centre
    distances = np.linalg.norm(rel, axis=1)
    directions = np.divide(
        rel, distances[:, None], out=np.zeros_like(rel), where=distances[:, None] > 0
    )
    return CoreFrame(unwrapped, centre, distances, directions)


def distance_gradient_forces(
    frame: CoreFrame, groups: list[np.ndarray], core: np.ndarray, dedd: np.ndarray, n_atoms: int
) -> np.ndarray:
    """Forces −Σ_g (∂E/∂d_g) ∇d_g, with ∇_a d_g = u_g/|g| (a ∈ g), −u_g/|core| (a ∈ core)."""
    forces = np.zeros((n_atoms, 3))
    pull = dedd[:, None] * frame.directions
    for g, members in enumerate(groups):
        forces[members] -= pull[g] / len(members)
    forces[core] += pull.sum(0) / len(core)
    return forces


def carve(numbers: np.ndarray, positions: np.ndarray, members: np.ndarray, vacuum: float) -> Atoms:
    """The atoms `members` as a non-periodic cluster centred in a box with `vacuum` (Å)."""
    pos = positions[members]
    low, high = pos.min(0), pos.max(0)
    return Atoms(
        numbers=numbers[members],
        positions=pos - low + vacuum,
        cell=np.diag(high - low + 2.0 * vacuum),
        pbc=False,
    )
