"""Grain-boundary segregation: a symmetric [001] tilt boundary and solute energies per site.

The bicrystal (default Σ5(310)[001]) is built by mirroring: grain A is the fcc lattice with
x = [k, −h, 0], y = [h, k, 0] (the boundary normal) and z = [001], `periods` repeats thick
along y; grain B is A mirrored through y = 0. The periodic cell (2L along y) holds two
identical boundaries, at y = 0 and y = L, each a mirror plane through an atomic layer;
of any two atoms closer than `overlap`·r_nn one is removed. In-plane the cell stays at the
bulk lattice constant (the grains are bulk far away); its length normal to the boundary is
relaxed to σ_yy ≈ 0 (`relax_boundary_normal`: secant steps on σ_yy of the position-relaxed
bicrystal), so the boundary's excess volume does not strain the grains.

Segregation energy of solute X at site i (negative: X prefers the boundary),

    E_seg(i) = [E_GB(X@i) − E_GB] − [E_bulk(X) − E_bulk],

where the bulk reference is a single crystal of the same orientation and in-plane size
(so solute–image interactions cancel far from the boundary). Every structure (pure GB,
pure bulk, solute in bulk, solute at each site) is relaxed in ONE `relax_batch`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.lattice.cubic import FaceCenteredCubic
from ase.neighborlist import neighbor_list

from mlipserve.simulation.plotting import new_figure, save
from mlipserve.simulation.properties.bulk import EV_PER_A2_TO_J_PER_M2
from mlipserve.simulation.relax import relax_batch


@dataclass
class SegregationResult:
    """Segregation energies (eV) per site vs distance (Å) from the nearest boundary plane.

    `gb_energy` is γ_GB (J/m²) of the pure bicrystal; `boundary` that relaxed bicrystal.
    """

    solute: str
    sites: np.ndarray
    distances: np.ndarray
    energies: np.ndarray
    gb_energy: float
    converged: bool
    boundary: Atoms | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "solute": self.solute,
            "sites": self.sites.tolist(),
            "distance_A": self.distances.tolist(),
            "segregation_eV": self.energies.tolist(),
            "gb_energy_J_m2": self.gb_energy,
            "all_converged": self.converged,
            "reference": "solute in a single crystal of the same orientation and size",
        }


def _check_plane(plane: tuple[int, int, int]) -> tuple[int, int]:
    h, k, l = (int(x) for x in plane)
    if l != 0 or h <= 0 or k < 0 or h <= k or gcd(h, k) != 1:
        raise ValueError(f"plane must be (h, k, 0) with h > k ≥ 0 coprime, got {plane}")
    return h, k


def oriented_crystal(
    symbol: str,
    a: float,
    plane: tuple[int, int, int] = (3, 1, 0),
    size: tuple[int, int, int] = (1, 1, 1),
) -> Atoms:
    """fcc crystal with x = [k −h 0], y = [h k 0], z = [001], cell × `size`, lowest y at 0."""
    h, k = _check_plane(plane)
    if a <= 0 or any(int(n) < 1 for n in size):
        raise ValueError("a must be positive and size three positive integers")
    crystal = FaceCenteredCubic(
        directions=[[k, -h, 0], [h, k, 0], [0, 0, 1]],
        size=size,
        symbol=symbol,
        latticeconstant=a,
        pbc=True,
    )
    crystal.positions[:, 1] -= crystal.positions[:, 1].min()
    return crystal


def symmetric_tilt_gb(
    symbol: str,
    a: float,
    plane: tuple[int, int, int] = (3, 1, 0),
    *,
    periods: int = 2,
    x_repeat: int = 1,
    z_repeat: int = 1,
    overlap: float = 0.7,
) -> Atoms:
    """A periodic bicrystal with two symmetric tilt boundaries at y = 0 and y = L.

    `atoms.info` records the boundary positions along y ("gb_planes", Å), "a", "hkl" and
    "grain_size" (what `segregation_energies` needs to build the matching single crystal).
    """
    if symbol not in atomic_numbers:
        raise ValueError(f"unknown element {symbol!r}")
    if periods < 1 or not 0 < overlap < 1:
        raise ValueError("periods ≥ 1 and 0 < overlap < 1 are required")
    grain = oriented_crystal(symbol, a, plane, (x_repeat, periods, z_repeat))
    length = grain.cell[1, 1]
    pos = grain.positions
    on_plane = np.abs(pos[:, 1]) < 1e-6
    top = pos[on_plane] + [0.0, length, 0.0]
    mirrored = pos[~on_plane] * [1.0, -1.0, 1.0]
    cell = np.diag([grain.cell[0, 0], 2 * length, grain.cell[2, 2]])
    positions = np.vstack([pos, top, mirrored])
    gb = Atoms(f"{symbol}{len(positions)}", positions=positions, cell=cell, pbc=True)
    gb.wrap()
    i, j = neighbor_list("ij", gb, overlap * a / np.sqrt(2))
    removed: set[int] = set()
    for p, q in zip(i, j):
        if p < q and p not in removed and q not in removed:
            removed.add(int(q))
    del gb[sorted(removed)]
    gb.info.update(
        gb_planes=[0.0, float(length)],
        a=float(a),
        hkl=tuple(int(x) for x in plane),
        grain_size=(int(x_repeat), int(periods), int(z_repeat)),
    )
    return gb


def distance_to_boundary(atoms: Atoms) -> np.ndarray:
    """Distance (Å) of every atom from the nearest boundary plane (periodic along y)."""
    planes = atoms.info.get("gb_planes")
    if planes is None:
        raise ValueError("atoms carry no info['gb_planes']: build them with symmetric_tilt_gb")
    period = atoms.cell[1, 1]
    y = atoms.positions[:, 1][:, None] - np.asarray(planes)[None, :]
    y -= period * np.round(y / period)
    return np.abs(y).min(axis=1)


def one_site_per_layer(atoms: Atoms, tol: float = 0.05) -> np.ndarray:
    """One atom index per distinct distance from the boundary (within `tol` Å), nearest first."""
    d = distance_to_boundary(atoms)
    order = np.argsort(d, kind="stable")
    picked: list[int] = []
    for i in order:
        if not picked or d[i] - d[picked[-1]] > tol:
            picked.append(int(i))
    return np.array(picked)


def _scaled_y(atoms: Atoms, factor: float) -> Atoms:
    out = atoms.copy()
    out.calc = None
    out.set_cell(atoms.cell.array * [[1.0], [factor], [1.0]], scale_atoms=True)
    return out


def relax_boundary_normal(
    provider: Any,
    gb: Atoms,
    *,
    fmax: float = 0.02,
    tol: float = 2e-4,
    max_iter: int = 5,
    h: float = 0.01,
) -> Atoms:
    """Relax positions and the cell length normal to the boundary until |σ_yy| < `tol` eV/Å³.

    First round: the cell at its length and stretched by `h`, both relaxed in one batch;
    then secant steps on σ_yy(L) of the relaxed structures.
    """
    pts: list[tuple[float, float, Atoms]] = []  # (length factor, σ_yy, relaxed atoms)
    trial = [(1.0, gb), (1.0 + h, _scaled_y(gb, 1.0 + h))]
    for _ in range(max_iter):
        relaxed = [
            r.atoms
            for r in relax_batch(
                provider, [t for _, t in trial], fmax=fmax, max_steps=2000, progress=False
            )
        ]
        stress = provider.evaluate(relaxed, ("energy", "stress"))
        pts += [(f, float(r["stress"][1]), at) for (f, _), r, at in zip(trial, stress, relaxed)]
        pts.sort(key=lambda p: abs(p[1]))
        if abs(pts[0][1]) < tol:
            break
        (f0, s0, a0), (f1, s1, _) = pts[0], pts[1]
        if s1 == s0:
            break
        f_new = f0 - s0 * (f1 - f0) / (s1 - s0)
        trial = [(f_new, _scaled_y(a0, f_new / f0))]
    best = pts[0][2].copy()
    best.calc = None
    best.info.update(gb.info)
    best.info["gb_planes"] = [y * pts[0][0] for y in gb.info["gb_planes"]]
    return best


def segregation_energies(
    provider: Any,
    gb: Atoms,
    solute: str,
    sites: Sequence[int] | None = None,
    *,
    fmax: float = 0.02,
    max_steps: int = 1000,
    relax_normal: bool = True,
    progress: bool = False,
) -> SegregationResult:
    """E_seg of `solute` at each site of `gb` (default: one per layer); one relax_batch.

    `gb` from `symmetric_tilt_gb` at the model's lattice constant; `relax_normal` first
    relaxes its length normal to the boundary (`relax_boundary_normal`).
    """
    if solute not in atomic_numbers:
        raise ValueError(f"unknown solute element {solute!r}")
    if not isinstance(gb, Atoms) or not {"gb_planes", "a", "hkl", "grain_size"} <= set(gb.info):
        raise ValueError("gb must come from symmetric_tilt_gb (its atoms.info is needed)")
    symbols = set(gb.get_chemical_symbols())
    if len(symbols) != 1:
        raise ValueError(f"the boundary must be a pure metal, got {sorted(symbols)}")
    host = symbols.pop()
    idx = one_site_per_layer(gb) if sites is None else np.asarray(list(sites), dtype=int)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= len(gb):
        raise ValueError(f"sites must be indices in [0, {len(gb)}), got {sites}")
    if relax_normal:
        gb = relax_boundary_normal(provider, gb, fmax=fmax)
    nx, periods, nz = gb.info["grain_size"]
    bulk = oriented_crystal(host, gb.info["a"], gb.info["hkl"], (nx, 2 * periods, nz))
    doped_bulk = bulk.copy()
    doped_bulk[0].symbol = solute
    cells = [gb, bulk, doped_bulk]
    for i in idx:
        doped = gb.copy()
        doped[int(i)].symbol = solute
        cells.append(doped)
    results = relax_batch(provider, cells, fmax=fmax, max_steps=max_steps, progress=progress)
    e = np.array([r.energy for r in results])
    seg = (e[3:] - e[0]) - (e[2] - e[1])
    area = float(np.linalg.norm(np.cross(gb.cell[0], gb.cell[2])))
    gb_energy = (e[0] - len(gb) * e[1] / len(bulk)) / (2 * area) * EV_PER_A2_TO_J_PER_M2
    return SegregationResult(
        solute=solute,
        sites=idx,
        distances=distance_to_boundary(gb)[idx],
        energies=seg,
        gb_energy=float(gb_energy),
        converged=all(r.converged for r in results),
        boundary=results[0].atoms,
    )


def plot_segregation(
    result: SegregationResult,
    path: str | Path,
    title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """PNG: segregation energy vs distance from the boundary plane."""
    fig, ax = new_figure(6, 4)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.plot(result.distances, result.energies, "o-")
    ax.set_xlabel("distance from boundary plane (Å)")
    ax.set_ylabel(f"E_seg of {result.solute} (eV)")
    ax.set_title(f"γ_GB = {result.gb_energy:.3f} J/m²")
    return save(fig, path, title, provenance)
