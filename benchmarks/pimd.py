"""Benchmark: PIMD with 32 beads, one batched provider call per step vs one call per bead,
and our cost per step outside the potential vs i-PI 3.3.1's.

(a) Same server (child process, models lj and emt), same PIMD (32 beads, PILE-L 100 fs,
300 K, 1 fs, one seed): batched = `PathIntegralMD` over a `RemoteProvider` (one evaluate
call holding all 32 beads per step); bead by bead = the same runner behind a wrapper that
makes one call per bead (what i-PI's socket protocol does). Systems: 32 Ar atoms (fcc
2×2×2, LJ) and 32 Cu atoms (fcc 2×2×2, EMT). Figure: steps/s, ratio batched / bead by
bead, rounds alternating; both runs must end in the same positions (checked).
(b) Overhead per step at 32 beads × 32 Cu atoms (EMT): wall time per step minus the
server's own compute time of that step's batch (`compute_s`: neighbour lists + model),
split into the integrator (client numpy) and the round trip (encode, gRPC, decode, batcher).
Compared with i-PI 3.3.1 + its zero-cost `dummy` py_driver on a unix socket, same system,
beads, thermostat and step, measured in the same run (i-PI's own "t/step" log).
Goal: our overhead ≤ 0.2× i-PI's.
Run: `.venv/bin/python -m benchmarks.pimd`.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk

from benchmarks.common import ChildServer, write_result
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.pimd import PILE_L, PathIntegralMD, PIMDIntegrator, RingPolymerState

BEADS, TEMPERATURE, DT_FS, TAU_FS = 32, 300.0, 1.0, 100.0


class Timed:
    """Wraps a provider: per call, wall seconds and the server's compute seconds."""

    def __init__(self, inner, per_bead: bool = False) -> None:
        self.inner, self.per_bead = inner, per_bead
        self.wall: list[float] = []
        self.compute: list[float] = []

    def evaluate(self, systems, properties=("energy", "forces")):
        t0 = time.perf_counter()
        if self.per_bead:
            results = [self.inner.evaluate([s], properties)[0] for s in systems]
            compute = sum(r.get("batch", {}).get("compute_s", 0.0) for r in results)
        else:
            results = self.inner.evaluate(systems, properties)
            compute = results[0].get("batch", {}).get("compute_s", 0.0)
        self.wall.append(time.perf_counter() - t0)
        self.compute.append(float(compute))
        return results


def crystal(model: str):
    """32 atoms: Ar fcc (a = 5.26 Å) for LJ, Cu fcc (a = 3.61 Å) for EMT, lightly rattled."""
    atoms = (
        bulk("Ar", "fcc", a=5.26, cubic=True)
        if model == "lj"
        else bulk("Cu", "fcc", a=3.61, cubic=True)
    ) * (2, 2, 2)
    atoms.rattle(0.02, seed=0)
    return atoms


def make_pimd(provider, model: str) -> PathIntegralMD:
    state = RingPolymerState.from_atoms(crystal(model), BEADS, TEMPERATURE, seeds=0)
    return PathIntegralMD(
        provider, state, PIMDIntegrator(DT_FS * units.fs, PILE_L(TAU_FS * units.fs))
    )


def batched_vs_beads(address: str, model: str, steps: int, rounds: int) -> dict:
    """(a) steps/s of both ways, alternating rounds; final positions compared."""
    provider = RemoteProvider(address, model)
    try:
        runs = {"batched": Timed(provider), "bead_by_bead": Timed(provider, per_bead=True)}
        pimds = {key: make_pimd(w, model) for key, w in runs.items()}
        for pimd in pimds.values():
            pimd.run(2)  # warm-up
        seconds: dict[str, list[float]] = {key: [] for key in runs}
        for _ in range(rounds):
            for key, pimd in pimds.items():
                t0 = time.perf_counter()
                pimd.run(steps)
                seconds[key].append(time.perf_counter() - t0)
    finally:
        provider.close()
    diff = float(
        np.abs(pimds["batched"].state.positions - pimds["bead_by_bead"].state.positions).max()
    )
    row: dict = {
        "model": model,
        "atoms": 32,
        "beads": BEADS,
        "steps_per_round": steps,
        "rounds": rounds,
        "max_position_difference_A": diff,
    }
    for key in runs:
        rates = steps / np.array(seconds[key])
        row[key] = {
            "steps_per_s": float(np.median(rates)),
            "steps_per_s_rounds": rates.tolist(),
            "calls_per_step": BEADS if key == "bead_by_bead" else 1,
        }
    row["ratio"] = row["batched"]["steps_per_s"] / row["bead_by_bead"]["steps_per_s"]
    return row


