"""Benchmark 1: remote (stream session to a server process) vs in-process, same model.

Time per evaluation (energy + forces) at 64, 1,000 and 10,000 atoms; positions change every
call. Ratio = remote median / in-process median. Goal: ≤ 1.05 at 1,000 atoms, ≤ 1.01 at
10,000. Run: `.venv/bin/python benchmarks/remote_vs_local.py`.
"""

from __future__ import annotations

import argparse

import numpy as np
from ase.build import bulk

from benchmarks.common import ChildServer, interleaved, summarize, write_result
from mlipserve.client import Client
from mlipserve.server.models.builtin import load_builtin
from mlipserve.server.serving.local import LocalProvider

SIZES = {64: (4, 4, 4), 1000: (10, 10, 10), 10000: (22, 22, 21)}  # primitive fcc cells


def structure(model: str, reps) -> object:
    symbol, a = ("Cu", 3.61) if model in ("emt", "default") else ("Ar", 5.26)
    atoms = bulk(symbol, "fcc", a=a) * reps
    atoms.rattle(0.02, seed=0)
    return atoms


def compare(model: str, local, session, sizes: dict = SIZES, repeats: int = 0) -> list[dict]:
    """Rows of in-process (`local`) vs remote (`session`) medians of `model` at `sizes`."""
    rows = []
    for n, reps in sizes.items():
        atoms = structure(model, reps)
        count = repeats or {64: 200, 1000: 30, 10000: 5}.get(n, 5)
        rng = np.random.default_rng(1)

        def bump(atoms=atoms, rng=rng):
            atoms.positions += rng.normal(0, 1e-4, atoms.positions.shape)

        t_local, t_remote = interleaved(
            lambda atoms=atoms: (bump(), local.evaluate([atoms])),
            lambda atoms=atoms: (bump(), session.evaluate(atoms)),
            count,
        )
        row = {
            "model": model,
            "atoms": len(atoms),
            "local": summarize(t_local),
            "remote": summarize(t_remote),
        }
        row["ratio_median"] = row["remote"]["median_us"] / row["local"]["median_us"]
        rows.append(row)
        print(
            f"{model:6s} {len(atoms):6d} atoms  local {row['local']['median_us']:10.0f} µs"
            f"  remote {row['remote']['median_us']:10.0f} µs"
            f"  ratio {row['ratio_median']:.3f}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="emt,lj,default")
    parser.add_argument("--repeats", type=int, default=0, help="0: by size")
    args = parser.parse_args()
    rows = []
    for model in args.models.split(","):
        local = LocalProvider(load_builtin(model))
        with ChildServer("--models", model) as server:
            session = Client(server.address, model).stream()
            rows += compare(model, local, session, SIZES, args.repeats)
            session.close()
    path = write_result(
        "remote_vs_local", {"rows": rows, "goal": "<=1.05 at 1000, <=1.01 at 10000"}
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
