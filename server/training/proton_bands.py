"""Candidate proton-transfer pathways for MLIP-screen → xTB-refine NEB on `default-molecular`.

Each candidate is a symmetric transfer whose two ends are minima: malonaldehyde's
intramolecular transfer, the formic acid dimer's double transfer and the concerted transfer
round a cyclic water trimer and tetramer (each ring H to the next O). `candidate_bands`
relaxes the ends on a provider and interpolates the bands; `xtb_neb` is the independent
reference, ASE's CI-NEB + FIRE on tblite's GFN2-xTB directly, counting its xTB calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_changes

from mlipserve.server.training import molecular_frames as mf

CANDIDATES = ("malonaldehyde", "formic_dimer", "water_trimer", "water_tetramer")
OH, HOH = 0.97, np.radians(104.5)  # Å, water's bond length and angle


def water_ring(n: int, oo: float = 2.8) -> tuple[Atoms, list[int], list[int], list[int]]:
    """A cyclic water n-mer (O-O `oo` Å, each molecule donating one H to the next, free H
    alternately above and below the ring) and its (moving H, donor O, acceptor O) lists."""
    radius = oo / (2 * np.sin(np.pi / n))
    angles = 2 * np.pi * np.arange(n) / n
    o = radius * np.stack([np.cos(angles), np.sin(angles), np.zeros(n)], axis=1)
    symbols, positions = "", []
    for i in range(n):
        u = (o[(i + 1) % n] - o[i]) / oo
        out = o[i] / radius - (o[i] / radius @ u) * u
        out /= np.linalg.norm(out)
        side = np.array([0.0, 0.0, 1.0 if i % 2 == 0 else -1.0])
        free = np.cos(np.radians(50)) * out + np.sin(np.radians(50)) * side
        free = np.cos(HOH) * u + np.sin(HOH) * free
        symbols += "OHH"
        positions += [o[i], o[i] + OH * u, o[i] + OH * free]
    atoms = Atoms(symbols, positions=np.array(positions))
    moving = [3 * i + 1 for i in range(n)]
    donors = [3 * i for i in range(n)]
    return atoms, moving, donors, [3 * ((i + 1) % n) for i in range(n)]


def endpoints(name: str) -> tuple[Atoms, Atoms]:
    """The unrelaxed (reactant, product) of candidate `name`."""
    if name in ("malonaldehyde", "formic_dimer"):
        return mf.proton_transfer(name, 0.0), mf.proton_transfer(name, 1.0)
    if name in ("water_trimer", "water_tetramer"):
        ring, moving, donors, acceptors = water_ring(3 if name == "water_trimer" else 4)
        ends = [mf._mirror_path(ring, moving, donors, acceptors, t) for t in (0.0, 1.0)]
        return ends[0], ends[1]
    raise ValueError(f"no candidate pathway {name!r}; known: {CANDIDATES}")


def candidate_bands(
    provider: Any,
    names: Sequence[str] = CANDIDATES,
    n_images: int = 5,
    fmax: float = 0.03,
    progress: bool = False,
) -> list[list[Atoms]]:
    """One band per candidate: both ends relaxed on `provider` (all in one batch), then
    `n_images` linearly interpolated images between them."""
    from mlipserve.simulation import make_band, relax_batch

    ends = [end for name in names for end in endpoints(name)]
    relaxed = [r.atoms for r in relax_batch(provider, ends, fmax=fmax, progress=progress)]
    for atoms in relaxed:
        atoms.calc = None
    return [make_band(relaxed[2 * i], relaxed[2 * i + 1], n_images) for i in range(len(names))]


class Counter:
    """Single points done by the calculators that share it."""

    calls = 0


def counting_xtb(counter: Counter | None = None) -> Any:
    """tblite's GFN2-xTB ASE calculator adding each single point to `counter.calls`."""
    from tblite.ase import TBLite

    counter = counter or Counter()

    class CountingTBLite(TBLite):
        def calculate(self, atoms=None, properties=None, system_changes=all_changes):
            counter.calls += 1
            super().calculate(atoms, properties, system_changes)

    calc = CountingTBLite(method="GFN2-xTB", verbosity=0)
    calc.counter = counter
    return calc


def xtb_provider() -> Any:
    """GFN2-xTB (tblite) as an in-process ForceProvider: the refine reference."""
    from mlipserve.simulation.blending.reference import ASECalculatorProvider

    return ASECalculatorProvider(counting_xtb(), name="GFN2-xTB")


def xtb_neb(
    name: str, n_images: int = 5, fmax: float = 0.03, max_steps: int = 1000
) -> dict[str, Any]:
    """From scratch on xTB alone: ends relaxed (BFGS), ASE's CI-NEB (improved tangent,
    k 0.1, FIRE) from the linear interpolation; barrier, profile and xTB single points."""
    from ase.mep import NEB
    from ase.optimize import BFGS, FIRE

    counter = Counter()
    ends = []
    for end in endpoints(name):
        end.calc = counting_xtb(counter)
        BFGS(end, logfile=None).run(fmax=fmax, steps=max_steps)
        ends.append(end)
    relax_calls = counter.calls
    band = [ends[0]] + [ends[0].copy() for _ in range(n_images)] + [ends[1]]
    for image in band[1:-1]:
        image.calc = counting_xtb(counter)  # one per image: the ends keep their results
    neb = NEB(band, k=0.1, climb=True, method="improvedtangent")
    neb.interpolate()
    opt = FIRE(neb, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=max_steps))
    energies = [image.get_potential_energy() for image in band]
    return {
        "barrier_eV": float(max(energies) - energies[0]),
        "energies_eV": [float(e - energies[0]) for e in energies],
        "converged": converged,
        "steps": int(opt.nsteps),
        "xtb_calls": int(counter.calls),
        "xtb_calls_endpoints": int(relax_calls),
    }


def screen_refine(
    model: Any,
    names: Sequence[str] = CANDIDATES,
    *,
    top_k: int = 2,
    trust: float | None = None,
    n_images: int = 5,
    fmax: float = 0.03,
    max_steps: int = 500,
    progress: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Screen the candidates on `model` (ends relaxed on it), refine `top_k` on GFN2-xTB:
    the report and a per-candidate summary (barriers, rank, trust, xTB single points)."""
    from mlipserve.simulation import screen_and_refine

    bands = candidate_bands(model, names, n_images, fmax)
    xtb = xtb_provider()
    report = screen_and_refine(
        model, xtb, bands, top_k=top_k, fmax=fmax, max_steps=max_steps,
        uncertainty=trust is not None, trust=trust, progress=progress,
    )  # fmt: skip
    rows = {}
    for row in report.table():
        i = row["band"]
        screened = report.screened[i]
        rows[names[i]] = {
            "rank": row["rank"],
            "trusted": row["trusted"],
            "model_barrier_eV": screened.barrier,
            "model_converged": screened.converged,
            "model_profile_eV": [float(e - screened.energies[0]) for e in screened.energies],
            "path_max_force_std": row.get("path_max_force_std"),
        }
        if i in report.refined:
            refined = report.refined[i]
            rows[names[i]] |= {
                "refined_barrier_eV": refined.barrier,
                "refined_converged": refined.converged,
                "refined_profile_eV": [float(e - refined.energies[0]) for e in refined.energies],
            }
    summary = {"candidates": rows, "refine_xtb_calls": int(xtb.calculator.counter.calls)}
    return report, summary