def our_overhead(address: str, model: str, steps: int) -> dict:
    """(b) per-step wall, round trip and server compute for batched PIMD of 32 atoms × 32 beads."""
    provider = RemoteProvider(address, model)
    try:
        timed = Timed(provider)
        pimd = make_pimd(timed, model)
        pimd.run(3)
        timed.wall.clear()
        timed.compute.clear()
        walls = []
        for _ in range(steps):
            t0 = time.perf_counter()
            pimd.step()
            walls.append(time.perf_counter() - t0)
    finally:
        provider.close()
    wall, trip, compute = (np.array(x) * 1e3 for x in (walls, timed.wall, timed.compute))
    return {
        "step_ms": float(np.median(wall)),
        "round_trip_ms": float(np.median(trip)),
        "server_compute_ms": float(np.median(compute)),
        "overhead_ms": float(np.median(wall - compute)),
        "integrator_ms": float(np.median(wall - trip)),
        "transport_ms": float(np.median(trip - compute)),
        "steps": steps,
        "model": model,
    }


def ipi_overhead(steps: int) -> dict:
    """i-PI 3.3.1 + `i-pi-py_driver -m dummy` (zeros): its logged mean t/step per 100 steps."""
    from tests.simulation.pimd.ipi_reference import ipi_available, start_ipi

    if not ipi_available():
        return {"skipped": "i-PI is not installed"}
    atoms = crystal("emt")
    with tempfile.TemporaryDirectory() as tmp:
        run = start_ipi(
            Path(tmp),
            list(atoms.get_chemical_symbols()),
            atoms.positions,
            BEADS,
            steps,
            TEMPERATURE,
            DT_FS,
            TAU_FS,
            ["-m", "dummy"],
            stride=steps,
            cell=2 * 3.61,
            verbosity="medium",
        )
        t0 = time.perf_counter()
        run.wait(timeout=600)
        total = time.perf_counter() - t0
        log = (Path(tmp) / "ipi.log").read_text()
    per_step = [float(x) for x in re.findall(r"t/step:\s*([0-9.eE+-]+)", log)]
    if len(per_step) > 1:
        per_step = per_step[1:]  # the first block holds start-up
    return {
        "step_ms": float(np.median(per_step)) * 1e3,
        "t_step_blocks_ms": [round(x * 1e3, 3) for x in per_step],
        "steps": steps,
        "wall_incl_startup_s": total,
        "driver": "i-pi-py_driver -m dummy (unix socket)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20, help="timed LJ steps per round in (a)")
    parser.add_argument("--emt-steps", type=int, default=4, help="timed EMT steps per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--overhead-steps", type=int, default=100, help="LJ; EMT does a fifth")
    parser.add_argument("--ipi-steps", type=int, default=400)
    args = parser.parse_args()
    with ChildServer("--models", "lj,emt") as server:
        comparison = [
            batched_vs_beads(server.address, "lj", args.steps, args.rounds),
            batched_vs_beads(server.address, "emt", args.emt_steps, args.rounds // 2),
        ]
        ours = our_overhead(server.address, "emt", max(5, args.overhead_steps // 5))
        ours_lj = our_overhead(server.address, "lj", args.overhead_steps)
        ipi = ipi_overhead(args.ipi_steps)  # right after ours, on the same (shared) machine
    ratio = ours["overhead_ms"] / ipi["step_ms"] if "step_ms" in ipi else None
    payload = {
        "setup": f"{BEADS} beads, 32 atoms, PILE-L {TAU_FS:g} fs, {TEMPERATURE:g} K, "
        f"dt {DT_FS:g} fs, BAOAB; server in a child process",
        "batched_vs_bead_by_bead": comparison,
        "overhead": {
            "ours": ours,
            "ours_lj_ar32": ours_lj,
            "ipi_dummy": ipi,
            "ratio_ours_to_ipi": ratio,
            "ratio_integrator_only_to_ipi": ours["integrator_ms"] / ipi["step_ms"]
            if "step_ms" in ipi
            else None,
            "goal": "ours <= 0.2 x i-PI",
            "terms": "overhead = step wall - server compute_s; integrator = step wall "
            "- client round trip (numpy ring-polymer step, systems, results); "
            "transport = round trip - compute_s (request build, gRPC, server "
            "decode and per-system validation, batcher, response encode/decode)",
        },
    }
    path = write_result("pimd", payload)
    for row in comparison:
        print(
            f"(a) {row['model']}: batched {row['batched']['steps_per_s']:.2f} steps/s, "
            f"bead by bead {row['bead_by_bead']['steps_per_s']:.2f} steps/s, "
            f"ratio {row['ratio']:.1f}x (max Δq {row['max_position_difference_A']:.1e} Å)"
        )
    for name, row in (("Cu32 EMT", ours), ("Ar32 LJ", ours_lj)):
        print(
            f"(b) ours {name}: overhead {row['overhead_ms']:.2f} ms/step (integrator "
            f"{row['integrator_ms']:.2f}, transport {row['transport_ms']:.2f}; server "
            f"compute {row['server_compute_ms']:.2f})"
        )
    print(
        f"(b) i-PI + dummy driver {ipi.get('step_ms', float('nan')):.2f} ms/step; "
        f"ratio ours/i-PI {ratio}"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
