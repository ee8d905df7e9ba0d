"""Ionic transport from MD trajectories: tracer and charge diffusion, conductivity, Haven ratio.

Client side only (numpy, scipy.constants, ASE). `Trajectory` holds unwrapped positions (and
optionally velocities) of R replicas; `transport` returns a `TransportResult` with

- D*_s per species from the MSD averaged over the species' atoms and all time origins, the
  slope fitted by least squares (with an intercept) over `fit_range` of the lags, MSD = 6 D t;
- D_σ = <|Σ q_i Δr_i|²> / (6 t Σ q_i²), the charge (collective) diffusion coefficient, equal to
  D*_w = Σ q_i² D*_i / Σ q_i² for uncorrelated ions, and the Haven ratio H_R = D*_w / D_σ;
- σ_E = <|Σ q_i Δr_i|²> / (6 t V k_B T) (Einstein), σ_NE = e² Σ_i q_i² D*_i / (V k_B T)
  (Nernst–Einstein) and, with velocities, σ_GK = ∫₀^τ <J(0)·J(t)> dt / (3 V k_B T) with
  J = Σ q_i v_i (Green–Kubo), the plateau being the mean running integral over `gk_window`.

Error bars are standard errors over independent estimates: each replica is one (std/√R);
with a single replica its frames are cut into `n_blocks` consecutive blocks instead. The
Haven ratio's error is the jackknife over those estimates.

```python
traj = Trajectory.from_frames(runs, charges={"Li": 1, "Cl": -1}, temperature=800, dt_fs=10)
res = transport(traj)
res.tracer_cm2_s["Li"].value, res.haven.value, res.einstein_S_m.value
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from ase import Atoms, units
from scipy import constants

A2_FS_TO_CM2_S = 1e-16 / 1e-15
A2_FS_TO_A2_PS = 1e3
# e² · (Å²/fs) / (Å³ · eV) in S/m: e² D / (V k_B T) with k_B T = (value in eV) · e joules.
SIGMA_TO_S_M = constants.e * (1e-20 / 1e-15) / 1e-30
S_M_TO_MS_CM = 10.0


@dataclass
class Trajectory:
    """Unwrapped positions (R, T, N, 3) in Å of R replicas; velocities in Å/fs or None."""

    positions: np.ndarray
    velocities: np.ndarray | None
    symbols: list[str]
    charges: np.ndarray
    volume: float
    temperature: float
    dt_fs: float

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=float)
        p = self.positions
        if p.ndim != 4 or p.shape[-1] != 3 or p.shape[1] < 2:
            raise ValueError(f"positions must be (replicas, frames ≥ 2, atoms, 3), got {p.shape}")
        if self.velocities is not None:
            self.velocities = np.asarray(self.velocities, dtype=float)
            if self.velocities.shape != p.shape:
                raise ValueError(f"velocities {self.velocities.shape} != positions {p.shape}")
        self.symbols = list(self.symbols)
        self.charges = np.asarray(self.charges, dtype=float)
        if len(self.symbols) != p.shape[2] or self.charges.shape != (p.shape[2],):
            raise ValueError(
                f"{p.shape[2]} atoms but {len(self.symbols)} symbols, charges {self.charges.shape}"
            )
        for name in ("volume", "temperature", "dt_fs"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @classmethod
    def from_frames(
        cls,
        replicas: Sequence[Sequence[Atoms]],
        charges: Mapping[str, float],
        temperature: float,
        dt_fs: float,
    ) -> Trajectory:
        """Unwrap wrapped frames (minimum image between consecutive frames) of each replica.

        Velocities (Å/fs) are kept when every frame has momenta; the volume is the mean cell's.
        """
        if not replicas or any(len(r) < 2 for r in replicas):
            raise ValueError("every replica needs at least 2 frames")
        if len({len(r) for r in replicas}) != 1:
            raise ValueError(f"replicas differ in frame count: {[len(r) for r in replicas]}")
        symbols = replicas[0][0].get_chemical_symbols()
        for run in replicas:
            for atoms in run:
                if atoms.get_chemical_symbols() != symbols:
                    raise ValueError("all frames must hold the same atoms in the same order")
        unknown = sorted(set(symbols) - set(charges))
        if unknown:
            raise ValueError(f"no charge given for species {unknown}")
        positions, volumes = [], []
        for run in replicas:
            cells = np.array([a.cell.array for a in run])
            volumes += [abs(np.linalg.det(c)) for c in cells]
            positions.append(unwrap(np.array([a.positions for a in run]), cells, run[0].pbc))
        if min(volumes) <= 0:
            raise ValueError("every frame needs a 3-D cell (its volume is the system's)")
        moving = all(a.has("momenta") for run in replicas for a in run)
        velocities = (
            np.array([[a.get_velocities() * units.fs for a in run] for run in replicas])
            if moving
            else None
        )
        return cls(
            positions=np.array(positions),
            velocities=velocities,
            symbols=symbols,
            charges=np.array([charges[s] for s in symbols], dtype=float),
            volume=float(np.mean(volumes)),
            temperature=temperature,
            dt_fs=dt_fs,
        )


def unwrap(positions: np.ndarray, cells: np.ndarray, pbc: Sequence[bool] = (True,) * 3):
    """Continuous (T, N, 3) positions: each step's displacement taken as its minimum image."""
    step = np.diff(positions, axis=0)
    frac = np.einsum("tnj,tjk->tnk", step, np.linalg.inv(cells[1:]))
    periodic = np.asarray(pbc, dtype=bool)
    frac[..., periodic] -= np.round(frac[..., periodic])
    step = np.einsum("tnj,tjk->tnk", frac, cells[1:])
    return np.concatenate([positions[:1], positions[:1] + np.cumsum(step, axis=0)])


