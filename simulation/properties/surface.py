"""Surface energies of fcc facets from slabs of increasing thickness (linear fit).

For each facet, slabs of n = `layers` atomic layers (in-plane cell `size`, `vacuum` Å on
each side, periodic in all directions) are evaluated unrelaxed in ONE provider call and
relaxed (positions, fixed cell) in ONE `relax_batch` over every facet and thickness. A
least-squares line E_slab(n) = n·ε + 2γA gives the bulk energy per layer ε (slope) and

    γ = (E_slab(n) − n·ε) / 2A,

reported per n and from the intercept (γ_fit). Using the fitted ε, not a separate bulk
calculation, keeps γ from drifting with n (Fiorentini & Methfessel). Units: eV/Å² and J/m².
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import fcc100, fcc110, fcc111

from mlipserve.simulation.plotting import new_figure, save
from mlipserve.simulation.properties.bulk import (
    EV_PER_A2_TO_J_PER_M2,
    guess_fcc_lattice_constant,
    relaxed_fcc,
)
from mlipserve.simulation.relax import relax_batch

BUILDERS = {"100": fcc100, "110": fcc110, "111": fcc111}
# (110) layers are a/(2√2) apart, half the (100) spacing: thicker slabs in layer count.
DEFAULT_LAYERS = {"100": (4, 5, 6, 7), "110": (6, 8, 10, 12), "111": (4, 5, 6, 7)}


@dataclass
class SurfaceResult:
    """One facet: slab energies per thickness, the fit and γ (eV/Å² and J/m²)."""

    facet: str
    layers: np.ndarray
    area: float
    atoms_per_layer: int
    energies: np.ndarray
    slope: float
    intercept: float
    gamma: float
    gamma_per_slab: np.ndarray
    relaxed: bool

    @property
    def gamma_j_m2(self) -> float:
        """γ from the fit in J/m²."""
        return self.gamma * EV_PER_A2_TO_J_PER_M2

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "facet": self.facet,
            "layers": self.layers.tolist(),
            "area_A2": self.area,
            "atoms_per_layer": self.atoms_per_layer,
            "energies_eV": self.energies.tolist(),
            "bulk_energy_per_layer_eV": self.slope,
            "intercept_eV": self.intercept,
            "gamma_eV_A2": self.gamma,
            "gamma_J_m2": self.gamma_j_m2,
            "gamma_per_slab_eV_A2": self.gamma_per_slab.tolist(),
            "relaxed": self.relaxed,
        }


def fcc_slab(
    symbol: str,
    facet: str,
    n_layers: int,
    a: float,
    size: tuple[int, int] = (1, 1),
    vacuum: float = 8.0,
) -> Atoms:
    """An fcc(`facet`) slab of `n_layers` layers, periodic in all three directions."""
    if facet not in BUILDERS:
        raise ValueError(f"facet must be one of {sorted(BUILDERS)}, got {facet!r}")
    if n_layers < 1 or vacuum <= 0 or a <= 0:
        raise ValueError("n_layers ≥ 1, vacuum > 0 and a > 0 are required")
    slab = BUILDERS[facet](symbol, size=(size[0], size[1], n_layers), a=a, vacuum=vacuum)
    slab.pbc = True
    return slab


def fit_surface_energy(
    layers: Sequence[int],
    energies: Sequence[float] | np.ndarray,
    area: float,
) -> tuple[float, float, float, np.ndarray]:
    """Fit E(n) = n·ε + c; return ε, c, γ = c/2A and γ_n = (E_n − n·ε)/2A (eV/Å²)."""
    n = np.asarray(layers, dtype=float)
    e = np.asarray(energies, dtype=float)
    if n.size < 2 or n.size != e.size or len(set(n.tolist())) < 2:
        raise ValueError("need energies for at least two different thicknesses")
    if area <= 0:
        raise ValueError(f"area must be positive, got {area}")
    slope, intercept = np.polyfit(n, e, 1)
    return (
        float(slope),
        float(intercept),
        float(intercept / (2 * area)),
        (e - n * slope) / (2 * area),
    )


def surface_energies(
    provider: Any,
    symbol: str,
    facets: Sequence[str] = ("100", "110", "111"),
    layers: Sequence[int] | Mapping[str, Sequence[int]] | None = None,
    *,
    a: float | None = None,
    size: tuple[int, int] = (1, 1),
    vacuum: float = 8.0,
    relax: bool = True,
    fmax: float = 0.01,
    max_steps: int = 500,
    progress: bool = False,
) -> dict[str, SurfaceResult]:
    """γ of every facet of fcc `symbol` (lattice constant `a`, default: the model's own).

    `layers`: thicknesses for every facet, or per facet; default `DEFAULT_LAYERS`.
    """
    guess_fcc_lattice_constant(symbol)  # raises for unknown / non-fcc elements
    facets = list(dict.fromkeys(facets))
    if not facets:
        raise ValueError("give at least one facet")
    plan: dict[str, list[int]] = {}
    for facet in facets:
        if facet not in BUILDERS:
            raise ValueError(f"facet must be one of {sorted(BUILDERS)}, got {facet!r}")
        chosen = (
            DEFAULT_LAYERS[facet]
            if layers is None
            else layers.get(facet, DEFAULT_LAYERS[facet])
            if isinstance(layers, Mapping)
            else layers
        )
        plan[facet] = sorted({int(n) for n in chosen})
        if len(plan[facet]) < 2 or plan[facet][0] < 1:
            raise ValueError(f"({facet}): need two distinct positive layer counts, got {chosen}")
    if a is None:
        a = relaxed_fcc(provider, [symbol])[symbol].a
    slabs = [fcc_slab(symbol, f, n, a, size, vacuum) for f in facets for n in plan[f]]
    if relax:
        flat = np.array(
            [
                r.energy
                for r in relax_batch(
                    provider, slabs, fmax=fmax, max_steps=max_steps, progress=progress
                )
            ]
        )
    else:
        flat = np.array([r["energy"] for r in provider.evaluate(slabs, ("energy",))])
    out, start = {}, 0
    for facet in facets:
        counts = plan[facet]
        slab, energies = slabs[start], flat[start : start + len(counts)]
        start += len(counts)
        area = float(np.linalg.norm(np.cross(slab.cell[0], slab.cell[1])))
        slope, intercept, gamma, per_slab = fit_surface_energy(counts, energies, area)
        out[facet] = SurfaceResult(
            facet=facet,
            layers=np.array(counts),
            area=area,
            atoms_per_layer=len(slab) // counts[0],
            energies=energies,
            slope=slope,
            intercept=intercept,
            gamma=gamma,
            gamma_per_slab=per_slab,
            relaxed=relax,
        )
    return out


def plot_surface_energies(
    results: dict[str, SurfaceResult],
    path: str | Path,
    title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """PNG: γ_n per facet vs thickness (J/m²), with the fitted γ as a dashed line."""
    fig, ax = new_figure(6, 4)
    for facet, res in results.items():
        (line,) = ax.plot(
            res.layers,
            res.gamma_per_slab * EV_PER_A2_TO_J_PER_M2,
            "o-",
            label=f"({facet}) γ = {res.gamma_j_m2:.3f} J/m²",
        )
        ax.axhline(res.gamma_j_m2, ls="--", color=line.get_color(), lw=0.8)
    ax.set_xlabel("slab thickness (layers)")
    ax.set_ylabel("γ_n = (E_n − n ε) / 2A  (J/m²)")
    ax.legend(fontsize=8)
    return save(fig, path, title, provenance)
