"""Benchmark: what the long-range (Coulomb) term costs next to the short-range PaiNN.

In process (`LocalProvider`, energy + forces, float64, CPU or the GPU if present): the same
tiny PaiNN (16 features, 2 layers, 4 members, 5 Å) alone and with fixed-charge Coulomb by
Ewald and by PME (8 Å real space, accuracy 1e-6), on rocksalt NaCl of 1,000 and 10,648 ions
(Ewald at 10,648 ions is skipped: ~5e5 k-vectors × 1e4 ions); then 8 cells of 64 ions in one
call against 8 calls. Ratios are per run, timings the median of `--repeats`.
Run: `.venv/bin/python -m benchmarks.longrange_cost` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from ase.build import bulk

from benchmarks.common import write_result
from mlipserve.server.models.families import native_potential
from mlipserve.server.models.longrange import LongRangeConfig, LongRangePaiNN
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.serving.local import LocalProvider

SIZES = {"features": 16, "radial": 8, "layers": 2, "members": 4, "max_z": 17, "cutoff": 5.0}


def providers(methods: tuple[str, ...]) -> dict[str, LocalProvider]:
    """PaiNN alone and PaiNN + Coulomb by each method, all with the same short-range weights."""
    torch.manual_seed(0)
    short = PaiNN(PaiNNConfig(**SIZES))
    out = {"short-range": LocalProvider(native_potential(short, "sr"))}
    for method in methods:
        cfg = LongRangeConfig(
            **SIZES, element_charges={"11": 1.0, "17": -1.0}, coulomb_cutoff=8.0, method=method
        )
        module = LongRangePaiNN(cfg)
        module.short.load_state_dict(short.state_dict())
        out[method] = LocalProvider(native_potential(module, method))
    return out


def timed(provider: LocalProvider, systems: list, repeats: int, one_by_one: bool = False) -> float:
    """Median seconds of an energy + forces evaluation of `systems`."""
    times = []
    for _ in range(repeats + 1):  # the first call warms up
        start = time.perf_counter()
        if one_by_one:
            for s in systems:
                provider.evaluate([s], ["energy", "forces"])
        else:
            provider.evaluate(systems, ["energy", "forces"])
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cell = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    rows = []
    for reps, methods in ((5, ("ewald", "pme")), (11, ("pme",))):
        atoms = cell * (reps, reps, reps)
        models = providers(methods)
        base = timed(models["short-range"], [atoms], args.repeats)
        row = {"ions": len(atoms), "short_range_s": base}
        for method in methods:
            seconds = timed(models[method], [atoms], args.repeats)
            row[f"{method}_s"] = seconds
            row[f"{method}_over_short_range"] = seconds / base
        rows.append(row)
        print(row)
    models = providers(("ewald", "pme"))
    small = [cell * (2, 2, 2) for _ in range(8)]
    for k, atoms in enumerate(small):
        atoms.rattle(0.05, seed=k)
    batching = {}
    for name, provider in models.items():
        together = timed(provider, small, args.repeats)
        apart = timed(provider, small, args.repeats, one_by_one=True)
        batching[name] = {"batched_s": together, "one_by_one_s": apart, "speedup": apart / together}
    print(batching)
    write_result("longrange_cost", {"sizes": SIZES, "by_size": rows, "batch_8x64": batching})


if __name__ == "__main__":
    main()
