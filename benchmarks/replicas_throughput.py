"""Benchmark: throughput over 1, 2 and 3 server replicas, and what round_robin itself costs.

Child servers (model "lj", 64 argon atoms per call); 8 client threads, each with its own
`Client(targets, balance=True)`, send unary energy+forces calls for `--seconds`: calls per
second with 1, 2, 3 replicas (on 2 cores no gain is expected: the figure shows the
balancing's overhead). Then on one server, interleaved: a direct channel vs round_robin over
that one address, median latency of a small call.
Run: `.venv/bin/python -m benchmarks.replicas_throughput` (about a minute).
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
from ase.build import bulk

from benchmarks.common import ChildServer, interleaved, summarize, write_result
from mlipserve.client import Client

ARGON = bulk("Ar", "fcc", a=5.26) * (4, 4, 4)


def throughput(targets: list[str], threads: int, seconds: float) -> float:
    """Calls per second of `threads` balanced clients over `targets`."""
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def work(k: int) -> None:
        with Client(targets, "lj", balance=True) as client:
            client.evaluate(ARGON)  # connect first
            while time.monotonic() < stop:
                client.evaluate(ARGON)
                counts[k] += 1

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    start = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    servers = [ChildServer("--models", "lj", "--workers", "0") for _ in range(3)]
    try:
        rates = {
            n: throughput([s.address for s in servers[:n]], args.threads, args.seconds)
            for n in (1, 2, 3)
        }
        small = bulk("Ar", "fcc", a=5.26)
        with (
            Client(servers[0].address, "lj") as direct,
            Client([servers[0].address], "lj", balance=True) as balanced,
        ):
            a, b = interleaved(
                lambda: direct.evaluate(small), lambda: balanced.evaluate(small), args.repeats
            )
    finally:
        for s in servers:
            s.stop()
    latency = {"direct": summarize(a), "round_robin": summarize(b)}
    row = {
        "calls_per_s": {str(n): r for n, r in rates.items()},
        "over_one_replica": {str(n): r / rates[1] for n, r in rates.items()},
        "latency": latency,
        "round_robin_over_direct": latency["round_robin"]["median_us"]
        / latency["direct"]["median_us"],
        "atoms_per_call": len(ARGON),
        "client_threads": args.threads,
    }
    print({k: row[k] for k in ("calls_per_s", "round_robin_over_direct")})
    write_result("replicas_throughput", row)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
