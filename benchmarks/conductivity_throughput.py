"""Benchmark: the conductivity run's MD on the served rigid-ion model, batched vs separate.

R replicas of a 64-ion NaCl melt on `nacl-rigid-ion` (Fumi–Tosi, Ewald) in a child server:
one client driving all replicas in one call per step, against R clients (threads, one
stream each) with one replica each; velocity Verlet at 2.5 fs as in the NVE production.
Figure: replica-steps per second; ratio batched / separate (alternating rounds). Then one
conductivity run (`conductivity_md`) whose Einstein, Green–Kubo, Nernst–Einstein σ and
Haven ratio are recorded with their error bars.
Run: `.venv/bin/python -m benchmarks.conductivity_throughput` (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ase import units
from ase.build import bulk

from benchmarks.common import ChildServer, write_result
from benchmarks.md_replicas import batched, separate
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.md.integrators import velocity_verlet
from mlipserve.simulation.properties.conductivity import conductivity_md
from mlipserve.simulation.properties.transport_plot import plot_transport
from mlipserve.simulation.provenance import provenance

MODEL = "nacl-rigid-ion"
T = 1500.0


def melt(n: int) -> list:
    """n rattled 64-ion rocksalt cells at the melt's density (10 % expanded)."""
    out = []
    for r in range(n):
        atoms = bulk("NaCl", "rocksalt", a=5.64 * 1.1, cubic=True) * (2, 2, 2)
        atoms.rattle(0.3, seed=r)
        out.append(atoms)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conductivity-steps", type=int, default=2000)
    args = parser.parse_args()
    images = melt(args.replicas)

    def make():
        return velocity_verlet(2.5 * units.fs)

    seconds: dict[str, list[float]] = {"separate": [], "batched": []}
    with ChildServer("--models", MODEL) as server:
        for _ in range(args.rounds):
            for key, run in (("separate", separate), ("batched", batched)):
                elapsed, _, _ = run(server.address, images, args.steps, 2, MODEL, make, T)
                seconds[key].append(elapsed)
        rate = {k: args.replicas * args.steps / float(np.median(v)) for k, v in seconds.items()}
        provider = RemoteProvider(server.address, MODEL)
        start = time.perf_counter()
        cond = conductivity_md(
            provider, images[0], {"Na": 1.0, "Cl": -1.0}, T, replicas=args.replicas,
            dt_fs=2.5, equilibration_steps=400, steps=args.conductivity_steps, sample_every=2,
        )  # fmt: skip
        wall = time.perf_counter() - start
        record = provenance(provider)
        provider.close()
    res = cond.result
    row = {
        "replicas": args.replicas,
        "ions_per_replica": len(images[0]),
        "replica_steps_per_s": rate,
        "batched_over_separate": rate["batched"] / rate["separate"],
        "conductivity_run": {
            "wall_s": wall,
            "force_calls": cond.calls,
            "nve_temperature_K": cond.temperature_K,
            **res.to_dict(),
        },
        "provenance": record,
    }
    print({k: row[k] for k in ("replica_steps_per_s", "batched_over_separate")})
    print({k: row["conductivity_run"].get(k) for k in ("einstein_S_m", "green_kubo_S_m", "haven")})
    path = write_result("conductivity_throughput", row)
    plot_transport(res, path.with_suffix(".png"), provenance=record, title=f"NaCl melt on {MODEL}")


if __name__ == "__main__":
    main()
