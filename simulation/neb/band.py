"""A band of (CI-)NEB images evaluated in one provider call, and its result.

`BatchedNEB` is ASE's `ase.mep.NEB` (tangents, spring forces, climbing image, interpolation
incl. IDPP all ASE's) whose image energies and forces come from ONE `ForceProvider.evaluate`
call over the moved images; any ASE optimizer drives it like an ASE band. `NEBResult` holds
the forward barrier, the energy profile (PNG via `NEBResult.plot`) and, for ensembles, the
climbing image's uncertainty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.mep import NEB
from ase.utils.abc import Optimizable

from mlipserve.simulation.fire import ProviderResults
from mlipserve.simulation.plotting import new_figure, save


def check_endpoints(initial: Atoms, final: Atoms) -> None:
    """Raise ValueError unless both endpoints hold the same atoms in the same cell."""
    if len(initial) != len(final):
        raise ValueError(f"NEB endpoints differ in size: {len(initial)} vs {len(final)} atoms")
    if not np.array_equal(initial.numbers, final.numbers):
        raise ValueError("NEB endpoints hold different elements or a different atom order")
    if not np.array_equal(initial.pbc, final.pbc):
        raise ValueError("NEB endpoints have different periodic boundary conditions")
    if not np.allclose(initial.cell.array, final.cell.array, atol=1e-8):
        raise ValueError("NEB endpoints have different cells (variable-cell NEB is not supported)")
    if np.allclose(initial.positions, final.positions, atol=1e-6):
        raise ValueError("NEB endpoints are the same structure: there is no path to find")


def make_band(
    initial: Atoms,
    final: Atoms,
    n_images: int = 3,
    *,
    method: str = "linear",
    mic: bool = False,
    apply_constraint: bool | None = None,
) -> list[Atoms]:
    """Initial, `n_images` interpolated images ('linear' or 'idpp', ASE's), final: copies."""
    check_endpoints(initial, final)
    if n_images < 1:
        raise ValueError(f"a band needs at least one intermediate image, got {n_images}")
    if method not in ("linear", "idpp"):
        raise ValueError(f"interpolation method must be 'linear' or 'idpp', got {method!r}")
    images = [initial.copy() for _ in range(n_images + 1)] + [final.copy()]
    for image in images:
        image.calc = None
    NEB(images, method="improvedtangent").interpolate(
        method=method, mic=mic, apply_constraint=apply_constraint
    )
    return images


class BatchedNEB(NEB):
    """ASE's NEB whose moved images are evaluated in one provider call (ASE optimizers drive it).

    Endpoints are evaluated once (with the first call) and then only if they move. With
    `uncertainty=True` the provider (an ensemble) also returns energy_std/max_force_std per
    image, kept in `image_results`.
    """

    def __init__(
        self,
        images: Sequence[Atoms],
        provider: Any,
        *,
        k: float | Sequence[float] = 0.1,
        climb: bool = False,
        method: str = "improvedtangent",
        uncertainty: bool = False,
        **neb_kwargs: Any,
    ) -> None:
        images = list(images)
        if len(images) < 3:
            raise ValueError(f"a band needs at least 3 images (2 endpoints + 1), got {len(images)}")
        check_endpoints(images[0], images[-1])
        if neb_kwargs.get("parallel") or neb_kwargs.get("remove_rotation_and_translation"):
            raise ValueError(
                "BatchedNEB batches images itself: parallel and "
                "remove_rotation_and_translation are not supported"
            )
        super().__init__(
            images, k=k, climb=climb, method=method, allow_shared_calculator=True, **neb_kwargs
        )
        self.provider = provider
        self.properties = ("energy", "forces") + (("uncertainty",) if uncertainty else ())
        self.image_results: list[dict[str, Any] | None] = [None] * self.nimages
        self._stamps: list[np.ndarray | None] = [None] * self.nimages
        self._waiting: list[int] = []
        self.calls = 0

    def stale(self) -> list[int]:
        """Indices of images not evaluated at their current positions."""
        return [
            i
            for i, (img, stamp) in enumerate(zip(self.images, self._stamps))
            if stamp is None or not np.array_equal(stamp, img.positions)
        ]

    def pending(self) -> list[Atoms]:
        """The images to evaluate now (Task protocol of the batched FIRE engine)."""
        self._waiting = self.stale()
        return [self.images[i] for i in self._waiting]

    def receive(self, results: list[dict[str, Any]]) -> None:
        """Attach results to the images `pending` returned, in order."""
        for i, res in zip(self._waiting, results, strict=True):
            image = self.images[i]
            image.calc = ProviderResults(image, res)
            self.image_results[i] = res
            self._stamps[i] = image.positions.copy()
        self._waiting = []

    def refresh(self) -> None:
        """Evaluate every stale image in one provider call."""
        images = self.pending()
        if images:
            self.calls += 1
            self.receive(self.provider.evaluate(images, self.properties))

    def get_forces(self) -> np.ndarray:
        """NEB forces (ASE's), from one batched evaluation of the moved images."""
        self.refresh()
        return super().get_forces()

    @property
    def optimizable(self) -> Optimizable:
        """The band as an ASE optimizable (Task protocol)."""
        return self.__ase_optimizable__()


@dataclass
class NEBResult:
    """A relaxed band: images (results attached), energies, barrier, climbing-image facts."""

    images: list[Atoms]
    energies: np.ndarray
    barrier: float
    reaction_energy: float
    climbing_index: int
    converged: bool
    steps: int
    fmax: float
    energy_std: float | None = None
    max_force_std: float | None = None
    image_std: list[float] = field(default_factory=list)

    def plot(
        self,
        path: str | Path,
        title: str | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write the energy profile along the path (ASE's force-curve fit) as a PNG."""
        from ase.utils.forcecurve import fit_images

        fit = fit_images(self.images)
        fig, ax = new_figure(5.5, 4.0)
        fit.plot(ax=ax)
        if self.image_std:
            ax.errorbar(
                fit.path,
                fit.energies,
                yerr=self.image_std,
                fmt="none",
                ecolor="C3",
                capsize=3,
                label="ensemble energy std",
            )
            ax.legend(loc="best")
        ax.axvline(fit.path[self.climbing_index], color="0.7", ls=":", lw=1)
        return save(fig, path, title, provenance)


def result_from_band(band: BatchedNEB, steps: int, converged: bool, fmax: float) -> NEBResult:
    """Collect a relaxed band's energies, barrier and climbing-image uncertainty."""
    band.get_forces()  # energies, imax and real forces of the final positions
    assert band.real_forces is not None  # set by get_forces
    energies = np.asarray(band.energies, dtype=float)
    images = []
    for i, image in enumerate(band.images):
        copy = image.copy()
        copy.calc = SinglePointCalculator(
            copy,
            energy=float(energies[i]),
            forces=band.real_forces[i].copy()
            if 0 < i < band.nimages - 1
            else image.get_forces(apply_constraint=False),
        )
        images.append(copy)
    imax = int(np.argmax(energies[1:-1])) + 1
    top = band.image_results[imax] or {}
    stds = [float(r["energy_std"]) for r in band.image_results if r and "energy_std" in r]
    return NEBResult(
        images=images,
        energies=energies,
        barrier=float(energies[imax] - energies[0]),
        reaction_energy=float(energies[-1] - energies[0]),
        climbing_index=imax,
        converged=converged,
        steps=steps,
        fmax=fmax,
        energy_std=float(top["energy_std"]) if "energy_std" in top else None,
        max_force_std=float(top["max_force_std"]) if "max_force_std" in top else None,
        image_std=stds if len(stds) == band.nimages else [],
    )
