"""Benchmark 3: throughput of 64 concurrent clients of 32-atom systems, batching on vs off.

Each client holds its own stream and evaluates its own system (energy + forces) in a loop;
evaluations per second over a fixed window. Same server settings but `--batching` /
`--no-batching`. Goal: ≥ 3× on CPU (≥ 10× on a GPU).
Run: `.venv/bin/python benchmarks/batching_throughput.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from ase.build import bulk

from benchmarks.common import ChildServer, write_result
from mlipserve.client import AsyncClient


async def load(address: str, clients: int, seconds: float, model: str, settle: float = 3.0) -> dict:
    """Evaluations per second of `clients` streams over `seconds`, after `settle` s to connect."""
    counts = [0] * clients
    batch_sizes: list[int] = []
    stop_at = 0.0

    async def one(i: int):
        atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 2)  # 32 atoms
        atoms.rattle(0.05, seed=i)
        async with AsyncClient(address, model) as client:
            async with client.stream() as session:
                await session.evaluate(atoms)  # connect and warm up
                await start.wait()
                while time.perf_counter() < stop_at:
                    res = await session.evaluate(atoms)
                    counts[i] += 1
                    batch_sizes.append(res["batch"]["requests"])

    start = asyncio.Event()
    tasks = [asyncio.create_task(one(i)) for i in range(clients)]
    await asyncio.sleep(settle)
    t0 = time.perf_counter()
    stop_at = t0 + seconds
    start.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    return {
        "evaluations": sum(counts),
        "seconds": elapsed,
        "per_s": sum(counts) / elapsed,
        "mean_requests_per_batch": sum(batch_sizes) / max(1, len(batch_sizes)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--model", default="lj")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder of the result (default benchmarks/results)"
    )
    args = parser.parse_args()
    out = {}
    for mode in ("--batching", "--no-batching"):
        with ChildServer("--models", args.model, mode) as server:
            out[mode.strip("-")] = asyncio.run(
                load(server.address, args.clients, args.seconds, args.model)
            )
        r = out[mode.strip("-")]
        print(
            f"{mode:14s} {r['per_s']:8.1f} evaluations/s, "
            f"{r['mean_requests_per_batch']:.1f} requests per batch"
        )
    ratio = out["batching"]["per_s"] / out["no-batching"]["per_s"]
    print(f"throughput ratio batching on/off: {ratio:.2f}")
    path = write_result(
        "batching_throughput",
        {
            "clients": args.clients,
            "atoms_per_system": 32,
            "model": args.model,
            **out,
            "ratio": ratio,
            "goal": ">=3x on CPU",
            # prepare batch N+1 while N runs (server/serving/registry.py; auto: on)
            "pipeline": os.environ.get("MLIPSERVE_PIPELINE", "auto"),
        },
        args.out,
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
