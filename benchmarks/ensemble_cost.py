"""Issue "MLIP family" benchmarks: ensemble of K in one pass vs one member; µs per atom.

Same PaiNN configuration as the shipped default model (random weights when the shipped model
is missing: speed does not depend on the weights). Energy + forces + stress, float32, fcc Cu
alloy cells of ~100, ~1,000 and ~10,000 atoms. Goal: K=4 / K=1 ≤ 4× on CPU (≤ 1.5× on GPU).
Run: `.venv/bin/python -m benchmarks.ensemble_cost`.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from ase.build import bulk

from benchmarks.common import summarize, timed, write_result
from mlipserve.server.local import LocalProvider
from mlipserve.server.models.autograd import TorchPotential
from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.painn import PaiNN, PaiNNConfig

SIZES = {108: (3, 3, 3), 1372: (7, 7, 7), 10976: (14, 14, 14)}


def provider(members: int, device: str) -> LocalProvider:
    torch.manual_seed(0)
    cfg = PaiNNConfig(cutoff=5.0, features=32, layers=2, members=members, max_z=79)
    info = ModelInfo(name=f"painn-k{members}", version="bench", kind="painn", cutoff=cfg.cutoff,
                     ensemble_size=members if members > 1 else 0, dtype="float32", device=device)
    return LocalProvider(TorchPotential(PaiNN(cfg), info))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-atoms", type=int, default=20000)
    args = parser.parse_args()
    single, ensemble = provider(1, args.device), provider(4, args.device)
    rows = []
    for n, reps in SIZES.items():
        if n > args.max_atoms:
            continue
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * reps
        atoms.rattle(0.02, seed=0)
        repeats = 10 if n < 5000 else 3
        props = ["energy", "forces", "stress"]
        t1 = timed(lambda: single.evaluate([atoms], props), repeats, warmup=1)
        t4 = timed(lambda: ensemble.evaluate([atoms], props + ["uncertainty"]), repeats, warmup=1)
        row = {"atoms": n, "k1": summarize(t1), "k4": summarize(t4)}
        row["ratio"] = row["k4"]["median_us"] / row["k1"]["median_us"]
        row["us_per_atom_k4"] = row["k4"]["median_us"] / n
        rows.append(row)
        print(f"{n:6d} atoms  K=1 {row['k1']['median_us'] / 1e3:9.1f} ms  K=4 "
              f"{row['k4']['median_us'] / 1e3:9.1f} ms  ratio {row['ratio']:.2f}  "
              f"{row['us_per_atom_k4']:.1f} µs/atom")
    path = write_result("ensemble_cost", {"rows": rows, "device": str(single.model.device),
                                          "goal": "K=4/K=1 <= 4x CPU, <= 1.5x GPU"})
    print("wrote", path)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
