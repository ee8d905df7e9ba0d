"""Benchmark (chemistry check): PIMD of liquid water on `default-molecular`, bead convergence.

A periodic box of 8 waters at 1 g/cm³ (`molecular_frames.water_box`, the model's own training
geometry), 300 K, PILE-L (centroid τ = 20 fs, internal modes critically damped), BAOAB with
dt = 0.5 fs, every bead in one server call per step. P = 1 (classical) is run first, and its
last frame starts P = 8, 16 and 32 (each then equilibrated again before production).
Reported per P: the centroid-virial quantum kinetic energy per atom averaged over H atoms and
over O atoms (`kinetic_centroid_virial_by_species`), with block-average standard errors;
at P = 1 also the momenta's kinetic energy per H and per O (the estimator is 3/2 kT by
construction there, so the momenta are the non-trivial classical check). Literature for
liquid water with converged P: H ≈ 140–145 meV, O ≈ 55–60 meV; 3/2 kT = 38.8 meV at 300 K.
Converging means |KE_H(32) − KE_H(16)| ≪ |KE_H(16) − KE_H(8)|.
Outputs: benchmarks/results/water_pimd.json and water_pimd.png (KE vs 1/P).
Run: `OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.water_pimd` (≈ 25 min on one core;
`--scale 0.1` for a quick try).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from ase import Atoms, units

from benchmarks.common import RESULTS, ChildServer, write_result
from mlipserve.server.training.molecular_frames import water_box
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.pimd import PILE_L, PathIntegralMD, PIMDIntegrator, RingPolymerState
from mlipserve.simulation.pimd.estimators import kinetic_centroid_virial_by_species
from mlipserve.simulation.plotting import new_panels, save
from mlipserve.simulation.provenance import provenance
from tests.simulation.pimd.harmonic_reference import block_mean

MODEL, TEMPERATURE, DT_FS, TAU_FS, BLOCKS = "default-molecular", 300.0, 0.5, 20.0, 10
# beads: (equilibration steps, production steps) at --scale 1
PLAN = {1: (400, 2400), 8: (200, 1400), 16: (200, 1000), 32: (150, 700)}
LITERATURE_MEV = {"H": (140.0, 145.0), "O": (55.0, 60.0)}
CLASSICAL_EV = 1.5 * units.kB * TEMPERATURE


class Recorder:
    """Per step: KE_cv per H / per O atom, momenta KE per H / O (bead-averaged), O–H range."""

    def __init__(self, pimd: PathIntegralMD) -> None:
        self.pimd = pimd
        self.rows: dict[str, list[float]] = {
            k: [] for k in ("cv_H", "cv_O", "mom_H", "mom_O", "potential", "oh_min", "oh_max")
        }

    def __call__(self) -> None:
        """Append the current state's values (replica 0)."""
        s = self.pimd.state
        for symbol, values in kinetic_centroid_virial_by_species(s).items():
            self.rows[f"cv_{symbol}"].append(float(values[0]))
        per_atom = 0.5 * np.einsum("pnd,pnd->n", s.momenta[0], s.momenta[0]) / s.masses
        per_atom /= s.n_beads**2  # beads carry k_B·P·T each: back to the physical T
        for symbol, z in (("H", 1), ("O", 8)):
            self.rows[f"mom_{symbol}"].append(float(per_atom[s.numbers == z].mean()))
        self.rows["potential"].append(float(s.energies[0].mean()))
        oh = oh_lengths(s.positions[0], s.numbers, s.cell[0])
        self.rows["oh_min"].append(float(oh.min()))
        self.rows["oh_max"].append(float(oh.max()))


