"""Umbrella sampling: K restrained windows run as K replicas, one provider call per step.

Window k adds V_k(s) = ½ κ_k (s − s_k)² to the potential and runs Langevin dynamics (BAOAB)
at one temperature; after `equilibration` steps the CV is recorded every `stride` steps.
`UmbrellaResult.profile` unbiases the windows with MBAR (pymbar) or WHAM.

```python
cv = Position(0, axis=0)
result = run_umbrella(provider, atoms, cv, centers=np.linspace(-1.5, 1.5, 13), kappa=1.0,
                      temperature_K=300, dt=2 * units.fs, friction=0.1 / units.fs, steps=5000)
profile = result.profile(np.linspace(-1.6, 1.6, 33), method="mbar")
profile.plot("umbrella.png")
```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from mlipserve.simulation.md.integrators import langevin_baoab
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.provider import ForceProvider
from mlipserve.simulation.sampling.bias import (
    BiasedProvider,
    HarmonicRestraint,
    SamplingMD,
    fixed_mask,
)
from mlipserve.simulation.sampling.cvs import CV
from mlipserve.simulation.sampling.free_energy import (
    FreeEnergyProfile,
    decorrelate,
    mbar_profile,
    wham_profile,
)


@dataclass
class UmbrellaResult:
    """CV time series of every window: `samples` (K, T) after equilibration, every `stride`."""

    restraint: HarmonicRestraint
    samples: np.ndarray
    temperature_K: float
    stride: int
    dt: float
    calls: int
    final: list[Atoms] = field(default_factory=list)

    @property
    def cv(self) -> CV:
        """The restrained collective variable."""
        return self.restraint.cvs[0]

    def decorrelated(self) -> list[np.ndarray]:
        """Each window's uncorrelated subsample (pymbar's statistical inefficiency)."""
        return [decorrelate(series) for series in self.samples]

    def default_bins(self, n_bins: int = 40) -> np.ndarray:
        """Evenly spaced edges spanning the sampled range."""
        return np.linspace(self.samples.min(), self.samples.max() + 1e-9, n_bins + 1)

    def profile(
        self,
        bin_edges: np.ndarray | int = 40,
        method: str = "mbar",
        reference: float | None = None,
        n_bootstrap: int = 100,
        seed: int = 0,
    ) -> FreeEnergyProfile:
        """F(s) on the bins by 'mbar' (analytical errors) or 'wham' (bootstrap errors).

        F = 0 at the bin holding `reference` (default: the lowest bin).
        """
        edges = self.default_bins(bin_edges) if isinstance(bin_edges, int) else bin_edges
        samples = self.decorrelated()
        if method == "mbar":
            return mbar_profile(
                samples,
                self.restraint.matrix,
                edges,
                self.temperature_K,
                self.cv.name,
                reference=reference,
            )
        if method == "wham":
            return wham_profile(
                samples,
                self.restraint.matrix,
                edges,
                self.temperature_K,
                self.cv.name,
                n_bootstrap=n_bootstrap,
                seed=seed,
                reference=reference,
            )
        raise ValueError(f"method must be 'mbar' or 'wham', got {method!r}")


def starts_along_path(images: Sequence[Atoms], cv: CV, centers: Sequence[float]) -> list[Atoms]:
    """A start for each window: the path (e.g. NEB images) interpolated linearly to s = s_k.

    The CV must change monotonically along the images; centres outside their range take the
    nearest end image. Constraints of the first image are kept.
    """
    images = list(images)
    if len(images) < 2:
        raise ValueError("a path needs at least two images")
    values = np.array([cv.evaluate(a.positions, a.cell.array, a.pbc)[0][0] for a in images])
    step = np.diff(values)
    if not (np.all(step > 0) or np.all(step < 0)):
        raise ValueError(f"the CV is not monotonic along the path: {np.round(values, 4)}")
    order = np.argsort(values)
    starts = []
    for center in np.asarray(centers, dtype=float):
        t = np.interp(center, values[order], np.arange(len(images))[order])
        i = min(int(np.floor(t)), len(images) - 2)
        frac = t - i
        atoms = images[0].copy()
        atoms.positions = (1 - frac) * images[i].positions + frac * images[i + 1].positions
        atoms.calc = None
        starts.append(atoms)
    return starts


def run_umbrella(
    provider: ForceProvider,
    starts: Atoms | Sequence[Atoms],
    cv: CV,
    centers: Sequence[float],
    kappa: float | Sequence[float],
    temperature_K: float,
    *,
    dt: float,
    friction: float,
    steps: int,
    equilibration: int = 0,
    stride: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> UmbrellaResult:
    """Run all windows as one batch of replicas (one provider call per step).

    Args:
        provider: the physical potential.
        starts: one Atoms per window, or one Atoms for all (FixAtoms constraints are held).
        cv: the restrained CV; centers (K,) and kappa (eV per CV unit²) define the windows.
        temperature_K, dt, friction: Langevin BAOAB (ASE time units, friction in 1/time).
        steps: production steps recorded every `stride`, after `equilibration` steps.
        seed: window k draws its noise from seed + k.
    """
    restraint = HarmonicRestraint(cv, centers, kappa)
    k = restraint.n_windows
    images = [starts] * k if isinstance(starts, Atoms) else list(starts)
    if len(images) != k:
        raise ValueError(f"{len(images)} starting structures for {k} windows")
    if steps < 1 or equilibration < 0 or stride < 1:
        raise ValueError("steps and stride must be ≥ 1 and equilibration ≥ 0")
    state = MDState.from_atoms(
        images, temperature_K=temperature_K, seeds=[seed + i for i in range(k)]
    )
    md = SamplingMD(
        BiasedProvider(provider, [restraint]),
        state,
        langevin_baoab(dt, temperature_K, friction),
        fixed=fixed_mask(images),
    )
    md.run(equilibration, progress=progress)
    samples: list[np.ndarray] = []
    md.attach(lambda: samples.append(md.values[0][:, 0].copy()), stride)
    md.run(steps, progress=progress)
    final = []
    for r in range(k):
        atoms = md.state.to_atoms(r)
        atoms.set_constraint([c.copy() for c in images[r].constraints])
        final.append(atoms)
    return UmbrellaResult(
        restraint, np.array(samples).T, float(temperature_K), stride, dt, md.calls, final
    )
