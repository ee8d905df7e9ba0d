"""`make gpu-check`: CUDA conformance and the GPU benchmarks in one prepared run (< 8 min).

1. Conformance (`gpu_conformance`): every native family (PaiNN ensemble; long-range with
   Ewald, PME and the direct sum; field) and the pair models on the device in float64 and
   float32 against CPU float64 computed in this process, with tolerances per family, dtype.
2. Benchmarks (`gpu_bench`): remote vs in-process at 1k/10k atoms, 64 clients with batching
   on vs off, ensemble of 4 vs one member, µs/atom/step of the shipped default model.
Goals on a GPU: batching ≥ 10×, ensemble K=4 ≤ 1.5× K=1, remote ≤ 1.05× in-process at 1k
atoms (recorded as met or not; only conformance failures and errors fail the run).
One command; the two servers it measures remote calls against are its child processes.
Writes benchmarks/results/gpu_check_<device>.json (after every section, so a run cut short
keeps what it measured), with the device recorded. `--device cpu --smoke` is the CI mode:
the same paths on CPU at toy sizes (float32 against float64), in well under a minute.
Run: `make gpu-check` or `.venv/bin/python -m benchmarks.gpu_check --device cuda`.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

import torch

from benchmarks import ensemble_cost, gpu_bench, remote_vs_local
from benchmarks.common import RESULTS, machine, write_result
from benchmarks.gpu_conformance import conformance

FULL = {
    "remote_models": ("default", "lj"),
    "remote_sizes": {n: remote_vs_local.SIZES[n] for n in (1000, 10000)},
    "remote_repeats": 0,  # by size: 30 at 1k atoms, 5 at 10k
    "batching_model": "lj",  # 32-atom argon cells, as benchmarks/batching_throughput.py
    "clients": 64,
    "seconds": 10.0,
    "settle": 3.0,
    "ensemble_sizes": ensemble_cost.SIZES,
    "ensemble_repeats": 0,  # by size: 10 below 5k atoms, 3 above
    "step_sizes": {108: (3, 3, 3), 1372: (7, 7, 7), 10976: (14, 14, 14)},
    "steps": 20,
}
SMOKE = {
    "remote_models": ("lj",),
    "remote_sizes": {64: remote_vs_local.SIZES[64]},
    "remote_repeats": 3,
    "batching_model": "lj",
    "clients": 4,
    "seconds": 1.0,
    "settle": 1.0,
    "ensemble_sizes": {108: ensemble_cost.SIZES[108]},
    "ensemble_repeats": 2,
    "step_sizes": {108: (3, 3, 3)},
    "steps": 3,
}
GOALS = {"batching": 10.0, "ensemble": 1.5, "remote_1k": 1.05}
SECTIONS = ("conformance", "served", "ensemble", "step")


def device_record(device: str) -> dict:
    """The device asked for, what torch calls it and its hardware name."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return {"device": device, "type": dev.type, "name": machine().get("cpu", dev.type)}
    try:
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return {
            "device": device,
            "type": "cuda",
            "index": index,
            "name": props.name,
            "memory_gb": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        }
    except Exception as err:  # the record must not stop the run
        return {"device": device, "type": "cuda", "error": f"{type(err).__name__}: {err}"}


def goals(result: dict, gpu: bool) -> list[dict]:
    """Each GPU goal with its measured value and whether it is met (applies: a full GPU run)."""
    out = []
    bench = result.get("benchmarks", {})
    served = bench.get("served")
    if served:
        ratio = served["batching"]["ratio"]
        out.append({"name": "batching", "goal": ">= 10x", "value": ratio,
                    "met": ratio >= GOALS["batching"]})  # fmt: skip
        first = served["remote_vs_local"][0]["model"]
        rows = [r for r in served["remote_vs_local"] if r["model"] == first]
        row = min(rows, key=lambda r: abs(r["atoms"] - 1000))
        out.append({"name": f"remote_vs_local ({first}, {row['atoms']} atoms)",
                    "goal": "<= 1.05x", "value": row["ratio_median"],
                    "met": row["ratio_median"] <= GOALS["remote_1k"]})  # fmt: skip
    if "ensemble" in bench:
        ratios = {r["atoms"]: r["ratio"] for r in bench["ensemble"]["rows"][:-1]}
        worst = max(ratios.values())
        out.append({"name": "ensemble K=4 / K=1 (worst size)", "goal": "<= 1.5x", "value": worst,
                    "by_atoms": ratios, "met": worst <= GOALS["ensemble"]})  # fmt: skip
    for goal in out:
        goal["applies"] = gpu
    return out


