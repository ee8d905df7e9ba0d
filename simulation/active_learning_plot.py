"""The active-learning figure: σ per step taken, the trust thresholds and the run's events."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlipserve.simulation.plotting import new_figure, save

MARKERS = {
    "candidate": ("o", "tab:orange"),
    "untrusted": ("X", "tab:red"),
    "retrain": ("s", "tab:purple"),
    "promoted": ("*", "tab:green"),
    "rejected": ("v", "tab:gray"),
    "resumed": (">", "tab:blue"),
    "stopped": ("x", "k"),
}


def plot_trace(
    trace: dict,
    events: list[dict],
    trust_lo: float,
    trust_hi: float,
    path: str | Path,
    title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Max force std (max over replicas) vs step taken, the two thresholds and the events."""
    it = np.asarray(trace["iteration"])
    sigma = np.array([max(s) for s in trace["sigma"]])
    fig, ax = new_figure(9, 4)
    ax.plot(it, sigma, lw=1, color="0.3", label="max force std")
    ax.axhline(trust_lo, ls="--", color="tab:orange", label=f"trust_lo {trust_lo:g}")
    ax.axhline(trust_hi, ls="--", color="tab:red", label=f"trust_hi {trust_hi:g}")
    top = max(float(sigma.max(initial=trust_hi)), trust_hi) * 1.15
    versions = trace["version"]
    for i, version in enumerate(versions):  # name each served version where it starts
        if i == 0 or version != versions[i - 1]:
            ax.text(it[i], top * 1.02, f" {version}", fontsize=8, va="bottom")
    lifts = {"retrain": 0.97, "promoted": 0.92, "rejected": 0.92, "resumed": 0.87, "stopped": 0.97}
    for kind, (marker, color) in MARKERS.items():
        picked = [e for e in events if e["kind"] == kind]
        if not picked:
            continue
        ys = [
            e["sigma"] if kind in ("candidate", "untrusted") else top * lifts[kind] for e in picked
        ]
        ax.scatter(
            [e["iteration"] for e in picked],
            ys,
            marker=marker,
            color=color,
            zorder=3,
            s=12 if kind == "candidate" else 40,
            label=kind,
        )
        if kind == "resumed":
            for e in picked:
                ax.axvline(e["iteration"], color=color, lw=0.8, alpha=0.5)
    ax.set_xlabel("MD steps taken (rejected ones included)")
    ax.set_ylabel("max per-atom force std (eV/Å)")
    ax.set_ylim(0, top * 1.12)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(fig, path, title, provenance)
