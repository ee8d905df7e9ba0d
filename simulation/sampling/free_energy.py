"""Free-energy profiles from biased samples: MBAR (pymbar), WHAM, and a PNG plot.

Samples of window k were drawn with the bias V_k(s) added to the physical energy at one
temperature, so the reduced potentials differ only by the bias: u_k(x_n) = β V_k(s_n) and the
unbiased state has u(x_n) = 0. `decorrelate` keeps every g-th sample of each window
(pymbar's statistical inefficiency g), so the MBAR error bars hold for correlated MD.

```python
samples = [decorrelate(series) for series in result.samples]
mbar = mbar_profile(samples, restraint.matrix, edges, temperature_K=300)
wham = wham_profile(samples, restraint.matrix, edges, temperature_K=300)
plot_profiles([mbar, wham], "profile.png", reference=(x, exact_F))
```
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from ase import units
from scipy.optimize import minimize
from scipy.special import logsumexp

from mlipserve.simulation.plotting import new_figure, save

BiasMatrix = Callable[[np.ndarray], np.ndarray]


def quiet_pymbar() -> ModuleType:
    """Import pymbar without its banner on stdout (the JAX notice)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import pymbar
        import pymbar.timeseries
    return pymbar


@dataclass
class FreeEnergyProfile:
    """F(s) on bins: `centers` (B,), `free_energy` (B,) eV, 0 at the reference, `error` (B,) eV.

    The reference is the lowest bin unless one was chosen; errors are one standard deviation
    of F(bin) − F(reference); bins without samples are NaN.
    """

    centers: np.ndarray
    free_energy: np.ndarray
    error: np.ndarray
    method: str
    temperature_K: float
    cv_name: str = "s"

    @property
    def reference_index(self) -> int:
        """Index of the reference bin (F = 0 and zero error there)."""
        at_zero = np.flatnonzero((self.free_energy == 0) & (self.error == 0))
        return int(at_zero[0]) if len(at_zero) else int(np.nanargmin(self.free_energy))

    def at(self, s: float) -> tuple[float, float]:
        """F and its error at the bin holding s."""
        i = int(np.argmin(np.abs(self.centers - s)))
        return float(self.free_energy[i]), float(self.error[i])

    def barrier(self, window: tuple[float, float] | None = None) -> tuple[float, float]:
        """Highest F within `window` (the whole range if None) above the reference, ± error."""
        inside = np.isfinite(self.free_energy)
        if window is not None:
            inside &= (self.centers >= window[0]) & (self.centers <= window[1])
        if not inside.any():
            raise ValueError(f"no bin with samples inside the window {window}")
        i = int(np.flatnonzero(inside)[np.nanargmax(self.free_energy[inside])])
        return float(self.free_energy[i]), float(self.error[i])

    def plot(
        self,
        path: str | Path,
        reference: tuple[np.ndarray, np.ndarray] | None = None,
        title: str | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write F(s) with error bars (and a reference curve) as a PNG."""
        return plot_profiles([self], path, reference, title, provenance)


def plot_profiles(
    profiles: Sequence[FreeEnergyProfile],
    path: str | Path,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
    title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Several profiles (± 1σ bands) and an optional reference (s, F) curve in one PNG."""
    fig, ax = new_figure(5.5, 4.0)
    if reference is not None:
        ax.plot(reference[0], reference[1], color="k", lw=1.2, label="reference")
    for i, prof in enumerate(profiles):
        ax.errorbar(
            prof.centers,
            prof.free_energy,
            yerr=prof.error,
            fmt="o-",
            ms=3,
            lw=1,
            capsize=2,
            color=f"C{i}",
            label=prof.method,
        )
    if profiles:
        ax.set_xlabel(profiles[0].cv_name)
        ax.set_title(f"free energy at {profiles[0].temperature_K:g} K", fontsize=9)
    ax.set_ylabel("F (eV)")
    ax.legend(loc="best")
    return save(fig, path, title, provenance)


def decorrelate(series: np.ndarray) -> np.ndarray:
    """Uncorrelated subsample of a time series: every g-th value, g from pymbar.timeseries."""
    series = np.asarray(series, dtype=float)
    if series.ndim != 1 or len(series) < 4:
        raise ValueError(f"decorrelate needs a 1D time series of ≥ 4 samples, got {series.shape}")
    if np.ptp(series) == 0:
        return series[:1]
    timeseries = quiet_pymbar().timeseries
    return series[timeseries.subsample_correlated_data(series)]


def check_bins(bin_edges: np.ndarray) -> np.ndarray:
    """Raise ValueError unless the edges are increasing and evenly spaced."""
    edges = np.asarray(bin_edges, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bin_edges must be at least two increasing values")
    if not np.allclose(np.diff(edges), edges[1] - edges[0], rtol=1e-6):
        raise ValueError("bin_edges must be evenly spaced")
    return edges


def stack_samples(samples: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All samples in one array x_n and the count per window N_k."""
    samples = [np.asarray(x, dtype=float).ravel() for x in samples]
    if not samples or any(len(x) == 0 for x in samples):
        raise ValueError("every window needs at least one sample")
    return np.concatenate(samples), np.array([len(x) for x in samples])


def reduced_bias(bias: BiasMatrix, x_n: np.ndarray, n_windows: int, beta: float) -> np.ndarray:
    """u_kn = β V_k(x_n), checked to be (K, N)."""
    u_kn = beta * np.asarray(bias(x_n), dtype=float)
    if u_kn.shape != (n_windows, len(x_n)):
        raise ValueError(f"bias matrix has shape {u_kn.shape}, expected {(n_windows, len(x_n))}")
    return u_kn


def reference_bin(edges: np.ndarray, reference: float | None) -> int | None:
    """Index of the bin holding the reference CV value (None: the lowest bin is used)."""
    if reference is None:
        return None
    i = int(np.searchsorted(edges, reference, side="right")) - 1
    if not 0 <= i < len(edges) - 1:
        raise ValueError(f"reference {reference} lies outside the bins [{edges[0]}, {edges[-1]}]")
    return i


def mbar_profile(
    samples: Sequence[np.ndarray],
    bias: BiasMatrix,
    bin_edges: np.ndarray,
    temperature_K: float,
    cv_name: str = "s",
    reference: float | None = None,
) -> FreeEnergyProfile:
    """MBAR histogram free energy (pymbar's `FES`), F_b = −k_BT ln(p_b/Δs), analytical errors.

    Args:
        samples: uncorrelated CV samples of each window k (see `decorrelate`).
        bias: `bias(x)` → V_k(x_n), (K, N) in eV (e.g. `HarmonicRestraint.matrix`).
        bin_edges: evenly spaced edges in CV units.
        temperature_K: the temperature all windows ran at.
        reference: CV value whose bin is F = 0 (and the errors' reference); default lowest bin.
    """
    edges = check_bins(bin_edges)
    pymbar = quiet_pymbar()
    kT = units.kB * temperature_K
    x_n, n_k = stack_samples(samples)
    u_kn = reduced_bias(bias, x_n, len(n_k), 1.0 / kT)
    fes = pymbar.FES(u_kn, n_k, verbose=False)  # timings=False trips pymbar 4.0.3
    fes.generate_fes(
        np.zeros(len(x_n)), x_n, fes_type="histogram", histogram_parameters={"bin_edges": edges}
    )
    centers = 0.5 * (edges[1:] + edges[:-1])
    filled = np.histogram(x_n, bins=edges)[0] > 0  # pymbar fails on bins without samples
    ref = reference_bin(edges, reference)
    if ref is not None and not filled[ref]:
        raise ValueError(f"the reference bin at {reference} holds no samples")
    res = fes.get_fes(
        centers[filled],
        reference_point="from-lowest" if ref is None else "from-specified",
        fes_reference=None if ref is None else centers[ref],
        uncertainty_method="analytical",
    )
    free, error = np.full(len(centers), np.nan), np.full(len(centers), np.nan)
    free[filled], error[filled] = kT * res["f_i"], kT * res["df_i"]
    return FreeEnergyProfile(centers, free, error, "MBAR", float(temperature_K), cv_name)


def wham_free_energies(
    counts: np.ndarray, n_k: np.ndarray, u_kb: np.ndarray, guess: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """WHAM's ln p_b (unnormalised) and window free energies g, by Zhu & Hummer's likelihood.

    Minimises the convex A(g) = Σ_b n_b ln Σ_k N_k e^{g_k − u_kb} − Σ_k N_k g_k over the
    reduced window free energies g (g_0 = 0), then ln p_b = ln n_b − ln Σ_k N_k e^{g_k − u_kb}.
    """
    log_n = np.log(n_k.astype(float))
    seen = counts > 0
    total = counts.sum()

    def objective(g_rest: np.ndarray) -> tuple[float, np.ndarray]:
        g = np.concatenate([[0.0], g_rest])
        a = log_n[:, None] + g[:, None] - u_kb[:, seen]
        lse = logsumexp(a, axis=0)
        value = counts[seen] @ lse - n_k @ g
        grad = (np.exp(a - lse) * counts[seen]).sum(1) - n_k
        return value / total, grad[1:] / total

    start = np.zeros(len(n_k) - 1) if guess is None else guess[1:]
    fit = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 10000},
    )
    g = np.concatenate([[0.0], fit.x])
    with np.errstate(divide="ignore"):
        return np.log(counts) - logsumexp(log_n[:, None] + g[:, None] - u_kb, axis=0), g


def wham_profile(
    samples: Sequence[np.ndarray],
    bias: BiasMatrix,
    bin_edges: np.ndarray,
    temperature_K: float,
    cv_name: str = "s",
    n_bootstrap: int = 100,
    seed: int = 0,
    reference: float | None = None,
    refine: int = 5,
) -> FreeEnergyProfile:
    """Histogram WHAM, errors by bootstrap of each window's samples.

    WHAM takes each window's bias at the centre of a bin; it solves on bins `refine` times
    finer than asked (that error falls as the bin width squared) and sums their
    probabilities into the requested bins. Samples outside the bins are left out.
    F_b = −k_BT ln p_b relative to the
    bin holding `reference` (default: the lowest bin); the error bar is the standard
    deviation of F_b − F_ref over `n_bootstrap` resamplings of each window (samples must be
    uncorrelated, see `decorrelate`).
    """
    edges = check_bins(bin_edges)
    if refine < 1:
        raise ValueError(f"refine must be a positive integer, got {refine}")
    kT = units.kB * temperature_K
    centers = 0.5 * (edges[1:] + edges[:-1])
    fine = np.linspace(edges[0], edges[-1], (len(edges) - 1) * refine + 1)
    _, n_k = stack_samples(samples)
    u_kb = reduced_bias(bias, 0.5 * (fine[1:] + fine[:-1]), len(n_k), 1.0 / kT)

    def estimate(windows: Sequence[np.ndarray], guess: np.ndarray | None = None):
        # WHAM normalises each window over the histogram: samples outside it do not count.
        inside = [w[(w >= edges[0]) & (w <= edges[-1])] for w in windows]
        counts = np.histogram(np.concatenate(inside), bins=fine)[0].astype(float)
        n_in = np.array([len(w) for w in inside])
        keep = n_in > 0
        g_keep = None if guess is None else guess[keep] - guess[keep][0]
        log_p, g = wham_free_energies(counts, n_in[keep], u_kb[keep], g_keep)
        g_all = np.zeros(len(windows))
        g_all[keep] = g
        return -kT * logsumexp(log_p.reshape(-1, refine), axis=1), g_all

    free, g = estimate([np.asarray(x, float).ravel() for x in samples])
    free[~np.isfinite(free)] = np.nan
    ref = reference_bin(edges, reference)
    ref = int(np.nanargmin(free)) if ref is None else ref
    if np.isnan(free[ref]):
        raise ValueError(f"the reference bin at {reference} holds no samples")
    free -= free[ref]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_bootstrap):
        f, _ = estimate([rng.choice(np.ravel(x), size=len(np.ravel(x))) for x in samples], g)
        boots.append(f - f[ref])
    error = np.full_like(free, np.nan)
    if boots:
        stack = np.array(boots)
        stack[~np.isfinite(stack)] = np.nan
        enough = np.isfinite(stack).sum(0) > 1
        error[enough] = np.nanstd(stack[:, enough], axis=0)
    error[np.isnan(free)] = np.nan
    return FreeEnergyProfile(centers, free, error, "WHAM", float(temperature_K), cv_name)
