"""Water MD checks: a lattice box to start from, molecules intact, temperature and drift figures.

```python
box = water_lattice(2)                      # 8 waters at 1 g/cm³, randomly oriented
intact = water_integrity(frames)            # every H within 1.35 Å of its own O?
stats = temperature_stats(log["temperature"][:, 0], 300.0, block=100)
```
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.geometry import find_mic

WATER_MASS_G = 18.015 / 6.02214076e23
MAX_OH_A = 1.35  # an O–H longer than this is a broken bond (equilibrium 0.96–0.98 Å)


def water_lattice(n_side: int, density: float = 1.0, seed: int = 0, gap: float = 1.6) -> Atoms:
    """n_side³ waters, their O on a simple cubic grid at `density` g/cm³, randomly oriented.

    Each orientation is redrawn (up to 200 times) until every atom is `gap` Å or more from
    the atoms of the molecules placed before it (minimum image), so no two H clash.
    """
    if n_side < 1:
        raise ValueError(f"n_side must be at least 1, got {n_side}")
    n = n_side**3
    side = float((n * WATER_MASS_G / density * 1e24) ** (1 / 3))
    cell = np.eye(3) * side
    rng = np.random.default_rng(seed)
    mono = molecule("H2O").positions
    mono -= mono[0]
    placed = np.zeros((0, 3))
    for site in np.ndindex(n_side, n_side, n_side):
        centre = (np.array(site) + 0.5) * side / n_side
        for _ in range(200):
            q, r = np.linalg.qr(rng.normal(size=(3, 3)))
            new = mono @ (q * np.sign(np.diag(r))).T + centre
            if not len(placed):
                break
            d = (new[:, None, :] - placed[None, :, :]).reshape(-1, 3)
            if find_mic(d, cell, True)[1].min() >= gap:
                break
        placed = np.concatenate([placed, new])
    return Atoms("OHH" * n, positions=placed, cell=cell, pbc=True)


def hydrogen_owners(atoms: Atoms) -> np.ndarray:
    """For each H (in order), the index of its nearest O (minimum image): its molecule."""
    o = np.flatnonzero(atoms.numbers == 8)
    h = np.flatnonzero(atoms.numbers == 1)
    if not len(o) or not len(h):
        raise ValueError("a water frame needs O and H atoms")
    d = atoms.positions[h][:, None, :] - atoms.positions[o][None, :, :]
    _, dist = find_mic(d.reshape(-1, 3), atoms.cell, atoms.pbc)
    return o[np.argmin(dist.reshape(len(h), len(o)), axis=1)]


def oh_lengths(frames: Sequence[Atoms], owners: np.ndarray | None = None) -> np.ndarray:
    """(frames, H) distances, Å, of each H to its own O (owners from the first frame)."""
    if not frames:
        raise ValueError("oh_lengths needs at least one frame")
    owners = hydrogen_owners(frames[0]) if owners is None else np.asarray(owners)
    out = []
    for atoms in frames:
        h = np.flatnonzero(atoms.numbers == 1)
        _, dist = find_mic(atoms.positions[h] - atoms.positions[owners], atoms.cell, atoms.pbc)
        out.append(dist)
    return np.array(out)


def water_integrity(
    frames: Sequence[Atoms], max_oh: float = MAX_OH_A, hold: int = 1
) -> dict[str, float | int | bool]:
    """Whether every H stays within `max_oh` of the O it started on.

    `molecules_intact` is False when some O–H stays longer than `max_oh` for `hold`
    consecutive frames or more (hold = 1: in any frame). Also: the longest O–H seen, the
    fraction of frames with a broken one and the longest such run (frames).
    """
    lengths = oh_lengths(frames)
    broken: np.ndarray = np.asarray((lengths > max_oh).any(axis=1))
    longest = run = 0
    for b in broken.tolist():
        run = run + 1 if b else 0
        longest = max(longest, run)
    return {
        "max_oh_A": float(lengths.max()),
        "mean_oh_A": float(lengths.mean()),
        "broken_frame_fraction": float(broken.mean()),
        "longest_broken_run_frames": int(longest),
        "molecules_intact": bool(longest < hold),
    }


def temperature_stats(temperature: np.ndarray, target: float, block: int = 1) -> dict[str, float]:
    """Mean and std of T (K), the largest |T − target| and of block means of `block` samples."""
    t = np.asarray(temperature, float).reshape(-1)
    n = len(t) // block
    blocks = t[: n * block].reshape(n, block).mean(1) if n else t
    return {
        "mean_K": float(t.mean()),
        "std_K": float(t.std()),
        "max_abs_dev_K": float(np.abs(t - target).max()),
        "max_abs_block_dev_K": float(np.abs(blocks - target).max()),
        "block_samples": int(block),
    }


def energy_drift(time_ps: np.ndarray, energy: np.ndarray, n_atoms: int) -> dict[str, float]:
    """Least-squares slope (meV/atom/ps) and std (meV/atom) of a conserved energy (eV)."""
    per_atom = 1000.0 * np.asarray(energy, float).reshape(-1) / n_atoms
    slope = float(np.polyfit(np.asarray(time_ps, float).reshape(-1), per_atom, 1)[0])
    return {"drift_meV_per_atom_per_ps": slope, "std_meV_per_atom": float(per_atom.std())}
