"""Issue "active learning" benchmark: cost of the uncertainty check per MD step.

Langevin MD steps (one force call each, as the active-learning driver makes them) on a Cu
cell, ms per step, interleaved so load drifts hit both sides alike:
- remote (a `mlipserve serve` child): lj-ensemble with "uncertainty" vs without, vs the
  single lj model; the shipped default ensemble with vs without "uncertainty";
- local (in-process, no transport): the default ensemble (K=4) with vs without
  "uncertainty", and with it vs a single member of the same PaiNN configuration (random
  weights: speed does not depend on them).
Run: `.venv/bin/python -m benchmarks.uncertainty_overhead [--atoms 108] [--steps 30]`.
"""

from __future__ import annotations

import argparse

import numpy as np
from ase import units
from ase.build import bulk

from benchmarks.common import ChildServer, interleaved, summarize, write_result
from mlipserve.simulation import MDState, RemoteProvider, langevin_baoab
from mlipserve.simulation.active_learning import ActiveLearningConfig

WITH = ("energy", "forces", "uncertainty")
WITHOUT = ("energy", "forces")


class Stepper:
    """Langevin MD of one cell through a provider with fixed properties; `__call__` = 1 step."""

    def __init__(self, provider, atoms, properties, trust_hi: float) -> None:
        self.provider, self.properties, self.trust_hi = provider, properties, trust_hi
        self.integrator = langevin_baoab(2 * units.fs, 300.0, 0.02 / units.fs)
        self.state = self._compute(MDState.from_atoms(atoms, temperature_K=300.0, seeds=[0]))
        self.untrusted = 0

    def _compute(self, state: MDState) -> MDState:
        self.results = self.provider.evaluate(state.systems(), self.properties)
        return state.with_results(self.results)

    def __call__(self) -> None:
        self.state = self.integrator.step(self.state, self._compute)
        if "uncertainty" in self.properties:  # the driver's check: σ = max force std
            self.untrusted += max(r["max_force_std"] for r in self.results) >= self.trust_hi


def compare(label: str, first: Stepper, second: Stepper, steps: int) -> dict:
    """ms per step of two steppers, interleaved; ratio = first / second."""
    a, b = interleaved(first, second, steps, warmup=3)
    row = {"case": label, "first": summarize(a), "second": summarize(b)}
    row["ms_first"] = row["first"]["median_us"] / 1e3
    row["ms_second"] = row["second"]["median_us"] / 1e3
    row["ratio"] = row["ms_first"] / row["ms_second"]
    print(
        f"{label:58s} {row['ms_first']:8.2f} ms vs {row['ms_second']:8.2f} ms  "
        f"ratio {row['ratio']:.3f}",
        flush=True,
    )
    return row


def local_default(members: int):
    """The shipped default ensemble in-process, or (members=1) one member of its configuration."""
    import dataclasses

    import torch

    from mlipserve.server.models.base import ModelInfo
    from mlipserve.server.models.builtin import load_builtin
    from mlipserve.server.models.painn import PaiNN
    from mlipserve.server.models.torch_potential import TorchPotential
    from mlipserve.server.serving.local import LocalProvider

    default = load_builtin("default")
    if members > 1:
        return LocalProvider(default)
    torch.manual_seed(0)
    cfg = dataclasses.replace(default.module.cfg, members=1)
    info = ModelInfo(
        name="painn-k1",
        version="bench",
        kind="painn",
        cutoff=cfg.cutoff,
        ensemble_size=0,
        dtype=default.info.dtype,
        device="cpu",
    )
    return LocalProvider(TorchPotential(PaiNN(cfg), info))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--atoms", type=int, default=108, help="Cu cell size (4 n³ atoms)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per case")
    args = parser.parse_args()
    n = max(1, round((args.atoms / 4) ** (1 / 3)))
    cu = bulk("Cu", "fcc", a=3.61, cubic=True) * (n, n, n)
    ar = bulk("Ar", "fcc", a=5.26, cubic=True) * (n, n, n)  # the LJ models are argon-like
    hi = ActiveLearningConfig(model="x", dataset="x", holdout="x").trust_hi
    rows = []
    with ChildServer("--models", "lj,lj-ensemble,default", "--workers", "0") as server:

        def remote(model, atoms, props):
            return Stepper(RemoteProvider(server.address, model), atoms, props, hi)

        rows.append(
            compare(
                "remote lj-ensemble: uncertainty / none",
                remote("lj-ensemble", ar, WITH),
                remote("lj-ensemble", ar, WITHOUT),
                args.steps,
            )
        )
        rows.append(
            compare(
                "remote lj-ensemble + uncertainty / lj (single)",
                remote("lj-ensemble", ar, WITH),
                remote("lj", ar, WITHOUT),
                args.steps,
            )
        )
        rows.append(
            compare(
                "remote default (K=4): uncertainty / none",
                remote("default", cu, WITH),
                remote("default", cu, WITHOUT),
                args.steps,
            )
        )
    default_k4 = local_default(4)
    rows.append(
        compare(
            "local default (K=4): uncertainty / none",
            Stepper(default_k4, cu, WITH, hi),
            Stepper(default_k4, cu, WITHOUT, hi),
            args.steps,
        )
    )
    rows.append(
        compare(
            "local default K=4 + uncertainty / same PaiNN K=1",
            Stepper(default_k4, cu, WITH, hi),
            Stepper(local_default(1), cu, WITHOUT, hi),
            args.steps,
        )
    )
    path = write_result(
        "uncertainty_overhead",
        {
            "atoms": len(cu),
            "steps": args.steps,
            "rows": rows,
            "note": "ratio = ms/step of the first case over the second (median of interleaved "
            "steps); remote = gRPC to a child `mlipserve serve`",
        },
    )
    print("wrote", path)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
