"""Issue "MLIP family" benchmarks: ensemble of K in one pass vs one member; µs per atom.

Same PaiNN configuration as the shipped default model (random weights when the shipped model
is missing: speed does not depend on the weights). Energy + forces + stress, float32, fcc Cu
alloy cells of ~100, ~1,000 and ~10,000 atoms. Goal: K=4 / K=1 ≤ 4× on CPU (≤ 1.5× on GPU).
Each row also says how many passes the members took (`TorchPotential.member_edges_per_pass`
caps members × edges per pass, i.e. peak memory) and the process's peak resident size so far;
the largest cell is measured a second time with every member in one pass.
Run: `.venv/bin/python -m benchmarks.ensemble_cost`.
"""

from __future__ import annotations

import argparse
import resource

import numpy as np
import torch
from ase.build import bulk
from ase.neighborlist import neighbor_list

from benchmarks.common import summarize, timed, write_result
from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.models.torch_potential import TorchPotential, member_chunks
from mlipserve.server.serving.local import LocalProvider

SIZES = {108: (3, 3, 3), 1372: (7, 7, 7), 10976: (14, 14, 14)}


def provider(members: int, device: str) -> LocalProvider:
    torch.manual_seed(0)
    cfg = PaiNNConfig(cutoff=5.0, features=32, layers=2, members=members, max_z=79)
    info = ModelInfo(
        name=f"painn-k{members}",
        version="bench",
        kind="painn",
        cutoff=cfg.cutoff,
        ensemble_size=members if members > 1 else 0,
        dtype="float32",
        device=device,
    )
    return LocalProvider(TorchPotential(PaiNN(cfg), info))


def measure(single, ensemble, sizes: dict = SIZES, repeats: int = 0) -> list[dict]:
    """Rows of K=1 vs K=4 medians at `sizes` (fcc Cu cells), the largest again with every
    member in one pass; `repeats` 0: by size."""
    rows = []
    plan = [(n, reps, None) for n, reps in sizes.items()]
    if plan:
        plan.append((*plan[-1][:2], 10**12))  # the largest again, all members in one pass
    default_budget = ensemble.model.member_edges_per_pass
    for n, reps, budget in plan:
        ensemble.model.member_edges_per_pass = budget or default_budget
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * reps
        atoms.rattle(0.02, seed=0)
        count = repeats or (10 if n < 5000 else 3)
        props = ["energy", "forces", "stress"]
        t1 = timed(
            lambda atoms=atoms, props=props: single.evaluate([atoms], props), count, warmup=1
        )
        t4 = timed(
            lambda atoms=atoms, props=props: ensemble.evaluate([atoms], props + ["uncertainty"]),
            count,
            warmup=1,
        )
        edges = len(neighbor_list("i", atoms, 5.0))
        passes = len(member_chunks(4, edges, ensemble.model.member_edges_per_pass))
        row = {
            "atoms": n,
            "edges": edges,
            "member_edges_per_pass": ensemble.model.member_edges_per_pass,
            "passes": passes,
            "k1": summarize(t1),
            "k4": summarize(t4),
            "peak_rss_gb_so_far": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        }
        row["ratio"] = row["k4"]["median_us"] / row["k1"]["median_us"]
        row["us_per_atom_k4"] = row["k4"]["median_us"] / n
        rows.append(row)
        print(
            f"{n:6d} atoms  K=1 {row['k1']['median_us'] / 1e3:9.1f} ms  K=4 "
            f"{row['k4']['median_us'] / 1e3:9.1f} ms  ratio {row['ratio']:.2f}  "
            f"{row['us_per_atom_k4']:.1f} µs/atom  {passes} pass(es)  "
            f"peak {row['peak_rss_gb_so_far']:.1f} GB"
        )
    ensemble.model.member_edges_per_pass = default_budget
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-atoms", type=int, default=20000)
    args = parser.parse_args()
    single, ensemble = provider(1, args.device), provider(4, args.device)
    sizes = {n: reps for n, reps in SIZES.items() if n <= args.max_atoms}
    rows = measure(single, ensemble, sizes)
    path = write_result(
        "ensemble_cost",
        {
            "rows": rows,
            "device": str(single.model.device),
            "goal": "K=4/K=1 <= 4x CPU, <= 1.5x GPU",
        },
    )
    print("wrote", path)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