def sections(device: str, cfg: dict) -> dict:
    """The run's sections by name: functions of no argument returning their results."""
    return {
        "conformance": lambda: conformance(device),
        "served": lambda: gpu_bench.served(
            device,
            cfg["remote_models"],
            cfg["remote_sizes"],
            cfg["remote_repeats"],
            cfg["batching_model"],
            cfg["clients"],
            cfg["seconds"],
            cfg["settle"],
        ),
        "ensemble": lambda: gpu_bench.ensemble(
            device, cfg["ensemble_sizes"], cfg["ensemble_repeats"]
        ),
        "step": lambda: gpu_bench.step(device, cfg["step_sizes"], cfg["steps"]),
    }


def run(device: str, smoke: bool, out: Path, only: list[str] | None = None) -> tuple[Path, dict]:
    """Run every section (or `only` those), writing the JSON after each; (path, payload)."""
    cfg = SMOKE if smoke else FULL
    name = "gpu_check_" + device.replace(":", "")
    payload: dict = {
        "mode": "smoke" if smoke else "full",
        "device": device_record(device),
        "settings": cfg,
        "benchmarks": {},
        "errors": {},
        "seconds": {},
    }
    start = time.perf_counter()
    gpu = torch.device(device).type == "cuda" and not smoke
    path = out / f"{name}.json"
    for section, fn in sections(device, cfg).items():
        if only and section not in only:
            continue
        t0 = time.perf_counter()
        try:
            value = fn()
            if section == "conformance":
                payload["conformance"] = value
            else:
                payload["benchmarks"][section] = value
        except Exception as err:  # record and go on: one failed section keeps the others
            traceback.print_exc()
            payload["errors"][section] = f"{type(err).__name__}: {err}"
        payload["seconds"][section] = round(time.perf_counter() - t0, 1)
        payload["seconds"]["total"] = round(time.perf_counter() - start, 1)
        payload["goals"] = goals(payload, gpu)
        conf_ok = payload.get("conformance", {}).get("ok", only is not None)
        payload["ok"] = bool(conf_ok and not payload["errors"])
        path = write_result(name, payload, out)
    return path, payload


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run, print the goals; exit 1 on a conformance failure or error."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda", help="'cuda', 'cuda:N' or 'cpu'")
    parser.add_argument("--smoke", action="store_true", help="toy sizes (the CI mode)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON")
    parser.add_argument("--only", default="", help="comma-separated sections to run")
    args = parser.parse_args(argv)
    try:
        kind = torch.device(args.device).type
    except RuntimeError as err:
        parser.error(f"--device {args.device!r}: {err}")
    if kind not in ("cpu", "cuda"):
        parser.error(f"--device must be 'cpu', 'cuda' or 'cuda:N', not {args.device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    only = [s for s in args.only.split(",") if s] or None
    unknown = sorted(set(only or ()) - set(SECTIONS))
    if unknown:
        parser.error(f"--only: unknown section(s) {unknown}; known: {list(SECTIONS)}")
    path, payload = run(args.device, args.smoke, args.out, only)
    for goal in payload["goals"]:
        state = "met" if goal["met"] else "NOT met"
        note = "" if goal["applies"] else " (a goal of a full GPU run)"
        print(f"goal {goal['name']}: {goal['value']:.2f} ({goal['goal']}) {state}{note}")
    print(f"{'ok' if payload['ok'] else 'FAILED'} in {payload['seconds']['total']} s; wrote {path}")
    return 0 if payload["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
