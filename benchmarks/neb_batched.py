"""Benchmark: NEB with 8 images, batched driver vs ASE's NEB calling the server image by image.

Same server (child process), same model, same band, same FIRE (so all take the same steps).
The baseline is `ase.mep.NEB` with one `RemoteCalculator` (own stream) per image: 8 round
trips per iteration. Batched: the 8 moving images in one request per iteration, through the
driver `run_neb` (its own FIRE engine, ASE's FIRE step for step, one band force evaluation
per iteration; the headline ratio) and through `BatchedNEB` driven by ase.optimize.FIRE.
Ratio = image-by-image wall time / batched wall time (median over interleaved repeats).
Goal: ≥ 2× on CPU (≥ 5× on a GPU). Run: `.venv/bin/python -m benchmarks.neb_batched`.
"""

from __future__ import annotations

import os

# Tiny BLAS calls (NEB tangents, FIRE dot products) spin OpenBLAS threads on a shared CPU:
# one thread for both sides (the child server inherits it). Override from the environment.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import time

import numpy as np
from ase.build import add_adsorbate, fcc100
from ase.constraints import FixAtoms
from ase.mep import NEB
from ase.optimize import FIRE

from benchmarks.common import (
    RESULTS,
    ChildServer,
    free_port,
    write_result,
)
from mlipserve.client import Client, RemoteCalculator
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.neb import BatchedNEB, make_band, run_neb
from mlipserve.simulation.relax import relax_batch

SYSTEMS = {  # model: (slab element, adatom, lattice constant, adsorption height)
    "lj": ("Ar", "Ar", 5.26, 2.6),
    "emt": ("Al", "Au", None, 1.7),
}


def endpoints(model: str, provider) -> tuple:
    """Adatom hop between neighbouring hollows of fcc(100), 3×3×3 slab, endpoints relaxed."""
    symbol, adatom, a, height = SYSTEMS[model]
    slab = fcc100(symbol, size=(3, 3, 3), a=a)
    add_adsorbate(slab, adatom, height, "hollow")
    slab.center(axis=2, vacuum=4.0)
    slab.set_constraint(FixAtoms(mask=[t > 1 for t in slab.get_tags()]))
    final = slab.copy()
    final[-1].x += slab.cell[0, 0] / 3
    ends = relax_batch(provider, [slab, final], fmax=0.02, progress=False)
    return ends[0].atoms, ends[1].atoms


def batched(address, model, initial, final, n, fmax, steps) -> tuple[float, int]:
    provider = RemoteProvider(address, model)
    band = BatchedNEB(make_band(initial, final, n), provider, climb=True)
    t0 = time.perf_counter()
    opt = FIRE(band, logfile=None)
    opt.run(fmax=fmax, steps=steps)
    wall = time.perf_counter() - t0
    provider.close()
    return wall, opt.nsteps


LAST: dict = {}  # the last run_neb result per model, for the profile plot


def engine(address, model, initial, final, n, fmax, steps) -> tuple[float, int]:
    provider = RemoteProvider(address, model)
    images = make_band(initial, final, n)
    t0 = time.perf_counter()
    result = run_neb(provider, images, fmax=fmax, max_steps=steps, progress=False)
    wall = time.perf_counter() - t0
    provider.close()
    LAST[model] = result
    return wall, result.steps


def image_by_image(address, model, initial, final, n, fmax, steps) -> tuple[float, int]:
    client = Client(address, model)
    images = make_band(initial, final, n)
    calcs = [RemoteCalculator(client=client) for _ in images]
    for image, calc in zip(images, calcs):
        image.calc = calc
    neb = NEB(images, climb=True, method="improvedtangent")
    t0 = time.perf_counter()
    opt = FIRE(neb, logfile=None)
    opt.run(fmax=fmax, steps=steps)
    wall = time.perf_counter() - t0
    for calc in calcs:
        calc.close()
    client.close()
    return wall, opt.nsteps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="lj,emt")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fmax", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    rows = []
    with ChildServer("--models", args.models, "--rest-port", str(free_port())) as server:
        for model in args.models.split(","):
            provider = RemoteProvider(server.address, model)
            initial, final = endpoints(model, provider)
            provider.close()
            runs = {
                "run_neb": engine,
                "batched_neb_ase_fire": batched,
                "image_by_image": image_by_image,
            }
            times: dict[str, list[float]] = {k: [] for k in runs}
            steps: dict[str, int] = {}
            for _ in range(args.repeats):
                for name, fn in runs.items():
                    wall, nsteps = fn(
                        server.address, model, initial, final, args.images, args.fmax, args.steps
                    )
                    times[name].append(wall)
                    steps[name] = nsteps
            med = {k: float(np.median(v)) for k, v in times.items()}
            row = {
                "model": model,
                "atoms_per_image": len(initial),
                "images": args.images,
                "steps": steps,
                "seconds": times,
                "median_s": med,
                "ratio": med["image_by_image"] / med["run_neb"],
                "ratio_ase_fire": med["image_by_image"] / med["batched_neb_ase_fire"],
            }
            rows.append(row)
            row["barrier_eV"] = LAST[model].barrier
            row["profile_png"] = (
                LAST[model]
                .plot(
                    RESULTS / f"neb_batched_{model}.png",
                    title=f"{model}: adatom hop on fcc(100), {args.images} images",
                )
                .name
            )
            print(
                f"{model:4s} {len(initial)} atoms × {args.images} images, steps {steps}: "
                f"image-by-image {med['image_by_image']:.2f} s, run_neb {med['run_neb']:.2f} s "
                f"(×{row['ratio']:.2f}), BatchedNEB + ase FIRE "
                f"{med['batched_neb_ase_fire']:.2f} s (×{row['ratio_ase_fire']:.2f})"
            )
    path = write_result(
        "neb_batched", {"rows": rows, "fmax": args.fmax, "goal": ">=2x on CPU, >=5x on a GPU"}
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
