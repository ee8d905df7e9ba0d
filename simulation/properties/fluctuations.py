"""Bulk modulus two ways: from NPT volume fluctuations and from an equation of state.

`fluctuation_bulk_modulus` reads B = k_B T ⟨V⟩ / ⟨δV²⟩ off an NPT run's volumes, one
estimate per replica (independent runs) so the error bar is their standard error.
`eos_bulk_modulus` fits ASE's Birch–Murnaghan `EquationOfState` to E(V) and returns
B(V) = V E''(V) at any volume (at the minimum it is the fit's B₀), so the two can be
compared at the same mean volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.eos import EquationOfState, birchmurnaghan


def fluctuation_bulk_modulus(volumes: np.ndarray, temperature_K: float) -> tuple[float, float]:
    """B (eV/Å³) and its standard error from volumes (T steps, R replicas) of NPT runs."""
    v = np.asarray(volumes, dtype=float)
    if v.ndim != 2 or v.shape[0] < 2 or v.shape[1] < 2:
        raise ValueError(f"volumes must be (steps, replicas) with both ≥ 2, got {v.shape}")
    kt = units.kB * temperature_K
    per_replica = kt * v.mean(0) / v.var(0)
    pooled = kt * v.mean() / v.var(0).mean()
    return float(pooled), float(per_replica.std(ddof=1) / np.sqrt(v.shape[1]))


def energy_volume_scan(
    provider: Any, atoms: Atoms, strains: Sequence[float] = tuple(np.linspace(-0.02, 0.02, 9))
) -> tuple[np.ndarray, np.ndarray]:
    """Energies of `atoms` scaled isotropically by (1 + s) in length, one batched call."""
    images = []
    for s in strains:
        image = atoms.copy()
        image.set_cell(atoms.cell * (1 + s), scale_atoms=True)
        images.append(image)
    results = provider.evaluate(images, ("energy",))
    return np.array([a.get_volume() for a in images]), np.array([r["energy"] for r in results])


def eos_bulk_modulus(
    volumes: np.ndarray, energies: np.ndarray, at_volume: float | None = None
) -> tuple[float, float]:
    """(B at `at_volume` (default: the minimum) in eV/Å³, the minimum's volume V₀ in Å³)."""
    eos = EquationOfState(volumes, energies, eos="birchmurnaghan")
    v0, _, b0 = eos.fit()
    if at_volume is None:
        return float(b0), float(v0)
    params = eos.eos_parameters
    h = 1e-3 * at_volume
    e = [birchmurnaghan(at_volume + k * h, *params) for k in (-1, 0, 1)]
    return float(at_volume * (e[0] - 2 * e[1] + e[2]) / h**2), float(v0)
