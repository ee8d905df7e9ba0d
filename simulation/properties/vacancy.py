"""Vacancy formation energies in (high-entropy) alloys: every site or a sample, batched.

Chemical-potential reference: μ_X is the energy per atom of the pure element X in its own
fcc crystal at its own equilibrium lattice constant on the same model (`relaxed_fcc`), so

    E_f(i) = E(bulk without atom i) − E(bulk) + μ_X(i).

The bulk is relaxed first (positions, and the cell unless `relax_bulk_cell=False`); each
vacancy is cut from that relaxed bulk. Unrelaxed E_f: no further relaxation (one provider
call for all sites). Relaxed E_f: every vacancy cell relaxed at fixed cell in ONE
`relax_batch`. For a pure metal at its equilibrium lattice constant this is the usual
E_f = E(N−1) − (N−1)/N · E(N).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk

from mlipserve.simulation.plotting import new_figure, save
from mlipserve.simulation.properties.bulk import (
    check_atoms,
    guess_fcc_lattice_constant,
    relaxed_fcc,
)
from mlipserve.simulation.relax import relax_batch

HEA_ELEMENTS = ("Cu", "Ni", "Pd", "Ag", "Au", "Pt", "Al")


@dataclass
class VacancyResult:
    """Per-site formation energies (eV) unrelaxed and relaxed, with the references used."""

    sites: np.ndarray
    species: list[str]
    unrelaxed: np.ndarray
    relaxed: np.ndarray | None
    mu: dict[str, float]
    bulk_energy: float
    bulk: Atoms
    converged: np.ndarray | None = None

    def summary(self) -> dict[str, Any]:
        """Mean, std (population), min and max of each distribution, and per species means."""
        out: dict[str, Any] = {}
        for name, values in (("unrelaxed", self.unrelaxed), ("relaxed", self.relaxed)):
            if values is None:
                continue
            out[name] = {
                "mean": float(values.mean()),
                "std": float(values.std()),
                "min": float(values.min()),
                "max": float(values.max()),
                "by_species": {
                    s: float(values[np.array(self.species) == s].mean())
                    for s in sorted(set(self.species))
                },
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (eV)."""
        return {
            "reference": "mu_X = E/atom of pure fcc X at its own equilibrium a (same model)",
            "mu_eV": self.mu,
            "bulk_energy_eV": self.bulk_energy,
            "formula": self.bulk.get_chemical_formula(),
            "sites": self.sites.tolist(),
            "species": self.species,
            "unrelaxed_eV": self.unrelaxed.tolist(),
            "relaxed_eV": None if self.relaxed is None else self.relaxed.tolist(),
            "converged": None if self.converged is None else self.converged.tolist(),
            "summary": self.summary(),
        }


def random_fcc_alloy(
    symbols: Sequence[str] = HEA_ELEMENTS,
    size: tuple[int, int, int] = (2, 2, 2),
    *,
    a: float | None = None,
    seed: int = 0,
) -> Atoms:
    """A random near-equiatomic fcc alloy: the cubic cell × `size`, species shuffled.

    `a` defaults to Vegard's law over ASE's reference lattice constants of the elements.
    """
    names = list(symbols)
    if not names:
        raise ValueError("random_fcc_alloy: no elements given")
    if len(size) != 3 or any(int(n) < 1 for n in size):
        raise ValueError(f"size must be three positive integers, got {size}")
    if a is None:
        a = float(np.mean([guess_fcc_lattice_constant(s) for s in names]))
    elif a <= 0:
        raise ValueError(f"lattice constant must be positive, got {a}")
    atoms = bulk("Cu", "fcc", a=a, cubic=True) * tuple(int(n) for n in size)
    rng = np.random.default_rng(seed)
    species = [names[i % len(names)] for i in range(len(atoms))]
    atoms.set_chemical_symbols(list(rng.permutation(species)))
    return atoms


