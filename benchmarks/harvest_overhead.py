"""Harvesting's cost on the request path: evaluation latency with harvesting on vs off.

One `mlipserve serve` process serves two stored copies of one 2-member PaiNN (16 features,
2 layers, 4.5 Å cutoff): `on` with harvesting enabled (trust_lo 0, budget and rate
unbounded within the run: every request is a new candidate that the writer stores, the worst
case) and `off` without. A client streams MD-like 32-atom Cu frames (each frame a fresh
rattle, so nothing is a duplicate), alternating between the two models call by call, so
drifts of a shared machine hit both alike. Also: the same for 8-frame requests (a batched
driver's step). Reported: p50 and p90 per call (µs) and their on/off ratios, and how many
structures the writer stored.
Run: `.venv/bin/python -m benchmarks.harvest_overhead`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

from benchmarks.common import ChildServer, interleaved, write_result
from mlipserve.client import Client
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.serving.harvest_pool import Pool
from mlipserve.server.store import ModelStore

CFG = PaiNNConfig(cutoff=4.5, features=16, radial=8, layers=2, members=2, max_z=30)
HARVEST = {"enabled": True, "budget_per_tenant": 100_000, "rate_per_minute": 100_000}
CALLS = 400


def stats(seconds: list[float]) -> dict:
    """p50 and p90 in µs."""
    arr = np.array(seconds) * 1e6
    return {"p50_us": float(np.median(arr)), "p90_us": float(np.percentile(arr, 90)), "n": len(arr)}


def frames(n: int, seed: int) -> list:
    """`n` distinct 32-atom Cu frames."""
    rng = np.random.default_rng(seed)
    base = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    out = []
    for _ in range(n):
        atoms = base.copy()
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        out.append(atoms)
    return out


def compare(address: str, per_call: int, seed: int) -> dict:
    """Interleaved stream calls to `on` and `off` with the same frames."""
    data = frames(per_call * (CALLS + 2), seed)
    with Client(address, "on") as c_on, Client(address, "off") as c_off:
        s_on, s_off = c_on.stream(), c_off.stream()
        state = {"on": 0, "off": 0}

        def call(session, key):
            i = state[key]
            state[key] += 1
            session.evaluate(data[i * per_call : (i + 1) * per_call], ["energy", "forces"])

        t_on, t_off = interleaved(lambda: call(s_on, "on"), lambda: call(s_off, "off"), CALLS)
        s_on.close()
        s_off.close()
    on, off = stats(t_on), stats(t_off)
    return {
        "systems_per_call": per_call,
        "on": on,
        "off": off,
        "ratio_p50": on["p50_us"] / off["p50_us"],
        "ratio_p90": on["p90_us"] / off["p90_us"],
    }


def main() -> None:
    data = Path(tempfile.mkdtemp())
    store = ModelStore(data / "models")
    torch.manual_seed(0)
    module = PaiNN(CFG)
    meta = {
        "family": "painn",
        "config": CFG.to_dict(),
        "cutoff": CFG.cutoff,
        "elements": [29],
        "ensemble_size": CFG.members,
        "dtype": "float32",
        "trust_lo": 0.0,
    }
    store.save("on", module, {**meta, "harvest": HARVEST})
    store.save("off", module, meta)
    with ChildServer(
        "--models", "store:on,store:off", "--data-dir", str(data), "--workers", "0"
    ) as server:
        time.sleep(2.0)  # the harvest settings are read at start; let the server settle
        runs = [compare(server.address, 1, 1), compare(server.address, 8, 2)]
        time.sleep(3.0)  # the writer drains
        stored = sum(Pool(store.root, "on").counts().values())
    for run in runs:
        print(
            f"{run['systems_per_call']} × 32 atoms per call: p50 {run['off']['p50_us']:.0f} → "
            f"{run['on']['p50_us']:.0f} µs (×{run['ratio_p50']:.3f}), p90 "
            f"{run['off']['p90_us']:.0f} → {run['on']['p90_us']:.0f} µs (×{run['ratio_p90']:.3f})"
        )
    print(f"structures stored by the writer: {stored}")
    path = write_result(
        "harvest_overhead",
        {
            "model": "painn 2 members, 16 features, 2 layers, float32, CPU",
            "runs": runs,
            "structures_stored": stored,
            "goal": "ratio_p50 <= 1.05 (harvesting stays off the request path)",
        },
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