def _autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Σ_d <x(t)·x(t+m)> over origins t for m = 0..max_lag; x is (T, ..., d)."""
    n = x.shape[0]
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(x, n=size, axis=0)
    acf = np.fft.irfft(f * f.conj(), n=size, axis=0)[: max_lag + 1].sum(-1)
    counts = (n - np.arange(max_lag + 1)).reshape((-1,) + (1,) * (acf.ndim - 1))
    return acf / counts


def msd(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Multi-origin MSD <|x(t+m) − x(t)|²> for m = 0..max_lag of x (T, ..., 3), by FFT."""
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    if not 0 < max_lag < n:
        raise ValueError(f"max_lag must be in 1..{n - 1}, got {max_lag}")
    sq = np.concatenate([np.zeros((1,) + x.shape[1:-1]), np.cumsum((x**2).sum(-1), axis=0)])
    m = np.arange(max_lag + 1)
    counts = (n - m).reshape((-1,) + (1,) * (x.ndim - 2))
    s1 = (sq[n] - sq[m] + sq[n - m]) / counts
    return s1 - 2 * _autocorrelation(x, max_lag)


def fit_slope(t: np.ndarray, y: np.ndarray, window: slice) -> np.ndarray:
    """Least-squares slope (with intercept) of y(..., lags) against t over the lag `window`."""
    tw, yw = t[window], y[..., window]
    dt = tw - tw.mean()
    return (yw * dt).sum(-1) / (dt**2).sum()


@dataclass
class Estimate:
    """A value and its standard error."""

    value: float
    error: float

    def scaled(self, factor: float) -> Estimate:
        """The same estimate in other units."""
        return Estimate(self.value * factor, self.error * abs(factor))


def _mean_se(samples: np.ndarray) -> Estimate:
    """Mean and standard error (std/√n) of independent estimates."""
    s = np.asarray(samples, dtype=float)
    return Estimate(float(s.mean()), float(s.std(ddof=1) / np.sqrt(s.size)))


