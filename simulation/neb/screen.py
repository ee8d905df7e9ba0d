"""Relaxing bands: one band (`run_neb`), many at once (`screen`), and MLIP-screen →
reference-refine (`screen_and_refine`).

`screen` runs the batched FIRE engine over every image of every active band in one call per
iteration. `screen_and_refine` screens many candidate pathways on a fast model, ranks them by
forward barrier (lowest first: the hops that dominate the kinetics) and re-runs the `top_k`
best on a reference provider (EMT adapter here, a DFT labeller later) from the model's
relaxed images, after re-relaxing their endpoints on the reference (`relax_batch`, batched
too), again all bands in one call. With `trust` (an ensemble model) a band with an image the
ensemble disagrees on is ranked after every trusted band: a hole in the model (molecules:
a water ring collapsing to O-O 1.3 Å) otherwise screens as the lowest barrier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from mlipserve.simulation.fire import FIREParams, run_batched
from mlipserve.simulation.neb.band import BatchedNEB, NEBResult, result_from_band
from mlipserve.simulation.plotting import new_figure, save
from mlipserve.simulation.relax import relax_batch


def screen(
    provider: Any,
    bands: Sequence[Sequence[Atoms]],
    *,
    fmax: float = 0.05,
    max_steps: int = 500,
    climb: bool = True,
    k: float = 0.1,
    method: str = "improvedtangent",
    uncertainty: bool = False,
    batch_size: int | None = None,
    progress: bool = True,
    params: FIREParams | None = None,
) -> list[NEBResult]:
    """Relax many bands with FIRE, all images of all active bands in one call per iteration.

    Each band follows ASE's FIRE on `ase.mep.NEB` exactly (its own FIRE state); converged when
    the band's max NEB force < fmax. `batch_size` caps the active bands. Bands are copied.
    """
    nebs = [
        BatchedNEB(
            [a.copy() for a in images],
            provider,
            k=k,
            climb=climb,
            method=method,
            uncertainty=uncertainty,
        )
        for images in bands
    ]
    properties = nebs[0].properties if nebs else ("energy", "forces")
    outcomes = run_batched(
        provider,
        nebs,
        properties=properties,
        fmax=fmax,
        max_steps=max_steps,
        batch_size=batch_size,
        params=params,
        progress=progress,
        description="neb",
    )
    return [result_from_band(neb, o.steps, o.converged, o.fmax) for neb, o in zip(nebs, outcomes)]


def run_neb(
    provider: Any,
    images: Sequence[Atoms],
    *,
    fmax: float = 0.05,
    max_steps: int = 500,
    climb: bool = True,
    k: float = 0.1,
    method: str = "improvedtangent",
    uncertainty: bool = False,
    progress: bool = True,
    params: FIREParams | None = None,
) -> NEBResult:
    """CI-NEB of one band (copied): all its images in one provider call per FIRE iteration."""
    (result,) = screen(
        provider,
        [images],
        fmax=fmax,
        max_steps=max_steps,
        climb=climb,
        k=k,
        method=method,
        uncertainty=uncertainty,
        progress=progress,
        params=params,
    )
    return result


@dataclass
class ScreenReport:
    """Screened results (input order), ranking by screened barrier (trusted bands first),
    refined top candidates, and each band's highest image max_force_std when asked."""

    screened: list[NEBResult]
    ranking: list[int]
    refined: dict[int, NEBResult]
    untrusted: list[int] = field(default_factory=list)
    path_force_std: list[float] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        """One row per band in ranking order: barriers (eV), their difference, uncertainty."""
        rows = []
        for rank, i in enumerate(self.ranking):
            row: dict[str, Any] = {
                "band": i,
                "rank": rank,
                "screened_barrier": self.screened[i].barrier,
                "screened_energy_std": self.screened[i].energy_std,
                "trusted": i not in self.untrusted,
            }
            if self.path_force_std:
                row["path_max_force_std"] = self.path_force_std[i]
            if i in self.refined:
                row["refined_barrier"] = self.refined[i].barrier
                row["error"] = self.screened[i].barrier - self.refined[i].barrier
            rows.append(row)
        return rows

    def plot(
        self,
        path: str | Path,
        title: str | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write screened vs refined barriers per band (ranked) as a PNG."""
        fig, ax = new_figure(5.5, 3.8)
        x = range(len(self.ranking))
        screened = [self.screened[i].barrier for i in self.ranking]
        yerr = [self.screened[i].energy_std or 0.0 for i in self.ranking]
        ax.errorbar(
            x, screened, yerr=yerr if any(yerr) else None, fmt="o", label="screened (model)"
        )
        refined = [
            (r, self.refined[i].barrier) for r, i in enumerate(self.ranking) if i in self.refined
        ]
        if refined:
            ax.plot(*zip(*refined), "s", mfc="none", ms=9, label="refined (reference)")
        ax.set_xticks(list(x), [str(i) for i in self.ranking])
        ax.set_xlabel("band (ranked by screened barrier)")
        ax.set_ylabel("forward barrier [eV]")
        ax.legend(loc="best")
        return save(fig, path, title, provenance)


def screen_and_refine(
    model: Any,
    reference: Any,
    bands: Sequence[Sequence[Atoms]],
    *,
    top_k: int = 1,
    fmax: float = 0.05,
    refine_fmax: float | None = None,
    max_steps: int = 500,
    climb: bool = True,
    k: float = 0.1,
    uncertainty: bool = False,
    relax_endpoints: bool = True,
    trust: float | None = None,
    progress: bool = True,
) -> ScreenReport:
    """Screen every band on `model`, then re-run the `top_k` lowest barriers on `reference`.

    `uncertainty` asks the model (an ensemble) for the climbing image's energy_std and
    max_force_std. With `relax_endpoints` the refined bands' endpoints are first relaxed on
    the reference (fmax = `refine_fmax`), so barriers refer to reference minima. With
    `trust` (eV/Å, an ensemble model: e.g. its served trust_hi) a band whose images' highest
    max_force_std (one extra model call over every image) exceeds it is untrusted and ranked
    after the trusted ones.
    """
    if not bands:
        raise ValueError("screen_and_refine needs at least one band")
    if not 0 <= top_k <= len(bands):
        raise ValueError(f"top_k must be between 0 and {len(bands)}, got {top_k}")
    refine_fmax = fmax if refine_fmax is None else refine_fmax
    screened = screen(
        model,
        bands,
        fmax=fmax,
        max_steps=max_steps,
        climb=climb,
        k=k,
        uncertainty=uncertainty,
        progress=progress,
    )
    path_std: list[float] = []
    if trust is not None:
        images = [a for result in screened for a in result.images]
        results = model.evaluate(images, ("energy", "forces", "uncertainty"))
        stds = [r["max_force_std"] for r in results]
        sizes = [len(result.images) for result in screened]
        bounds = [sum(sizes[:j]) for j in range(len(sizes) + 1)]
        path_std = [float(max(stds[a:b])) for a, b in zip(bounds, bounds[1:])]
    untrusted = [i for i, std in enumerate(path_std) if std > (trust or 0.0)]
    ranking = sorted(range(len(bands)), key=lambda i: (i in untrusted, screened[i].barrier))
    chosen = ranking[:top_k]
    starts = [[a.copy() for a in screened[i].images] for i in chosen]
    if relax_endpoints and starts:
        ends = [atoms for band in starts for atoms in (band[0], band[-1])]
        relaxed = relax_batch(
            reference, ends, fmax=refine_fmax, max_steps=max_steps, progress=progress
        )
        for j, band in enumerate(starts):
            band[0], band[-1] = relaxed[2 * j].atoms, relaxed[2 * j + 1].atoms
    refined = (
        screen(
            reference,
            starts,
            fmax=refine_fmax,
            max_steps=max_steps,
            climb=climb,
            k=k,
            progress=progress,
        )
        if starts
        else []
    )
    return ScreenReport(
        screened=screened,
        ranking=ranking,
        refined=dict(zip(chosen, refined)),
        untrusted=untrusted,
        path_force_std=path_std,
    )
