"""Partial radial distribution functions g_ab(r) averaged over frames, and their first shell.

Pairs come from ASE's `neighbor_list` (periodic images included, so r_max may exceed half
the box: g(r) of the periodic system, not only up to the minimum image). The normalisation
is ASE's (`ase.geometry.rdf.get_rdf`): counts of ordered pairs (a at the centre, b around
it) over N_a · (N_b / V) · the exact shell volume 4π/3 ((r + dr)³ − r³).

```python
r, g = rdf(frames, r_max=6.0, bins=120, elements=("O", "O"))
shell = first_shell(r, g, density=16 / frames[0].get_volume())
```
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list
from ase.symbols import symbols2numbers


def rdf(
    frames: Atoms | Iterable[Atoms],
    r_max: float,
    bins: int = 100,
    elements: Sequence[int | str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres (Å) and g(r) of `elements` (a, b) (None: all atoms), averaged over frames."""
    if r_max <= 0 or bins < 1:
        raise ValueError(f"need r_max > 0 and bins >= 1, got {r_max}, {bins}")
    edges = np.linspace(0.0, r_max, bins + 1)
    shells = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    frames = [frames] if isinstance(frames, Atoms) else list(frames)
    if not frames:
        raise ValueError("rdf needs at least one frame")
    pair = None if elements is None else symbols2numbers(list(elements))
    if pair is not None and len(pair) != 2:
        raise ValueError(f"elements must name two species, got {elements}")
    total = np.zeros(bins)
    for atoms in frames:
        volume = atoms.get_volume()
        centre = np.ones(len(atoms), bool) if pair is None else atoms.numbers == pair[0]
        around = np.ones(len(atoms), bool) if pair is None else atoms.numbers == pair[1]
        n_a, n_b = int(centre.sum()), int(around.sum())
        if n_a == 0 or n_b == 0:
            raise ValueError(f"a frame holds no atoms of {elements}")
        pick = centre | around  # only the two species go into the neighbour list
        sub = atoms[pick]
        i, j, d = neighbor_list("ijd", sub, r_max)
        keep = centre[pick][i] & around[pick][j]
        counts = np.histogram(d[keep], bins=edges)[0]
        total += counts / (n_a * n_b / volume * shells)
    return 0.5 * (edges[1:] + edges[:-1]), total / len(frames)


def first_shell(
    r: np.ndarray, g: np.ndarray, density: float | None = None, window: float = 1.5
) -> dict[str, float]:
    """The first peak (position, height: g's maximum) and the first minimum after it.

    The minimum is g's lowest point within `window` Å past the peak (3-bin running mean, so
    one noisy bin does not move it); with the number `density` (1/Å³) of the species
    around, also the coordination number 4πρ ∫₀^{r_min} g r² dr.
    """
    r, g = np.asarray(r, float), np.asarray(g, float)
    smooth = np.convolve(g, np.ones(3) / 3, mode="same")
    peak = int(np.argmax(smooth))
    after = np.flatnonzero((r > r[peak]) & (r <= r[peak] + window))
    out = {"peak_r_A": float(r[peak]), "peak_g": float(g[peak])}
    if after.size:
        low = int(after[np.argmin(smooth[after])])
        out |= {"min_r_A": float(r[low]), "min_g": float(smooth[low])}
        if density is not None:
            dr = float(r[1] - r[0]) if len(r) > 1 else float(2 * r[0])
            inside = r <= r[low]
            integral = np.sum(g[inside] * r[inside] ** 2) * dr
            out["coordination"] = float(4 * np.pi * density * integral)
    return out