def _jackknife_ratio(num: np.ndarray, den: np.ndarray) -> Estimate:
    """mean(num)/mean(den) and its leave-one-out jackknife standard error."""
    n = num.size
    loo = (num.sum() - num) / (den.sum() - den)
    return Estimate(
        float(num.mean() / den.mean()),
        float(np.sqrt((n - 1) / n * ((loo - loo.mean()) ** 2).sum())),
    )


@dataclass
class TransportResult:
    """Transport coefficients with standard errors, and the curves they were read from."""

    species: list[str]
    counts: dict[str, int]
    temperature: float
    volume: float
    n_estimates: int
    error_method: str
    lag_fs: np.ndarray
    msd: dict[str, np.ndarray]  # Å², per species, mean over estimates
    msd_sigma: np.ndarray  # <|Σ q Δr|²> / Σ q², Å²
    fit_fs: tuple[float, float]
    tracer_A2_ps: dict[str, Estimate]
    tracer_weighted_A2_ps: Estimate
    sigma_diffusion_A2_ps: Estimate
    einstein_S_m: Estimate
    nernst_einstein_S_m: Estimate
    haven: Estimate
    green_kubo_S_m: Estimate | None = None
    current_acf: np.ndarray | None = None  # <J(0)·J(t)>, e² Å²/fs², on lag_fs
    gk_running_S_m: np.ndarray | None = None  # running Green–Kubo integral, on lag_fs
    gk_window_fs: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def tracer_cm2_s(self) -> dict[str, Estimate]:
        """D* per species in cm²/s."""
        f = A2_FS_TO_CM2_S / A2_FS_TO_A2_PS
        return {s: e.scaled(f) for s, e in self.tracer_A2_ps.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (arrays as lists, conductivities also in mS/cm, D* in cm²/s)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, dict):
                value = {
                    k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in value.items()
                }
            out[key] = value
        out["tracer_cm2_s"] = {s: asdict(e) for s, e in self.tracer_cm2_s.items()}
        for key in ("einstein", "nernst_einstein", "green_kubo"):
            est = getattr(self, f"{key}_S_m")
            out[f"{key}_mS_cm"] = None if est is None else asdict(est.scaled(S_M_TO_MS_CM))
        return out


