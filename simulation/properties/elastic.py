"""Elastic constants C_ij (6×6, GPa) from batched strained cells, stress–strain method.

Each of the six Voigt strains ε_j (engineering shear: γ = 2ε_yz ...) is applied at ±δ for
every magnitude δ in `strains` through the symmetric deformation F = I + ε, positions
scaled with the cell; all 12·len(strains) cells go to the provider in ONE call (or one
relax_batch with relaxed ions, then one stress call). The central difference
D_ij(δ) = [σ_i(+δ e_j) − σ_i(−δ e_j)] / 2δ has an error a_ij δ² + O(δ⁴); with two or more
magnitudes C_ij is the intercept of a least-squares fit of D_ij against δ² (Richardson
extrapolation), with one it is D_ij itself. σ is the provider's stress (ASE sign:
C_ij = ∂σ_i/∂ε_j). The reference should be at zero stress (relaxed); a residual stress is
reported and enters the stress–strain coefficients at order σ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

from mlipserve.simulation.plotting import new_panels, save
from mlipserve.simulation.properties.bulk import check_atoms
from mlipserve.simulation.properties.stress import deformed
from mlipserve.simulation.relax import relax_batch

VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


@dataclass
class ElasticResult:
    """C_ij in GPa, the moduli (GPa), Born stability and what it was computed from."""

    C: np.ndarray
    reference_stress: np.ndarray
    strains: tuple[float, ...]
    relaxed_ions: bool
    moduli: dict[str, float] = field(default_factory=dict)
    born_stable: bool = False
    eigenvalues: np.ndarray = field(default_factory=lambda: np.zeros(6))
    curves: np.ndarray = field(default_factory=lambda: np.zeros((0, 6, 6)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (GPa)."""
        return {
            "C_GPa": self.C.tolist(),
            "reference_stress_GPa": self.reference_stress.tolist(),
            "strains": list(self.strains),
            "relaxed_ions": self.relaxed_ions,
            "moduli_GPa": self.moduli,
            "born_stable": self.born_stable,
            "eigenvalues_GPa": self.eigenvalues.tolist(),
            "method": "stress-strain, central differences, Richardson fit in strain^2",
        }


def strain_matrix(voigt: np.ndarray) -> np.ndarray:
    """Symmetric 3×3 strain from Voigt (xx yy zz 2yz 2xz 2xy: engineering shear)."""
    e = np.asarray(voigt, dtype=float)
    if e.shape != (6,):
        raise ValueError(f"Voigt strain must have shape (6,), got {e.shape}")
    return np.array(
        [[e[0], e[5] / 2, e[4] / 2], [e[5] / 2, e[1], e[3] / 2], [e[4] / 2, e[3] / 2, e[2]]]
    )


def strained_cells(atoms: Atoms, strains: Sequence[float]) -> list[Atoms]:
    """The 12·len(strains) cells: for each δ, each Voigt j, +δ then −δ."""
    cells = []
    for delta in strains:
        for j in range(6):
            for sign in (1.0, -1.0):
                e = np.zeros(6)
                e[j] = sign * delta
                cells.append(deformed(atoms, np.eye(3) + strain_matrix(e)))
    return cells


def elastic_tensor(
    provider: Any,
    atoms: Atoms,
    strains: Sequence[float] = (0.0025, 0.005),
    *,
    relax_ions: bool = False,
    fmax: float = 1e-3,
    progress: bool = False,
) -> ElasticResult:
    """Elastic tensor (GPa) of `atoms` from ±δ strained cells (stress–strain, Richardson).

    `relax_ions`: relax the positions of every strained cell (one batched FIRE to `fmax`)
    for relaxed-ion constants; otherwise clamped-ion (homogeneous strain) constants.
    """
    check_atoms(atoms, "elastic_tensor")
    deltas = tuple(float(s) for s in strains)
    if not deltas or any(not 0 < d <= 0.05 for d in deltas) or len(set(deltas)) != len(deltas):
        raise ValueError(f"strains must be distinct magnitudes in (0, 0.05], got {strains}")
    cells = [atoms] + strained_cells(atoms, deltas)
    if relax_ions:
        relaxed = relax_batch(provider, cells, fmax=fmax, max_steps=2000, progress=progress)
        cells = [r.atoms for r in relaxed]
    results = provider.evaluate(cells, ("energy", "stress"))
    stresses = np.array([r["stress"] for r in results]) / units.GPa
    pm = stresses[1:].reshape(len(deltas), 6, 2, 6)  # δ, strain j, ±, stress i
    d = (pm[:, :, 0, :] - pm[:, :, 1, :]) / (2.0 * np.array(deltas)[:, None, None])
    curves = np.transpose(d, (0, 2, 1))  # δ, i, j
    if len(deltas) == 1:
        C = curves[0]
    else:
        design = np.stack([np.ones(len(deltas)), np.array(deltas) ** 2], axis=1)
        coef, *_ = np.linalg.lstsq(design, curves.reshape(len(deltas), 36), rcond=None)
        C = coef[0].reshape(6, 6)
    sym = 0.5 * (C + C.T)
    eig = np.linalg.eigvalsh(sym)
    return ElasticResult(
        C=C,
        reference_stress=stresses[0],
        strains=deltas,
        relaxed_ions=relax_ions,
        moduli=elastic_moduli(sym),
        born_stable=bool(eig.min() > 0),
        eigenvalues=eig,
        curves=curves,
    )


