"""Exact finite-P path-integral averages of an isotropic 3D harmonic oscillator (test reference).

For V = ½ m ω² |q|² the ring polymer at β_P = β/P is Gaussian: normal mode k (frequency
ω_k = 2 (P/βħ) sin(kπ/P), written out here, not taken from the code under test) has
⟨Q_k²⟩ = P k_B T / (m (ω² + ω_k²)) per Cartesian component. Hence, per atom:

- K_cv = K_prim = (3/2) k_B T [1 + Σ_{k≥1} ω²/(ω² + ω_k²)]
- ⟨|q|²⟩ (bead average) = 3 k_B T/m Σ_{k≥0} 1/(ω² + ω_k²)
- ⟨V⟩ = ½ m ω² ⟨|q|²⟩
- ⟨r_g²⟩ = 3 k_B T/m Σ_{k≥1} 1/(ω² + ω_k²)

P = 1 is classical (K = 3k_BT/2, ⟨|q|²⟩ = 3k_BT/(mω²)); P → ∞ gives K = (3ħω/4) coth(βħω/2)
and ⟨|q|²⟩ = (3ħ/(2mω)) coth(βħω/2).
"""

from __future__ import annotations

import numpy as np
from ase import units

HBAR = units._hbar * units.J * units.s


def mode_frequencies(p: int, temperature_K: float) -> np.ndarray:
    """ω_k = 2 (P k_B T/ħ) sin(kπ/P), k = 0..P−1."""
    return 2 * p * units.kB * temperature_K / HBAR * np.sin(np.pi * np.arange(p) / p)


def exact(p: int, temperature_K: float, mass: float, omega: float) -> dict[str, float]:
    """Per-atom kinetic (cv = primitive), potential, ⟨|q|²⟩ and ⟨r_g²⟩ of a P-bead oscillator."""
    kt = units.kB * temperature_K
    wk2 = mode_frequencies(p, temperature_K) ** 2
    w2 = omega**2
    q2 = 3 * kt / mass * np.sum(1 / (w2 + wk2))
    return {
        "kinetic": 1.5 * kt * (1 + np.sum(w2 / (w2 + wk2[1:]))),
        "q2": q2,
        "potential": 0.5 * mass * w2 * q2,
        "rg2": 3 * kt / mass * np.sum(1 / (w2 + wk2[1:])),
    }


def quantum_limit(temperature_K: float, mass: float, omega: float) -> dict[str, float]:
    """P → ∞: K = (3ħω/4) coth(βħω/2), ⟨|q|²⟩ = (3ħ/(2mω)) coth(βħω/2) per atom."""
    coth = 1 / np.tanh(HBAR * omega / (2 * units.kB * temperature_K))
    return {"kinetic": 0.75 * HBAR * omega * coth, "q2": 1.5 * HBAR / (mass * omega) * coth}


def block_mean(series: np.ndarray, blocks: int = 20) -> tuple[float, float]:
    """Mean and its standard error from `blocks` contiguous block averages (time axis 0)."""
    n = len(series) // blocks * blocks
    means = np.asarray(series[:n]).reshape(blocks, -1, *np.shape(series)[1:]).mean(1)
    means = means.reshape(blocks, -1).mean(1)
    return float(means.mean()), float(means.std(ddof=1) / np.sqrt(blocks))