def _estimates(traj: Trajectory, n_blocks: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Independent (E, T', N, 3) segments: the replicas, or a single run's consecutive blocks."""
    pos, vel = traj.positions, traj.velocities
    if pos.shape[0] > 1:
        return pos, vel, f"std error over {pos.shape[0]} replicas"
    if n_blocks < 2:
        raise ValueError("one replica needs n_blocks ≥ 2 for an error bar")
    length = pos.shape[1] // n_blocks
    if length < 2:
        raise ValueError(f"{pos.shape[1]} frames cannot make {n_blocks} blocks")
    cut = lambda a: a[0, : n_blocks * length].reshape(n_blocks, length, *a.shape[2:])  # noqa: E731
    return cut(pos), None if vel is None else cut(vel), f"std error over {n_blocks} time blocks"


def _window(max_lag: int, fractions: tuple[float, float], what: str) -> slice:
    """The lag indices in [f0, f1]·max_lag; at least 3 of them."""
    f0, f1 = fractions
    if not 0 <= f0 < f1 <= 1:
        raise ValueError(
            f"{what} must be 0 ≤ start < end ≤ 1 (fractions of max lag), got {fractions}"
        )
    lo, hi = int(np.ceil(f0 * max_lag)), int(np.floor(f1 * max_lag))
    if hi - lo + 1 < 3:
        raise ValueError(
            f"{what} {fractions} of a {max_lag}-frame max lag holds {max(hi - lo + 1, 0)} lags; "
            "need ≥ 3: give more frames"
        )
    return slice(lo, hi + 1)


def transport(
    traj: Trajectory,
    fit_range: tuple[float, float] = (0.2, 0.8),
    max_lag_fraction: float = 0.5,
    gk_window: tuple[float, float] = (0.2, 0.8),
    n_blocks: int = 5,
) -> TransportResult:
    """Tracer/charge diffusion, Einstein, Nernst–Einstein and Green–Kubo σ and H_R of `traj`.

    Lags run to `max_lag_fraction` of each estimate's frames; `fit_range` and `gk_window` are
    fractions of that max lag. Errors: std/√R over replicas, or over `n_blocks` time blocks of
    a single replica.
    """
    pos, vel, method = _estimates(traj, n_blocks)
    n_frames = pos.shape[1]
    max_lag = int(max_lag_fraction * (n_frames - 1))
    if max_lag < 3:
        raise ValueError(f"{n_frames} frames per estimate are too few for a transport fit")
    fit = _window(max_lag, fit_range, "fit_range")
    q = traj.charges
    q2 = float((q**2).sum())
    if q2 == 0:
        raise ValueError("all charges are zero: no charge transport to analyse")
    kt = units.kB * traj.temperature  # eV
    lag = np.arange(max_lag + 1) * traj.dt_fs
    species = list(dict.fromkeys(traj.symbols))
    sym = np.array(traj.symbols)
    per_atom = np.stack([msd(p, max_lag) for p in pos])  # (E, lags, N)
    msd_sp = {s: per_atom[:, :, sym == s].mean(-1) for s in species}
    d_sp = {s: fit_slope(lag, m, fit) / 6 for s, m in msd_sp.items()}  # (E,) Å²/fs
    q2_sp = {s: float((q[sym == s] ** 2).sum()) for s in species}
    d_weighted = np.asarray(sum(q2_sp[s] * d_sp[s] for s in species) / q2)
    charge_msd = np.stack([msd(np.einsum("n,tnk->tk", q, p), max_lag) for p in pos])
    d_sigma = fit_slope(lag, charge_msd, fit) / (6 * q2)
    sigma_e = d_sigma * q2 / (traj.volume * kt) * SIGMA_TO_S_M
    sigma_ne = d_weighted * q2 / (traj.volume * kt) * SIGMA_TO_S_M
    to_ps = lambda d: _mean_se(d).scaled(A2_FS_TO_A2_PS)  # noqa: E731
    result = TransportResult(
        species=species,
        counts={s: int((sym == s).sum()) for s in species},
        temperature=traj.temperature,
        volume=traj.volume,
        n_estimates=pos.shape[0],
        error_method=method,
        lag_fs=lag,
        msd={s: m.mean(0) for s, m in msd_sp.items()},
        msd_sigma=charge_msd.mean(0) / q2,
        fit_fs=(float(lag[fit][0]), float(lag[fit][-1])),
        tracer_A2_ps={s: to_ps(d) for s, d in d_sp.items()},
        tracer_weighted_A2_ps=to_ps(d_weighted),
        sigma_diffusion_A2_ps=to_ps(d_sigma),
        einstein_S_m=_mean_se(sigma_e),
        nernst_einstein_S_m=_mean_se(sigma_ne),
        haven=_jackknife_ratio(d_weighted, d_sigma),
    )
    if vel is None:
        result.notes.append("no velocities: Green–Kubo skipped")
        return result
    gk = _window(max_lag, gk_window, "gk_window")
    acf = np.stack([_autocorrelation(np.einsum("n,tnk->tk", q, v), max_lag) for v in vel])
    running = traj.dt_fs * (np.cumsum(acf, axis=1) - 0.5 * acf[:, :1] - 0.5 * acf)
    running *= SIGMA_TO_S_M / (3 * traj.volume * kt)
    result.green_kubo_S_m = _mean_se(running[:, gk].mean(1))
    result.current_acf = acf.mean(0)
    result.gk_running_S_m = running.mean(0)
    result.gk_window_fs = (float(lag[gk][0]), float(lag[gk][-1]))
    return result
