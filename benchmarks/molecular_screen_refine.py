"""Benchmark: MLIP-screen → xTB-refine CI-NEB of proton transfers on `default-molecular`.

Four candidate pathways (`server/training/proton_bands.py`: malonaldehyde, formic acid dimer,
cyclic water trimer and tetramer) screened on the shipped ensemble (in process, float64; ends
relaxed on it), ranked by barrier with bands the ensemble distrusts (any image's max force
std above the model's trust_hi) last, the top 2 refined on GFN2-xTB (tblite). Against: every
candidate's barrier by ASE's CI-NEB + FIRE on xTB from scratch (ends relaxed by BFGS), its
xTB single points beside the refine's. Writes benchmarks/results/molecular_screen_refine.json
and .png (the bands' energy profiles). Run: `python -m benchmarks.molecular_screen_refine`.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
from scipy.stats import spearmanr

from benchmarks.common import RESULTS, write_result
from mlipserve.server.models.builtin import SHIPPED, load_builtin
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore
from mlipserve.server.training import proton_bands as pb
from mlipserve.simulation.plotting import new_panels, save
from mlipserve.simulation.progress import ProgressBar
from mlipserve.simulation.provenance import provenance

NAMES = pb.CANDIDATES
TOP_K = 2


def plot(summary: dict, path, record: dict) -> None:
    """Energy profile of each band: model screen, xTB refine, xTB from scratch."""
    fig, axes = new_panels(len(NAMES), 3.2 * len(NAMES), 3.4)
    for ax, name in zip(axes, NAMES):
        row = summary["candidates"][name]
        model = np.array(row["model_profile_eV"])
        x = np.linspace(0, 1, len(model))
        ax.plot(x, model, "o-", label="model (screen)")
        if "refined_profile_eV" in row:
            ax.plot(x, row["refined_profile_eV"], "s--", mfc="none", label="xTB (refine)")
        scratch = row["xtb_scratch_profile_eV"]
        ax.plot(np.linspace(0, 1, len(scratch)), scratch, "k:", label="xTB (from scratch)")
        trust = "" if row["trusted"] else ", untrusted"
        ax.set_title(f"{name} (rank {row['rank']}{trust})", fontsize=8)
        ax.set_xlabel("image (fraction of band)")
        ax.set_ylim(min(-0.1, 1.1 * model.min()), 1.2 * max(max(scratch), model.max()) + 0.05)
    axes[0].set_ylabel("E − E(reactant) [eV]")
    axes[0].legend(loc="best", fontsize=7)
    save(fig, path, "proton transfers: default-molecular screen vs GFN2-xTB", record)


def main() -> dict:
    """Screen and refine, the from-scratch xTB CI-NEBs, the comparison; JSON + PNG."""
    meta = ModelStore(SHIPPED).metadata("default-molecular")
    trust = float(meta["trust_hi"])
    model = LocalProvider(load_builtin("default-molecular:float64"))
    start = time.monotonic()
    report, summary = pb.screen_refine(model, NAMES, top_k=TOP_K, trust=trust, progress=True)
    screen_seconds = time.monotonic() - start
    scratch = {}
    with ProgressBar(True, "xTB CI-NEB from scratch", len(NAMES)) as bar:
        for name in NAMES:
            scratch[name] = pb.xtb_neb(name)
            bar.advance()
    rows = summary["candidates"]
    for name in NAMES:
        rows[name] |= {
            "xtb_scratch_barrier_eV": scratch[name]["barrier_eV"],
            "xtb_scratch_converged": scratch[name]["converged"],
            "xtb_scratch_calls": scratch[name]["xtb_calls"],
            "xtb_scratch_profile_eV": scratch[name]["energies_eV"],
        }
        if "refined_barrier_eV" in rows[name]:
            rows[name]["refined_minus_scratch_eV"] = (
                rows[name]["refined_barrier_eV"] - scratch[name]["barrier_eV"]
            )
    xtb_order = sorted(NAMES, key=lambda n: scratch[n]["barrier_eV"])
    model_order = sorted(NAMES, key=lambda n: rows[n]["rank"])
    plain_order = sorted(NAMES, key=lambda n: rows[n]["model_barrier_eV"])
    refined = [n for n in NAMES if "refined_barrier_eV" in rows[n]]
    # the model's hole: xTB at the screen's lowest-lying image of the untrusted bands
    xtb = pb.xtb_provider()
    holes = {}
    for i in report.untrusted:
        result = report.screened[i]
        low = int(np.argmin(result.energies))
        ends = xtb.evaluate([result.images[0], result.images[low]])
        holes[NAMES[i]] = {
            "model_eV": float(result.energies[low] - result.energies[0]),
            "xtb_eV": ends[1]["energy"] - ends[0]["energy"],
            "min_OO_A": float(
                min(
                    result.images[low].get_distance(a, b)
                    for a in range(len(result.images[low]))
                    for b in range(a)
                    if result.images[low].numbers[a] == result.images[low].numbers[b] == 8
                )
            ),
        }
    payload = {
        "machine_note": "2-core CPU VM, no GPU (shared with other jobs)",
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "model": f"default-molecular {meta['version']} (float64, in process)",
        "reference": "GFN2-xTB (tblite ASE calculator, defaults)",
        "settings": {"n_images": 5, "fmax_eV_per_A": 0.03, "k": 0.1, "top_k": TOP_K},
        "trust_max_force_std_eV_per_A": trust,
        "candidates": rows,
        "xtb_order": xtb_order,
        "model_order_trusted_first": model_order,
        "model_order_by_barrier_alone": plain_order,
        "spearman_model_vs_xtb_trusted_first": float(
            spearmanr([rows[n]["rank"] for n in NAMES], [xtb_order.index(n) for n in NAMES])[0]
        ),
        "top_k_agree_with_xtb": set(model_order[:TOP_K]) == set(xtb_order[:TOP_K]),
        "untrusted": [NAMES[i] for i in report.untrusted],
        "model_holes": holes,
        "xtb_calls_refine_top_k": summary["refine_xtb_calls"],
        "xtb_calls_scratch_top_k": int(sum(scratch[n]["xtb_calls"] for n in refined)),
        "xtb_calls_scratch_all": int(sum(scratch[n]["xtb_calls"] for n in NAMES)),
        "screen_and_refine_seconds": screen_seconds,
    }
    payload["xtb_call_ratio_scratch_over_refine"] = (
        payload["xtb_calls_scratch_top_k"] / payload["xtb_calls_refine_top_k"]
    )
    plot(payload, RESULTS / "molecular_screen_refine.png", provenance(model))
    write_result("molecular_screen_refine", payload)
    return payload


if __name__ == "__main__":
    out = main()
    for name, row in out["candidates"].items():
        print(
            f"{name:15s} rank {row['rank']} trusted {row['trusted']!s:5s} "
            f"model {row['model_barrier_eV']:.3f}  "
            f"refined {row.get('refined_barrier_eV', np.nan):.3f}"
            f"  xTB {row['xtb_scratch_barrier_eV']:.3f} eV"
        )
    print(
        f"xTB single points: refine {out['xtb_calls_refine_top_k']}, "
        f"from scratch {out['xtb_calls_scratch_top_k']} (top {TOP_K})"
    )
