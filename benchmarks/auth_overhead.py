"""Issue "shared lab service" benchmarks: auth + metrics overhead, and fair share latency.

1. Per-call time at 64 atoms (unary calls and one stream), server with auth on (a user key)
   vs auth off; metrics are always on. Goal: overhead ≤ 5 %.
2. p50/p95 latency of a light tenant (one 4-atom system per call) alone and beside a flooding
   tenant (6 threads of 8×32-atom requests, bulk priority) on a real server process.
Run: `.venv/bin/python -m benchmarks.auth_overhead`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

from benchmarks.common import ChildServer, interleaved, summarize, write_result
from mlipserve.client import Client
from mlipserve.server.auth import KeyStore

FLOOD = """
import sys, threading
from ase.build import bulk
from mlipserve.client import Client
address, key = sys.argv[1], sys.argv[2]
atoms = [bulk("Ar", "fcc", a=5.3, cubic=True) * (2, 2, 2) for _ in range(8)]
def flood():
    client = Client(address, "lj", api_key=key, priority=1)
    while True:
        client.evaluate(atoms, ["energy", "forces"])
for _ in range(6):
    threading.Thread(target=flood, daemon=True).start()
threading.Event().wait()
"""


def light(address: str, key: str, n: int = 100) -> list[float]:
    client = Client(address, "lj", api_key=key)
    atoms = bulk("Ar", "fcc", a=5.3)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.evaluate(atoms)
        out.append(time.perf_counter() - t0)
    return out


def p50_p95(seconds: list[float]) -> dict:
    """Median and 95th percentile in µs."""
    arr = np.array(seconds) * 1e6
    return {"p50_us": float(np.median(arr)), "p95_us": float(np.percentile(arr, 95))}


def main() -> None:
    data = Path(tempfile.mkdtemp())
    keys = KeyStore(f"sqlite:///{data / 'mlipserve.db'}")
    _, user = keys.create("user", "light")
    _, flooder = keys.create("user", "flood")
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 4)  # 64 atoms
    with (
        ChildServer("--models", "lj", "--auth", "--data-dir", str(data)) as on,
        ChildServer("--models", "lj") as off,
    ):
        unary_on, unary_off = Client(on.address, "lj", api_key=user), Client(off.address, "lj")
        t_on, t_off = interleaved(
            lambda: unary_on.evaluate(atoms), lambda: unary_off.evaluate(atoms), 300
        )
        s_on, s_off = unary_on.stream(), unary_off.stream()
        st_on, st_off = interleaved(
            lambda: s_on.evaluate(atoms), lambda: s_off.evaluate(atoms), 300
        )
        s_on.close()
        s_off.close()
        overhead = {
            "unary": {"on": summarize(t_on), "off": summarize(t_off)},
            "stream": {"on": summarize(st_on), "off": summarize(st_off)},
        }
        for mode in overhead.values():
            mode["ratio_median"] = mode["on"]["median_us"] / mode["off"]["median_us"]
        alone = p50_p95(light(on.address, user))
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, on.address, flooder])
        try:
            time.sleep(3)
            beside = p50_p95(light(on.address, user))
        finally:
            flood.kill()
    print(
        f"auth+metrics overhead: unary {overhead['unary']['ratio_median']:.3f}, "
        f"stream {overhead['stream']['ratio_median']:.3f}"
    )
    print(
        f"light tenant p50/p95 {alone['p50_us']:.0f}/{alone['p95_us']:.0f} µs alone, "
        f"{beside['p50_us']:.0f}/{beside['p95_us']:.0f} µs beside a flood"
    )
    path = write_result(
        "auth_overhead",
        {
            "overhead": overhead,
            "light_alone": alone,
            "light_beside_flood": beside,
            "goal": "overhead <= 1.05; light p95 beside <= 3x alone",
        },
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