def elastic_moduli(C: np.ndarray) -> dict[str, float]:
    """Voigt, Reuss and Hill bulk (K) and shear (G) moduli from a 6×6 C (same units).

    K_V = [C11+C22+C33 + 2(C12+C23+C13)]/9, G_V = [C11+C22+C33 − (C12+C23+C13)
    + 3(C44+C55+C66)]/15; with S = C⁻¹: K_R = 1/[S11+S22+S33 + 2(S12+S23+S13)],
    G_R = 15/[4(S11+S22+S33) − 4(S12+S23+S13) + 3(S44+S55+S66)]; Hill = the means.
    """
    C = np.asarray(C, dtype=float)
    if C.shape != (6, 6):
        raise ValueError(f"C must be 6×6, got {C.shape}")
    diag = C[0, 0] + C[1, 1] + C[2, 2]
    off = C[0, 1] + C[1, 2] + C[0, 2]
    shear = C[3, 3] + C[4, 4] + C[5, 5]
    out = {"K_V": (diag + 2 * off) / 9, "G_V": (diag - off + 3 * shear) / 15}
    try:
        S = np.linalg.inv(C)
    except np.linalg.LinAlgError:
        raise ValueError("C is singular: no Reuss moduli") from None
    sd = S[0, 0] + S[1, 1] + S[2, 2]
    so = S[0, 1] + S[1, 2] + S[0, 2]
    ss = S[3, 3] + S[4, 4] + S[5, 5]
    out["K_R"] = 1.0 / (sd + 2 * so)
    out["G_R"] = 15.0 / (4 * sd - 4 * so + 3 * ss)
    out["K_H"] = 0.5 * (out["K_V"] + out["K_R"])
    out["G_H"] = 0.5 * (out["G_V"] + out["G_R"])
    return {k: float(v) for k, v in out.items()}


def cubic_born_criteria(C: np.ndarray) -> dict[str, bool]:
    """Born stability of a cubic crystal: C11 − C12 > 0, C11 + 2C12 > 0, C44 > 0."""
    C = np.asarray(C, dtype=float)
    if C.shape != (6, 6):
        raise ValueError(f"C must be 6×6, got {C.shape}")
    c11 = (C[0, 0] + C[1, 1] + C[2, 2]) / 3
    c12 = (C[0, 1] + C[1, 2] + C[0, 2]) / 3
    c44 = (C[3, 3] + C[4, 4] + C[5, 5]) / 3
    return {
        "C11-C12>0": bool(c11 - c12 > 0),
        "C11+2C12>0": bool(c11 + 2 * c12 > 0),
        "C44>0": bool(c44 > 0),
    }


def plot_elastic(
    result: ElasticResult,
    path: str | Path,
    title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """PNG: the 6×6 C_ij map (GPa) and the central differences D_ij(δ) vs δ²."""
    fig, (ax0, ax1) = new_panels(2, 10, 4.2)
    im = ax0.imshow(result.C, cmap="viridis")
    for i in range(6):
        for j in range(6):
            ax0.text(j, i, f"{result.C[i, j]:.0f}", ha="center", va="center", fontsize=7, color="w")
    labels = ["xx", "yy", "zz", "yz", "xz", "xy"]
    ax0.set_xticks(range(6), labels)
    ax0.set_yticks(range(6), labels)
    ax0.set_title("C_ij (GPa)")
    fig.colorbar(im, ax=ax0)
    d2 = np.array(result.strains) ** 2
    for i, j in ((0, 0), (0, 1), (3, 3)):
        ax1.plot(d2, result.curves[:, i, j], "o-", label=f"C{i + 1}{j + 1}")
        ax1.plot([0], [result.C[i, j]], "k+")
    ax1.set_xlabel("δ² (strain magnitude squared)")
    ax1.set_ylabel("central difference (GPa)")
    ax1.legend()
    return save(fig, path, title, provenance)