def oh_lengths(beads: np.ndarray, numbers: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Intramolecular O–H distances of every bead (atoms ordered O, H, H per molecule), Å."""
    o = np.flatnonzero(numbers == 8)
    d = beads[:, np.concatenate([o + 1, o + 2])] - beads[:, np.concatenate([o, o])]
    side = np.diag(cell)
    d -= side * np.round(d / side)
    return np.linalg.norm(d, axis=-1)


def run_beads(
    provider: RemoteProvider, atoms: Atoms, beads: int, plan: tuple[int, int], seed: int
) -> tuple[dict, Atoms]:
    """Equilibrate and sample one bead number; its averages and the last centroid."""
    state = RingPolymerState.from_atoms(atoms, beads, TEMPERATURE, seeds=seed)
    integrator = PIMDIntegrator(DT_FS * units.fs, PILE_L(TAU_FS * units.fs))
    pimd = PathIntegralMD(provider, state, integrator)
    equilibration, production = plan
    t0 = time.perf_counter()
    pimd.run(equilibration, progress=True)
    record = Recorder(pimd)
    pimd.attach(record, 1)
    t1 = time.perf_counter()
    pimd.run(production, progress=True)
    t2 = time.perf_counter()
    rows = {k: np.array(v) for k, v in record.rows.items()}
    row: dict = {
        "beads": beads,
        "equilibration_steps": equilibration,
        "production_steps": production,
        "production_fs": production * DT_FS,
        "wall_s": t2 - t0,
        "s_per_step": (t2 - t1) / max(production, 1),
    }
    for symbol in ("H", "O"):
        mean, err = block_mean(rows[f"cv_{symbol}"], BLOCKS)
        row[f"KE_{symbol}_meV"] = 1e3 * mean
        row[f"KE_{symbol}_err_meV"] = 1e3 * err
        row[f"KE_{symbol}_over_classical"] = mean / CLASSICAL_EV
        if beads == 1:
            mean, err = block_mean(rows[f"mom_{symbol}"], BLOCKS)
            row[f"momenta_KE_{symbol}_meV"] = 1e3 * mean
            row[f"momenta_KE_{symbol}_err_meV"] = 1e3 * err
    row["potential_eV_per_molecule"] = float(rows["potential"].mean()) / (len(atoms) // 3)
    row["oh_range_A"] = [float(rows["oh_min"].min()), float(rows["oh_max"].max())]
    last = pimd.state.to_atoms(0)
    last.set_momenta(np.zeros((len(last), 3)))
    return row, last


def plot(rows: list[dict], prov: dict, waters: int) -> None:
    """KE_H and KE_O per atom vs 1/P, with 3/2 kT and the literature range marked."""
    fig, axes = new_panels(2, 9.0, 3.8)
    quantum = [r for r in rows if r["beads"] > 1]
    x = np.array([1.0 / r["beads"] for r in quantum])
    for ax, symbol in zip(axes, ("H", "O")):
        y = [r[f"KE_{symbol}_meV"] for r in quantum]
        e = [r[f"KE_{symbol}_err_meV"] for r in quantum]
        ax.errorbar(x, y, yerr=e, fmt="o-", capsize=3, label="PIMD, centroid virial")
        for xi, yi, r in zip(x, y, quantum):
            ax.annotate(f"P={r['beads']}", (xi, yi), textcoords="offset points", xytext=(5, -12))
        lo, hi = LITERATURE_MEV[symbol]
        ax.axhspan(lo, hi, color="0.85", label="liquid water, literature (converged P)")
        ax.axhline(CLASSICAL_EV * 1e3, color="k", ls="--", label="classical 3/2 kT")
        ax.set_xlabel("1 / P")
        ax.set_ylabel(f"KE per {symbol} atom (meV)")
        ax.set_xlim(0, max(x) * 1.35)
        ax.set_title(f"{symbol}: quantum kinetic energy")
    axes[0].legend(fontsize=7, loc="center right")
    title = f"PIMD of (H2O){waters}, periodic, 300 K, on {MODEL}"
    save(fig, RESULTS / "water_pimd.png", title=title, provenance=prov)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waters", type=int, default=8)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every step count")
    parser.add_argument("--beads", default="1,8,16,32", help="bead numbers; 1 first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    beads = [int(b) for b in args.beads.split(",")]
    plan = {p: tuple(max(10, round(n * args.scale)) for n in PLAN.get(p, PLAN[32])) for p in beads}
    atoms = water_box(np.random.default_rng(args.seed), args.waters)
    rows = []
    t0 = time.perf_counter()
    with ChildServer("--models", MODEL) as server:
        provider = RemoteProvider(server.address, MODEL)
        try:
            prov = provenance(provider)
            start = atoms
            for p in beads:
                row, last = run_beads(provider, start, p, plan[p], args.seed + p)
                if p == 1:
                    start = last  # the classical run equilibrates the box for the others
                rows.append(row)
                print(
                    f"P={p:3d}: KE_H {row['KE_H_meV']:.1f} ± {row['KE_H_err_meV']:.1f} meV, "
                    f"KE_O {row['KE_O_meV']:.1f} ± {row['KE_O_err_meV']:.1f} meV "
                    f"({row['production_steps']} steps, {row['s_per_step'] * 1e3:.0f} ms/step)"
                )
        finally:
            provider.close()
    by_p = {r["beads"]: r for r in rows}
    changes = {}
    for a, b in ((8, 16), (16, 32)):
        if a in by_p and b in by_p:
            for symbol in ("H", "O"):
                diff = by_p[b][f"KE_{symbol}_meV"] - by_p[a][f"KE_{symbol}_meV"]
                err = np.hypot(by_p[a][f"KE_{symbol}_err_meV"], by_p[b][f"KE_{symbol}_err_meV"])
                changes[f"KE_{symbol}_P{a}_to_P{b}_meV"] = [float(diff), float(err)]
    payload = {
        "machine": "2-core CPU VM, no GPU",
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "setup": f"(H2O){args.waters} periodic cube {atoms.cell[0, 0]:.3f} Å (1 g/cm³), "
        f"{TEMPERATURE:g} K, PILE-L tau {TAU_FS:g} fs, BAOAB dt {DT_FS:g} fs, model {MODEL}; "
        "P>1 start from the last frame of P=1",
        "errors": f"standard error of {BLOCKS} block averages of the production run",
        "classical_3_2_kT_meV": CLASSICAL_EV * 1e3,
        "literature_meV": LITERATURE_MEV,
        "scale": args.scale,
        "runs": rows,
        "changes_meV_[diff,err]": changes,
        "total_wall_s": time.perf_counter() - t0,
        "provenance": prov,
    }
    path = write_result("water_pimd", payload)
    plot(rows, prov, args.waters)
    for key, (diff, err) in changes.items():
        print(f"{key}: {diff:+.1f} ± {err:.1f} meV")
    print(f"wrote {path} and {RESULTS / 'water_pimd.png'}")


if __name__ == "__main__":
    main()
