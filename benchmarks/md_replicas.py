"""Benchmark: MD of 32 replicas of 64 atoms, one batched client vs 32 separate clients.

Same server (child process, model "lj", dynamic batching on), same Langevin BAOAB run
(argon fcc, 300 K, 5 fs, one seed per replica). Batched: one RemoteProvider, one
`MolecularDynamics` over all replicas, one evaluate call per step. Separate: 32 threads,
each with its own RemoteProvider (its own stream) driving its own single-replica MD; the
server may still merge their concurrent requests. Figure: ensemble steps per second (one
step = every replica advanced once); ratio = batched / separate. Both runs use the same
seeds, so their final positions must agree (checked and reported).
Run: `.venv/bin/python -m benchmarks.md_replicas`.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
from ase import units
from ase.build import bulk

from benchmarks.common import ChildServer, write_result
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import langevin_baoab
from mlipserve.simulation.md.state import MDState

TEMPERATURE = 300.0


class BatchCounter:
    """Wraps a provider; records (requests in the server batch, its compute seconds) per call."""

    def __init__(self, inner: RemoteProvider, sink: list[tuple[int, float]]) -> None:
        self.inner, self.sink = inner, sink

    def evaluate(self, systems, properties=("energy", "forces")):
        results = self.inner.evaluate(systems, properties)
        batch = results[0].get("batch", {})
        self.sink.append((int(batch.get("requests", 0)), float(batch.get("compute_s", 0.0))))
        return results


def replicas(n: int) -> list:
    """n argon crystals of 64 atoms (primitive fcc 4×4×4), each rattled differently."""
    out = []
    for r in range(n):
        atoms = bulk("Ar", "fcc", a=5.26) * (4, 4, 4)
        atoms.rattle(0.05, seed=r)
        out.append(atoms)
    return out


def integrator():
    return langevin_baoab(5 * units.fs, TEMPERATURE, 0.01 / units.fs)


def batched(
    address: str, images: list, steps: int, warmup: int, model: str = "lj", make=integrator,
    temperature: float = TEMPERATURE,
) -> tuple[float, np.ndarray, list]:  # fmt: skip
    """One client, one MD over every replica: (seconds, final positions, batch sizes)."""
    sizes: list[tuple[int, float]] = []
    provider = RemoteProvider(address, model)
    try:
        state = MDState.from_atoms(images, temperature, seeds=range(len(images)))
        md = MolecularDynamics(BatchCounter(provider, sizes), state, make())
        md.run(warmup)
        sizes.clear()
        t0 = time.perf_counter()
        md.run(steps)
        elapsed = time.perf_counter() - t0
    finally:
        provider.close()
    return elapsed, md.state.positions.copy(), sizes


def separate(
    address: str, images: list, steps: int, warmup: int, model: str = "lj", make=integrator,
    temperature: float = TEMPERATURE,
) -> tuple[float, np.ndarray, list]:  # fmt: skip
    """A client (thread, stream) per replica: (seconds, final positions, batch sizes)."""
    n = len(images)
    sizes: list[tuple[int, float]] = []
    ready = threading.Barrier(n + 1)
    finals: list[np.ndarray | None] = [None] * n
    errors: list[BaseException] = []

    def worker(r: int) -> None:
        provider = RemoteProvider(address, model)
        try:
            state = MDState.from_atoms(images[r], temperature, seeds=r)
            md = MolecularDynamics(BatchCounter(provider, sizes), state, make())
            md.run(warmup)
            ready.wait()
            ready.wait()  # the clock starts
            md.run(steps)
            finals[r] = md.state.positions.copy()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            ready.abort()
        finally:
            provider.close()

    threads = [threading.Thread(target=worker, args=(r,)) for r in range(n)]
    for t in threads:
        t.start()
    ready.wait()
    sizes.clear()
    t0 = time.perf_counter()
    ready.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return elapsed, np.concatenate(finals), sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per mode")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    images = replicas(args.replicas)
    runs = {"separate": separate, "batched": batched}
    seconds: dict[str, list[float]] = {key: [] for key in runs}
    sizes: dict[str, list[tuple[int, float]]] = {key: [] for key in runs}
    max_diff = 0.0
    with ChildServer("--models", "lj") as server:
        for _ in range(args.rounds):  # alternate, so slow drifts of a shared machine hit both
            finals = {}
            for key, run in runs.items():
                elapsed, finals[key], batch_sizes = run(
                    server.address, images, args.steps, args.warmup
                )
                seconds[key].append(elapsed)
                sizes[key] += batch_sizes
            max_diff = max(max_diff, float(np.abs(finals["batched"] - finals["separate"]).max()))
    row: dict = {
        "replicas": args.replicas,
        "atoms_per_replica": len(images[0]),
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "integrator": "Langevin BAOAB, 5 fs, 300 K",
        "max_position_difference_A": max_diff,
    }
    for key in runs:
        rates = args.steps / np.array(seconds[key])
        row[key] = {
            "steps_per_s": float(np.median(rates)),
            "steps_per_s_rounds": rates.tolist(),
            "replica_steps_per_s": float(np.median(rates)) * args.replicas,
            "mean_requests_per_batch": float(np.mean([n for n, _ in sizes[key]])),
        }
        print(
            f"{key:9s} {row[key]['steps_per_s']:8.2f} ensemble steps/s "
            f"({row[key]['replica_steps_per_s']:8.1f} replica-steps/s; rounds "
            f"{', '.join(f'{r:.2f}' for r in rates)}), "
            f"{row[key]['mean_requests_per_batch']:.1f} requests per server batch"
        )
    compute = sum(c for _, c in sizes["batched"]) / sum(seconds["batched"])
    row["batched"]["server_compute_fraction"] = compute  # the rest: client + transport
    print(f"batched: the server's forward passes take {compute:.0%} of the wall time")
    row["ratio"] = row["batched"]["steps_per_s"] / row["separate"]["steps_per_s"]
    print(f"ratio {row['ratio']:.2f}; trajectories agree to {max_diff:.1e} Å")
    path = write_result("md_replicas", {**row, "goal": "batched faster than separate clients"})
    print("wrote", path)


if __name__ == "__main__":
    main()