def vacancy_formation_energies(
    provider: Any,
    atoms: Atoms,
    sites: Sequence[int] | None = None,
    *,
    mu: Mapping[str, float] | None = None,
    relax: bool = True,
    relax_bulk_cell: bool = True,
    fmax: float = 0.02,
    max_steps: int = 500,
    progress: bool = False,
) -> VacancyResult:
    """Formation energy of a vacancy at each of `sites` (default: every site) of `atoms`.

    `mu` overrides the chemical potentials (eV/atom per element); by default they come from
    `relaxed_fcc` on the same provider (stated in the module docstring).
    """
    check_atoms(atoms, "vacancy_formation_energies")
    n = len(atoms)
    if n < 2:
        raise ValueError("vacancy_formation_energies: need at least two atoms")
    idx = np.arange(n) if sites is None else np.asarray(list(sites), dtype=int)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n or len(set(idx.tolist())) != idx.size:
        raise ValueError(f"sites must be distinct indices in [0, {n}), got {sites}")
    elements = sorted(set(atoms.get_chemical_symbols()))
    if mu is None:
        mu = {s: ref.energy_per_atom for s, ref in relaxed_fcc(provider, elements).items()}
    missing = [s for s in elements if s not in mu]
    if missing:
        raise ValueError(f"no chemical potential for {missing}")
    (bulk_res,) = relax_batch(
        provider,
        [atoms],
        fmax=min(fmax, 0.01),
        max_steps=max_steps,
        relax_cell=relax_bulk_cell,
        progress=False,
    )
    relaxed_bulk = bulk_res.atoms
    relaxed_bulk.calc = None
    cells = []
    for i in idx:
        cell = relaxed_bulk.copy()
        del cell[int(i)]
        cells.append(cell)
    results = provider.evaluate([relaxed_bulk] + cells, ("energy",))
    e_bulk = float(results[0]["energy"])
    species = [relaxed_bulk[int(i)].symbol for i in idx]
    mu_site = np.array([mu[s] for s in species])
    unrelaxed = np.array([r["energy"] for r in results[1:]]) - e_bulk + mu_site
    relaxed = converged = None
    if relax:
        done = relax_batch(provider, cells, fmax=fmax, max_steps=max_steps, progress=progress)
        relaxed = np.array([r.energy for r in done]) - e_bulk + mu_site
        converged = np.array([r.converged for r in done])
    return VacancyResult(
        sites=idx,
        species=species,
        unrelaxed=unrelaxed,
        relaxed=relaxed,
        mu={s: float(mu[s]) for s in elements},
        bulk_energy=e_bulk,
        bulk=relaxed_bulk,
        converged=converged,
    )


def plot_vacancy_histogram(
    result: VacancyResult,
    path: str | Path,
    bins: int = 20,
    title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """PNG: histograms of unrelaxed and relaxed vacancy formation energies."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = new_figure(6, 4)
    series = [("unrelaxed", result.unrelaxed)]
    if result.relaxed is not None:
        series.append(("relaxed", result.relaxed))
    values_all = np.concatenate([v for _, v in series])
    lo, hi = float(values_all.min()), float(values_all.max())
    if hi - lo < 1e-3:  # equivalent sites (pure metal): rounding-level spread, one bar
        lo, hi = lo - 0.05, hi + 0.05
    edges = np.histogram_bin_edges(values_all, bins=bins, range=(lo, hi))
    for name, values in series:
        ax.hist(
            values,
            bins=edges.tolist(),
            alpha=0.6,
            label=f"{name}: mean {values.mean():.3f}, std {values.std():.3f} eV",
        )
    ax.set_xlabel("vacancy formation energy (eV)")
    ax.set_ylabel("sites")
    locator = ax.yaxis.get_major_locator()
    assert isinstance(locator, MaxNLocator)  # a linear axis' AutoLocator
    locator.set_params(integer=True)
    ax.set_title(f"{result.bulk.get_chemical_formula()}: μ_X from pure fcc X")
    ax.legend(fontsize=8)
    return save(fig, path, title, provenance)
