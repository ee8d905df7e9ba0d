"""Issue 19 benchmark: small-system latency of the native model, today's code vs the code
before the performance round (BASELINE, the last commit before it changed the model path).

The shipped default ensemble (PaiNN, K = 4) on fcc Cu 3x3x3 cubic (108 atoms), energy +
forces + stress + uncertainty, in process (`TorchPotential.compute`, neighbour list
included), over an MD-like trajectory (every step moves each atom by a small random
displacement, so a Verlet list is reused between rebuilds). The baseline's `painn.py` and
`torch_potential.py` (extracted with `git show BASELINE:…`) are loaded under other module
names with the same weights; both run alternately in one process, single thread and two
threads, in the served float32 and in float64, where every step's results must agree to
1e-10. Goal: new / baseline ≤ 0.4. Run: `.venv/bin/python -m benchmarks.step_latency`
(`--baseline REV` to compare with another revision, e.g. HEAD for a change not yet committed).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

from benchmarks.common import interleaved, summarize, write_result
from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.batch import SystemBatch
from mlipserve.server.models.builtin import SHIPPED
from mlipserve.server.models.compiled import compiled_module
from mlipserve.server.store import ModelStore
from mlipserve.wire import SystemArrays

ROOT = Path(__file__).resolve().parents[1]
PROPERTIES = frozenset({"energy", "forces", "stress", "uncertainty"})
BASELINE = "41eaae4"  # before Verlet reuse, torch.compile, index_add and the batched pipeline
KEYS = ("energy", "energy_std", "forces", "forces_std", "stress")


def baseline_modules(revision: str = BASELINE):
    """The baseline's painn and torch_potential modules, imported as _baseline_* (same weights)."""
    folder = Path(tempfile.mkdtemp(prefix="step_latency_"))
    for name in ("torch_potential", "painn"):
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{revision}:server/models/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        text = text.replace("mlipserve.server.models.torch_potential", "_baseline_torch_potential")
        (folder / f"_baseline_{name}.py").write_text(text)
    mods = []
    for name in ("torch_potential", "painn"):
        spec = importlib.util.spec_from_file_location(
            f"_baseline_{name}", folder / f"_baseline_{name}.py"
        )
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods


def potentials(dtype: str, revision: str = BASELINE):
    """(The baseline's evaluator, today's evaluator) of the shipped default model in `dtype`."""
    base_tp, base_painn = baseline_modules(revision)
    new = ModelStore(SHIPPED).load("default", dtype=dtype, device="cpu")
    module = base_painn.PaiNN(base_painn.PaiNNConfig(**new.module.cfg.to_dict()))
    module.load_state_dict(new.module.state_dict())
    info = ModelInfo(**{**new.info.__dict__, "device": "cpu"})
    return base_tp.TorchPotential(module, info), new


def trajectory(steps: int, seed: int = 0, reps=(3, 3, 3)) -> list[SystemBatch]:
    """fcc Cu (108 atoms at `reps` 3x3x3 cubic), each step a small random move (≈ 0.02 Å
    per step, like MD)."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(reps)
    atoms.rattle(0.05, seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        atoms.positions += rng.normal(0.0, 0.012, atoms.positions.shape)
        out.append(SystemBatch.single(SystemArrays.from_atoms(atoms)))
    return out


def check(old: dict, new: dict, atol: float) -> float:
    """Largest absolute difference over the compared results; raise past `atol`."""
    worst = 0.0
    for key in KEYS:
        diff = float(np.max(np.abs(np.asarray(old[key]) - np.asarray(new[key]))))
        if diff > atol:
            raise AssertionError(f"{key} differs by {diff:.3g} (> {atol:g})")
        worst = max(worst, diff)
    return worst


def stepper(potential, frames: list[SystemBatch]):
    """A function evaluating the next frame of `frames` (cyclically) with `potential`."""
    state = {"step": 0}

    def step() -> None:
        potential.compute(frames[state["step"] % len(frames)], PROPERTIES)
        state["step"] += 1

    return step


def measure(dtype: str, threads: int, steps: int, compiled: bool, revision: str = BASELINE) -> dict:
    """Median step time of the baseline and today's code (eager, and compiled when asked),
    alternately on the same trajectory; every result checked against the baseline's."""
    torch.set_num_threads(threads)
    old, new = potentials(dtype, revision)
    frames = trajectory(steps + 3)
    atol = 1e-10 if dtype == "float64" else 1e-3
    contenders = {"new": new}
    compile_s = None
    if compiled:
        fast = ModelStore(SHIPPED).load("default", dtype=dtype, device="cpu")
        fast.compiled = compiled_module(fast.module)
        t0 = time.perf_counter()
        fast.compute(frames[0], PROPERTIES)  # compiles forward and backward
        compile_s = time.perf_counter() - t0
        if fast.compiled is not None:
            contenders["new_compiled"] = fast
    worst = 0.0
    for b in frames[:3]:
        want = old.compute(b, PROPERTIES)
        worst = max(
            worst, *(check(want, p.compute(b, PROPERTIES), atol) for p in contenders.values())
        )
    rebuilds = new.neighbors.rebuilds
    t_old, t_new = interleaved(stepper(old, frames), stepper(new, frames), steps, warmup=2)
    times = {"baseline": t_old, "new": t_new}
    if "new_compiled" in contenders:
        _, times["new_compiled"] = interleaved(
            stepper(old, frames), stepper(contenders["new_compiled"], frames), steps, warmup=2
        )
    for b in frames[-3:]:  # after the timed steps: the reused lists still give the same
        want = old.compute(b, PROPERTIES)
        worst = max(
            worst, *(check(want, p.compute(b, PROPERTIES), atol) for p in contenders.values())
        )
    row = {"dtype": dtype, "threads": threads, "compiled_in_process": compiled}
    row.update({k: summarize(v) for k, v in times.items()})
    for key in ("new", "new_compiled"):
        if key in row:
            row[f"ratio_{key}"] = row[key]["median_us"] / row["baseline"]["median_us"]
    return {
        **row,
        "compile_s": compile_s,
        "max_abs_difference": worst,
        "tolerance": atol,
        "neighbour_rebuilds_during_timing": new.neighbors.rebuilds - rebuilds,
        "timed_steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    args = parser.parse_args()
    rows = []
    modes = [False] if args.no_compile else [False, True]  # eager rows before any compile
    for compiled in modes:
        for dtype, threads in [(d, t) for d in ("float32", "float64") for t in (1, 2)]:
            row = measure(dtype, threads, args.steps, compiled, args.baseline)
            rows.append(row)
            keys = ("baseline", "new", "new_compiled")
            ms = {k: row[k]["median_us"] / 1e3 for k in keys if k in row}
            print(
                f"{dtype} threads={threads}: "
                + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
                + f", ratio {row['ratio_new']:.2f} (eager) / "
                f"{row.get('ratio_new_compiled', float('nan')):.2f} (compiled)"
                f", compile {row['compile_s'] or 0:.0f} s"
                f", max |diff| {row['max_abs_difference']:.2g}"
                f", rebuilds {row['neighbour_rebuilds_during_timing']}"
            )
    path = write_result(
        "step_latency",
        {
            "model": "default (PaiNN K=4, shipped)",
            "system": "fcc Cu 3x3x3 cubic, 108 atoms, MD-like steps",
            "properties": sorted(PROPERTIES),
            "goal": "new / baseline <= 0.4",
            "baseline_revision": args.baseline,
            "note": "new: eager (default); new_compiled: MLIPSERVE_COMPILE=1 (torch.compile)",
            "rows": rows,
        },
    )
    print(path)


if __name__ == "__main__":
    main()
