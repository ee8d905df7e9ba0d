"""What a model-compute child process (Triton's Python-backend isolation) would add per call.

(a) the stream round trip of a 64-atom Ar system on the served `lj` model, server in a child
process, the client's `RemoteCalculator` on one open stream; (b) the extra hop such an
isolation adds: the batch arrays (positions, numbers, cell, pbc) sent to a worker process
over a `multiprocessing` pipe and the results (energy, forces, stress) sent back, interleaved
with (a). The ratio (b)/(a) is the added cost on the stream round trip.
Run: `.venv/bin/python -m benchmarks.child_process_hop`.
"""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
from ase.build import bulk

from benchmarks.common import ChildServer, interleaved, summarize, write_result

REPEATS = int(os.environ.get("BENCH_REPEATS", 1000))


def _worker(conn) -> None:
    """The child's side: receive a batch, answer with results of the right shapes."""
    while (batch := conn.recv()) is not None:
        n = len(batch["numbers"])
        conn.send({"energy": np.zeros(1), "forces": np.zeros((n, 3)), "stress": np.zeros((1, 6))})


def main() -> None:
    from mlipserve.client import RemoteCalculator

    atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 4)  # 64 atoms
    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_worker, args=(child,), daemon=True)
    proc.start()
    batch = {
        "positions": atoms.positions.copy(),
        "numbers": atoms.numbers.astype(np.int64),
        "cell": atoms.cell.array[None].copy(),
        "pbc": atoms.pbc[None].copy(),
    }

    def hop() -> None:
        parent.send(batch)
        parent.recv()

    with (
        ChildServer("--models", "lj") as server,
        RemoteCalculator(server.address, model="lj") as calc,
    ):
        atoms.calc = calc

        def round_trip() -> None:
            atoms.positions[0, 0] += 1e-6  # a new state each call
            atoms.get_forces()

        trips, hops = interleaved(round_trip, hop, REPEATS, warmup=20)
    parent.send(None)
    proc.join(5)
    trip, extra = summarize(trips), summarize(hops)
    result = {
        "atoms": len(atoms),
        "stream_round_trip": trip,
        "child_process_hop": extra,
        "hop_over_round_trip_median": extra["median_us"] / trip["median_us"],
        "hop_over_round_trip_p90": extra["p90_us"] / trip["p90_us"],
    }
    path = write_result("child_process_hop", result)
    print(
        f"stream round trip {trip['median_us']:.0f} µs median, child hop "
        f"{extra['median_us']:.0f} µs: +{100 * result['hop_over_round_trip_median']:.0f} % "
        f"(p90 +{100 * result['hop_over_round_trip_p90']:.0f} %) -> {path}"
    )


if __name__ == "__main__":
    main()
