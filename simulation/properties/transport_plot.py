"""The transport figure: MSDs with the fit regime, the Green–Kubo integral, D* and H_R."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlipserve.simulation.plotting import new_panels, save
from mlipserve.simulation.properties.transport import TransportResult
from mlipserve.simulation.provenance import system_title


def plot_transport(
    result: TransportResult,
    path: str | Path,
    provenance: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> Path:
    """One PNG, three panels: MSDs and fits, current ACF and running σ_GK, D* and H_R."""
    fig, (ax_msd, ax_gk, ax_d) = new_panels(3, 15, 4.5)
    t_ps = result.lag_fs / 1e3
    fit = (t_ps >= result.fit_fs[0] / 1e3) & (t_ps <= result.fit_fs[1] / 1e3)
    for s in result.species:
        (line,) = ax_msd.plot(t_ps, result.msd[s], lw=1.2, label=f"{s} (×{result.counts[s]})")
        _fit_line(ax_msd, t_ps, result.msd[s], fit, line.get_color())
    ax_msd.plot(t_ps, result.msd_sigma, lw=1.2, color="k", label="charge  <|ΣqΔr|²>/Σq²")
    _fit_line(ax_msd, t_ps, result.msd_sigma, fit, "k")
    ax_msd.axvspan(*(np.array(result.fit_fs) / 1e3), color="0.85", zorder=0, label="fit regime")
    ax_msd.set(xlabel="lag (ps)", ylabel="MSD (Å²)", title="mean-squared displacements")
    ax_msd.legend(fontsize=7)

    if result.current_acf is None or result.gk_running_S_m is None or result.gk_window_fs is None:
        ax_gk.text(0.5, 0.5, "no velocities:\nGreen–Kubo skipped", ha="center", va="center")
        ax_gk.set_axis_off()
    else:
        ax_gk.plot(t_ps, result.current_acf, color="tab:blue", lw=1)
        ax_gk.axhline(0, color="0.6", lw=0.6)
        ax_gk.set(xlabel="lag (ps)", ylabel="<J(0)·J(t)> (e² Å²/fs²)", title="Green–Kubo")
        ax_gk.yaxis.label.set_color("tab:blue")
        twin = ax_gk.twinx()
        twin.axvspan(*(np.array(result.gk_window_fs) / 1e3), color="0.85", zorder=0)
        twin.plot(t_ps, result.gk_running_S_m, color="tab:red", lw=1.2, label="running σ_GK")
        for est, style, name in (
            (result.green_kubo_S_m, "-", "GK plateau"),
            (result.einstein_S_m, "--", "Einstein"),
        ):
            if est is not None:
                label = f"{name} {est.value:.3g}±{est.error:.2g} S/m"
                twin.axhline(est.value, color="0.3", ls=style, lw=0.8, label=label)
        twin.legend(fontsize=7, loc="lower right")
        twin.set_ylabel("running σ_GK (S/m)", color="tab:red")

    labels = [*result.species, "D*_w", "D_σ"]
    ests = [*(result.tracer_A2_ps[s] for s in result.species)]
    ests += [result.tracer_weighted_A2_ps, result.sigma_diffusion_A2_ps]
    x = np.arange(len(labels))
    ax_d.errorbar(x, [e.value for e in ests], [e.error for e in ests], fmt="o", capsize=3)
    ax_d.set_xticks(list(x) + [len(labels) + 0.5], labels + ["H_R"])
    ax_d.set(ylabel="D (Å²/ps)", title=f"diffusion ({result.error_method})")
    twin_h = ax_d.twinx()
    twin_h.errorbar(
        [len(labels) + 0.5], [result.haven.value], [result.haven.error], fmt="s", color="tab:red"
    )
    twin_h.axhline(1.0, color="tab:red", ls=":", lw=0.8)
    twin_h.set_ylabel(f"Haven ratio H_R = {result.haven.value:.3g}±{result.haven.error:.2g}")
    if title is None:
        name = " ".join(f"{s}{result.counts[s]}" for s in result.species)
        title = system_title(f"{name} at {result.temperature:g} K", provenance, "transport")
    return save(fig, path, title, provenance)


def _fit_line(ax: Any, t: np.ndarray, y: np.ndarray, fit: np.ndarray, color: Any) -> None:
    """The least-squares line over the fit regime, dashed across the whole lag range."""
    slope, intercept = np.polyfit(t[fit], y[fit], 1)
    ax.plot(t, slope * t + intercept, ls="--", lw=0.8, color=color)
