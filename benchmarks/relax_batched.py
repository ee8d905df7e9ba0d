"""Benchmark: 100 vacancy relaxations, batched (`relax_batch`) vs one by one.

100 different vacancy cells (2×2×1 cubic fcc cells minus one atom, 15 atoms, rattled with
their own seed; on `emt` a random Cu/Ni/Pd/Ag/Au/Pt alloy per cell). Batched: `relax_batch` over
a `RemoteProvider`, all unconverged cells in one request per FIRE iteration. One by one:
`ase.optimize.FIRE` with a `RemoteCalculator` (one open stream), cell after cell. Same FIRE,
so both take the same steps per cell. Same server (child process), same model.
Ratio = one-by-one wall time / batched wall time. Goal: ≥ 2× on CPU (≥ 5× on a GPU).
Run: `.venv/bin/python -m benchmarks.relax_batched`.
"""

from __future__ import annotations

import os

# Tiny BLAS calls (NEB tangents, FIRE dot products) spin OpenBLAS threads on a shared CPU:
# one thread for both sides (the child server inherits it). Override from the environment.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import time

import numpy as np
from ase.build import bulk
from ase.optimize import FIRE

from benchmarks.common import ChildServer, free_port, write_result
from mlipserve.client import RemoteCalculator
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.relax import relax_batch

ALLOY = ["Cu", "Ni", "Pd", "Ag", "Au", "Pt"]
FMAX = {"lj": 0.002, "emt": 0.05}  # eV/Å: argon's forces are ~ε/σ ≈ 3 meV/Å


def vacancy_cells(model: str, n: int) -> list:
    """`n` rattled 15-atom vacancy cells (argon for lj, a random fcc alloy for emt)."""
    cells = []
    for i in range(n):
        rng = np.random.default_rng(i)
        if model == "emt":
            atoms = bulk("Cu", "fcc", a=3.85, cubic=True) * (2, 2, 1)
            atoms.symbols = list(rng.choice(ALLOY, len(atoms)))
        else:
            atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 1)
        del atoms[int(rng.integers(len(atoms)))]
        atoms.rattle(0.03 if model == "emt" else 0.1, seed=i)
        cells.append(atoms)
    return cells


def one_by_one(
    address: str, model: str, cells: list, fmax: float, steps: int
) -> tuple[float, list]:
    calc = RemoteCalculator(address, model)
    t0 = time.perf_counter()
    out = []
    for atoms in cells:
        atoms = atoms.copy()
        atoms.calc = calc
        opt = FIRE(atoms, logfile=None)
        opt.run(fmax=fmax, steps=steps)
        out.append((opt.nsteps, atoms.get_potential_energy()))
    wall = time.perf_counter() - t0
    calc.close()
    return wall, out


def batched(address: str, model: str, cells: list, fmax: float, steps: int) -> tuple[float, list]:
    provider = RemoteProvider(address, model)
    t0 = time.perf_counter()
    results = relax_batch(provider, cells, fmax=fmax, max_steps=steps, progress=False)
    wall = time.perf_counter() - t0
    provider.close()
    return wall, [(r.steps, r.energy) for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="lj", help="comma-separated, e.g. lj,emt")
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--fmax", type=float, default=0.0, help="0: per model (FMAX)")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    rows = []
    with ChildServer("--models", args.models, "--rest-port", str(free_port())) as server:
        for model in args.models.split(","):
            cells = vacancy_cells(model, args.cells)
            fmax = args.fmax or FMAX[model]
            batched(server.address, model, cells[:4], fmax, 3)  # warm up both paths
            one_by_one(server.address, model, cells[:2], fmax, 3)
            t_batch, res_batch = batched(server.address, model, cells, fmax, args.steps)
            t_single, res_single = one_by_one(server.address, model, cells, fmax, args.steps)
            same_steps = sum(a[0] == b[0] for a, b in zip(res_batch, res_single))
            max_de = max(abs(a[1] - b[1]) for a, b in zip(res_batch, res_single))
            steps = [s for s, _ in res_batch]
            row = {
                "model": model,
                "fmax": fmax,
                "cells": len(cells),
                "atoms_per_cell": len(cells[0]),
                "fire_steps_total": int(sum(steps)),
                "fire_steps_max": int(max(steps)),
                "same_steps": int(same_steps),
                "max_energy_difference_eV": float(max_de),
                "one_by_one_s": t_single,
                "batched_s": t_batch,
                "ratio": t_single / t_batch,
            }
            rows.append(row)
            print(
                f"{model:4s} {len(cells)} cells × {len(cells[0])} atoms, {sum(steps)} FIRE steps "
                f"(max {max(steps)}): one by one {t_single:.2f} s, batched {t_batch:.2f} s, "
                f"×{row['ratio']:.2f}; same steps {same_steps}/{len(cells)}, "
                f"max |ΔE| {max_de:.1e} eV"
            )
    path = write_result("relax_batched", {"rows": rows, "goal": ">=2x on CPU, >=5x on a GPU"})
    print("wrote", path)


if __name__ == "__main__":
    main()
