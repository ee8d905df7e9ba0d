"""Well-tempered metadynamics on one or two CVs, several walkers batched in one provider call.

Every `pace` steps each walker drops a Gaussian at its CV values s_t into the bias of its copy:
V(s, t) = Σ_g w_g exp(−Σ_d (s_d − s_{g,d})²/(2σ_d²)), w_g = w₀ exp(−V(s_g, t_g)/(k_B ΔT)),
ΔT = (γ − 1) T with the bias factor γ (Barducci, Bussi & Parrinello 2008). The walkers of a
copy share its bias (Raiteri et al. 2006); independent copies give the error bar. At long
times F(s) = −γ/(γ − 1) V(s) + const.

```python
result = run_metadynamics(provider, atoms, [Position(0, 0)], sigma=0.1, height=0.005,
                          bias_factor=6, temperature_K=300, dt=0.5, friction=1.0,
                          steps=2000, pace=10, walkers=4, copies=4)
profile = result.profile(np.linspace(-1.6, 1.6, 65))
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

from mlipserve.simulation.md.integrators import langevin_baoab
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.plotting import new_figure, save
from mlipserve.simulation.provider import ForceProvider
from mlipserve.simulation.sampling.bias import Bias, BiasedProvider, SamplingMD, fixed_mask, wrap
from mlipserve.simulation.sampling.cvs import CV
from mlipserve.simulation.sampling.free_energy import FreeEnergyProfile


class WellTemperedMetadynamics:
    """The history-dependent bias of `copies` independent runs, each shared by its walkers.

    Args:
        cvs: one or two CVs.
        sigma: Gaussian widths σ_d in CV units (scalar or one per CV).
        height: initial Gaussian height w₀ in eV.
        bias_factor: γ = (T + ΔT)/T > 1.
        temperature_K: the simulation temperature T.
        n_replicas: walkers of all copies; replica r belongs to copy r // (n_replicas/copies).
    """

    def __init__(
        self,
        cvs: Sequence[CV],
        sigma: float | Sequence[float],
        height: float,
        bias_factor: float,
        temperature_K: float,
        n_replicas: int,
        copies: int = 1,
    ) -> None:
        self.cvs = list(cvs)
        if len(self.cvs) not in (1, 2):
            raise ValueError(f"metadynamics takes one or two CVs, got {len(self.cvs)}")
        d = len(self.cvs)
        sigmas = np.asarray(sigma, dtype=float)
        self.sigma = np.full(d, float(sigmas)) if sigmas.ndim == 0 else sigmas
        if self.sigma.shape != (d,) or np.any(self.sigma <= 0):
            raise ValueError(f"sigma must be positive, one per CV ({d}), got {sigma}")
        if not height > 0:
            raise ValueError(f"the Gaussian height must be positive, got {height}")
        if not bias_factor > 1:
            raise ValueError(f"the bias factor γ must be > 1, got {bias_factor}")
        if not temperature_K > 0:
            raise ValueError(f"temperature_K must be positive, got {temperature_K}")
        if copies < 1 or n_replicas < 1 or n_replicas % copies:
            raise ValueError(f"{n_replicas} walkers cannot be split evenly into {copies} copies")
        self.height, self.bias_factor = float(height), float(bias_factor)
        self.temperature_K = float(temperature_K)
        self.delta_kT = units.kB * temperature_K * (bias_factor - 1.0)
        self.copies = copies
        self.copy_of = np.repeat(np.arange(copies), n_replicas // copies)
        self.periods = [cv.period for cv in self.cvs]
        self.centers = np.zeros((0, d))
        self.heights = np.zeros(0)
        self.owner = np.zeros(0, dtype=int)

    @property
    def n_gaussians(self) -> int:
        """Gaussians deposited so far, over all copies."""
        return len(self.heights)

    def _kernels(self, points: np.ndarray, copy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian values (P, M) of the bias of copy[p] at points (P, d), and the wrapped Δ."""
        diff = points[:, None, :] - self.centers[None]
        for k, period in enumerate(self.periods):
            diff[..., k] = wrap(diff[..., k], period)
        kern = self.heights * np.exp(-0.5 * ((diff / self.sigma) ** 2).sum(-1))
        return kern * (self.owner[None] == copy[:, None]), diff

    def energy(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V (R,) and ∂V/∂s (R, d) for each walker, from its copy's Gaussians."""
        if len(values) != len(self.copy_of):
            raise ValueError(f"{len(values)} replicas for a bias set up for {len(self.copy_of)}")
        if self.n_gaussians == 0:
            return np.zeros(len(values)), np.zeros_like(values)
        kern, diff = self._kernels(values, self.copy_of)
        return kern.sum(1), -np.einsum("rm,rmd->rd", kern, diff / self.sigma**2)

    def deposit(self, values: np.ndarray) -> None:
        """Every walker adds a Gaussian at its values (R, d), w = w₀ exp(−V(s)/k_BΔT)."""
        bias, _ = self.energy(values)
        self.centers = np.concatenate([self.centers, values])
        self.heights = np.concatenate([self.heights, self.height * np.exp(-bias / self.delta_kT)])
        self.owner = np.concatenate([self.owner, self.copy_of])

    def potential(self, points: np.ndarray, chunk: int = 512) -> np.ndarray:
        """Bias of every copy at points (P, d): (copies, P) eV."""
        points = np.asarray(points, dtype=float).reshape(-1, len(self.cvs))
        out = np.zeros((self.copies, len(points)))
        for c in range(self.copies):
            for lo in range(0, len(points), chunk):
                part = points[lo : lo + chunk]
                out[c, lo : lo + chunk] = self._kernels(part, np.full(len(part), c))[0].sum(1)
        return out

    def free_energy(self, points: np.ndarray) -> np.ndarray:
        """F(s) = −γ/(γ − 1) V(s) of every copy at points (P, d): (copies, P) eV."""
        return -self.bias_factor / (self.bias_factor - 1.0) * self.potential(points)


@dataclass
class MetadynamicsResult:
    """The bias after the run and the CV trajectory `values` (T, R, d), one row per deposition."""

    bias: WellTemperedMetadynamics
    values: np.ndarray
    pace: int
    dt: float
    calls: int
    final: list[Atoms]

    def _estimate(self, points: np.ndarray, ref: int | None) -> tuple[np.ndarray, np.ndarray]:
        f = self.bias.free_energy(points)
        ref = int(np.argmin(f.mean(0))) if ref is None else ref
        f = f - f[:, ref : ref + 1]
        err = f.std(0, ddof=1) / np.sqrt(len(f)) if len(f) > 1 else np.full(f.shape[1], np.nan)
        return f.mean(0), err

    def profile(self, grid: np.ndarray, reference: float | None = None) -> FreeEnergyProfile:
        """1D F(s) on grid points: mean over copies ± standard error of the mean.

        F = 0 at the grid point nearest `reference` (default: the minimum of the mean).
        """
        if len(self.bias.cvs) != 1:
            raise ValueError("profile is for one CV; use surface for two")
        grid = np.asarray(grid, dtype=float)
        ref = None if reference is None else int(np.argmin(np.abs(grid - reference)))
        free, err = self._estimate(grid[:, None], ref)
        return FreeEnergyProfile(
            grid, free, err, "WT-metaD", self.bias.temperature_K, self.bias.cvs[0].name
        )

    def surface(self, grid_x: np.ndarray, grid_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """2D F(s₁, s₂) on a grid, (len(grid_x), len(grid_y)): mean over copies and its error."""
        if len(self.bias.cvs) != 2:
            raise ValueError("surface is for two CVs; use profile for one")
        gx, gy = np.meshgrid(grid_x, grid_y, indexing="ij")
        free, err = self._estimate(np.stack([gx.ravel(), gy.ravel()], 1), None)
        return free.reshape(gx.shape), err.reshape(gx.shape)

    def plot_surface(
        self,
        grid_x: np.ndarray,
        grid_y: np.ndarray,
        path: str | Path,
        levels: int = 20,
        title: str | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write the 2D free-energy surface as a filled-contour PNG (eV)."""
        free, _ = self.surface(grid_x, grid_y)
        fig, ax = new_figure(5.5, 4.5)
        filled = ax.contourf(grid_x, grid_y, free.T, levels=levels, cmap="viridis")
        fig.colorbar(filled, ax=ax, label="F (eV)")
        ax.set_xlabel(self.bias.cvs[0].name)
        ax.set_ylabel(self.bias.cvs[1].name)
        ax.set_title(
            f"WT-metaD, γ = {self.bias.bias_factor:g}, {self.bias.temperature_K:g} K", fontsize=9
        )
        return save(fig, path, title, provenance)


def run_metadynamics(
    provider: ForceProvider,
    starts: Atoms | Sequence[Atoms],
    cvs: Sequence[CV],
    sigma: float | Sequence[float],
    height: float,
    bias_factor: float,
    temperature_K: float,
    *,
    dt: float,
    friction: float,
    steps: int,
    pace: int,
    walkers: int = 1,
    copies: int = 1,
    extra_biases: Sequence[Bias] = (),
    seed: int = 0,
    progress: bool = False,
) -> MetadynamicsResult:
    """Run `copies` × `walkers` replicas in one batch; each copy's walkers share one bias.

    Args:
        starts: one Atoms for every walker, or one per walker (FixAtoms constraints are held).
        cvs, sigma, height, bias_factor: the bias (see `WellTemperedMetadynamics`).
        dt, friction, temperature_K: Langevin BAOAB (ASE time units, friction in 1/time).
        steps, pace: MD steps, and steps between depositions.
        extra_biases: fixed biases added as well (walls, restraints; not in F).
        seed: replica r draws its noise from seed + r.
    """
    n = walkers * copies
    images = [starts] * n if isinstance(starts, Atoms) else list(starts)
    if len(images) != n:
        raise ValueError(f"{len(images)} starting structures for {n} walkers")
    if steps < 1 or pace < 1:
        raise ValueError("steps and pace must be ≥ 1")
    bias = WellTemperedMetadynamics(cvs, sigma, height, bias_factor, temperature_K, n, copies)
    state = MDState.from_atoms(
        images, temperature_K=temperature_K, seeds=[seed + i for i in range(n)]
    )
    md = SamplingMD(
        BiasedProvider(provider, [bias, *extra_biases]),
        state,
        langevin_baoab(dt, temperature_K, friction),
        fixed=fixed_mask(images),
    )
    history: list[np.ndarray] = []

    def deposit() -> None:
        values = md.values[0].copy()
        history.append(values)
        bias.deposit(values)

    md.attach(deposit, pace)
    md.run(steps, progress=progress)
    final = [md.state.to_atoms(r) for r in range(n)]
    return MetadynamicsResult(bias, np.array(history), pace, dt, md.calls, final)
