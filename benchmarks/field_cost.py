"""Benchmark: what field conditioning costs next to the plain short-range model.

In process (`LocalProvider`, float64): the same tiny PaiNN (16 features, 2 layers, 4 members,
4 Å) alone, and as the short-range part of `painn-field` (charge equilibration + field
coupling), on 8 water molecules (one call): energy + forces; + dipole; + dipole + Born
charges; + dipole + polarizability. Ratios to the plain model, medians of `--repeats`.
Run: `.venv/bin/python -m benchmarks.field_cost` (under a minute).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from ase.build import molecule

from benchmarks.common import write_result
from mlipserve.server.models.families import native_potential
from mlipserve.server.models.field import FieldConfig, FieldPaiNN
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.serving.local import LocalProvider

SIZES = {"features": 16, "radial": 8, "layers": 2, "members": 4, "max_z": 10, "cutoff": 4.0}
CASES = {
    "plain: energy+forces": ("plain", ["energy", "forces"]),
    "field: energy+forces": ("field", ["energy", "forces"]),
    "field: +dipole": ("field", ["energy", "forces", "dipole"]),
    "field: +dipole+born_charges": ("field", ["energy", "forces", "dipole", "born_charges"]),
    "field: +dipole+polarizability": ("field", ["energy", "forces", "dipole", "polarizability"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--molecules", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    plain = PaiNN(PaiNNConfig(**SIZES))
    field = FieldPaiNN(FieldConfig(**SIZES))
    field.short.load_state_dict(plain.state_dict())
    providers = {
        "plain": LocalProvider(native_potential(plain, "plain")),
        "field": LocalProvider(native_potential(field, "field")),
    }
    frames = []
    for k in range(args.molecules):
        water = molecule("H2O")
        water.rattle(0.05, seed=k)
        water.info["external_field"] = np.array([0.0, 0.0, 0.05])
        frames.append(water)
    seconds = {}
    for name, (which, props) in CASES.items():
        systems = [f.copy() for f in frames]
        if which == "plain":
            for s in systems:
                s.info.pop("external_field")
        times = []
        for _ in range(args.repeats + 1):
            start = time.perf_counter()
            providers[which].evaluate(systems, props)
            times.append(time.perf_counter() - start)
        seconds[name] = float(np.median(times[1:]))
    base = seconds["plain: energy+forces"]
    ratios = {k: v / base for k, v in seconds.items()}
    print(ratios)
    write_result(
        "field_cost", {"molecules": args.molecules, "seconds": seconds, "over_plain": ratios}
    )


if __name__ == "__main__":
    main()
