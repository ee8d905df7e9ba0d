"""Test-split metrics and plots of a trained ensemble."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from scipy.stats import spearmanr

from mlipserve.server.models.families import native_potential
from mlipserve.server.models.painn import PaiNN
from mlipserve.server.serving.local import LocalProvider


def as_provider(module: PaiNN) -> LocalProvider:
    """The module behind the serving path (float64, CPU) for evaluation."""
    return LocalProvider(native_potential(module, "candidate", "eval"))


def evaluate_split(module: PaiNN, structures: Sequence[Atoms]) -> dict:
    """Energy (meV/atom), force (meV/Å), stress (meV/Å³) MAE and force-error calibration."""
    if not structures:
        return {}
    has_stress = all("stress" in a.calc.results and a.cell.rank == 3 for a in structures)
    props = ["energy", "forces", "uncertainty"] + (["stress"] if has_stress else [])
    results = as_provider(module).evaluate(list(structures), props)
    e_err, f_err, s_err, max_std, max_err = [], [], [], [], []
    for atoms, res in zip(structures, results):
        ref = atoms.calc.results
        e_err.append(abs(res["energy"] - ref["energy"]) / len(atoms))
        diff = res["forces"] - ref["forces"]
        f_err.append(np.abs(diff).ravel())
        max_err.append(np.linalg.norm(diff, axis=1).max())
        max_std.append(res["max_force_std"])
        if has_stress:
            s_err.append(np.abs(res["stress"] - ref["stress"]))
    metrics = {
        "energy_mae_mev_per_atom": 1e3 * float(np.mean(e_err)),
        "force_mae_mev_per_A": 1e3 * float(np.mean(np.concatenate(f_err))),
        "calibration_spearman": float(spearmanr(max_std, max_err).statistic)
        if len(structures) > 2
        else None,
    }
    if has_stress:
        metrics["stress_mae_mev_per_A3"] = 1e3 * float(np.mean(s_err))
    return metrics


def write_plots(module: PaiNN, structures: Sequence[Atoms], history: list[dict], out: Path) -> dict:
    """Learning curve and force parity (with ensemble std error bars) PNGs."""
    from matplotlib.figure import Figure  # no pyplot: the global backend stays the caller's

    files = {}
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    ax.semilogy([h["train"] for h in history], label="train")
    ax.semilogy([h["val"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (meV² units)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=120)
    files["learning_curve"] = str(out / "learning_curve.png")
    if structures:
        res = as_provider(module).evaluate(list(structures), ["energy", "forces", "uncertainty"])
        ref = np.concatenate([a.calc.results["forces"] for a in structures]).ravel()
        pred = np.concatenate([r["forces"] for r in res]).ravel()
        std = np.repeat(np.concatenate([r["forces_std"] for r in res]), 3)
        fig = Figure(figsize=(4.5, 4.5))
        ax = fig.add_subplot()
        ax.errorbar(ref, pred, yerr=std, fmt=".", ms=2, elinewidth=0.5, alpha=0.6)
        lim = [min(ref.min(), pred.min()), max(ref.max(), pred.max())]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_xlabel("reference force (eV/Å)")
        ax.set_ylabel("predicted force (eV/Å)")
        ax.set_title("test split, error bars: ensemble std")
        fig.tight_layout()
        fig.savefig(out / "parity_forces.png", dpi=120)
        files["parity"] = str(out / "parity_forces.png")
    return files
