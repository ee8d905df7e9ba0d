"""The metal default model on alloys it was not generated with (issue 20, "tested on data it
was not generated with").

Every version of `default` in a store is evaluated (float64, the serving path) on the
independent alloy set (`server/training/alloy_testset.py`: another procedure than the
training generator), split into its bulk-with-vacancy and (110)-surface halves, and on the
in-distribution held-out set. Writes benchmarks/results/default_model_alloys.json and,
with --write-metadata, the figures into the default version's metadata (`independent_alloys`).
Run: `.venv/bin/python -m benchmarks.default_model_alloys [STORE] [INDEPENDENT.extxyz]`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import ase.io

from benchmarks.common import write_result
from mlipserve.server.models.builtin import SHIPPED
from mlipserve.server.store import ModelStore
from mlipserve.server.training.alloy_testset import independent_alloys
from mlipserve.server.training.emt_data import generate
from mlipserve.server.training.report import evaluate_split

SEED = 7  # of the independent set
PROCEDURE = (
    "server/training/alloy_testset.py (mlipserve data --independent --seed 7): 4-5 component "
    "fcc alloys, Dirichlet compositions, lattice constant uniform between the smallest and "
    "largest pure-metal constant of the chosen elements, 0.08 Å Gaussian rattle, unstrained "
    "26/31-atom bulk cells with a vacancy or 16-atom (110) slabs (a facet absent from training)"
)


def figures(module, frames) -> dict:
    """Whole-set figures plus each half (even frames: bulk with a vacancy; odd: (110) slabs)."""
    out = evaluate_split(module, frames)
    out["vacancy_bulk"] = evaluate_split(module, frames[0::2])
    out["surface_110"] = evaluate_split(module, frames[1::2])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", nargs="?", type=Path, default=SHIPPED)
    parser.add_argument("independent", nargs="?", type=Path, default=None)
    parser.add_argument("--write-metadata", action="store_true")
    args = parser.parse_args()
    frames = (
        independent_alloys(SEED)
        if args.independent is None
        else ase.io.read(args.independent, index=":")
    )
    held_out = generate(1, 1)
    store = ModelStore(args.store)
    rows = {}
    for version in store.versions("default"):
        pot = store.load("default", version=version, dtype="float64", device="cpu")
        rows[version] = {
            "independent_alloys": figures(pot.module, frames),
            "held_out_same_generator": evaluate_split(pot.module, held_out),
        }
        print(version, json.dumps(rows[version]["independent_alloys"], indent=None)[:200])
    path = write_result(
        "default_model_alloys",
        {
            "store": str(args.store),
            "independent_set": f"{PROCEDURE}; {len(frames)} frames",
            "held_out_same_generator": "emt_data.generate(seed=1), 54 frames",
            "versions": rows,
        },
    )
    if args.write_metadata:
        version = store.default_version("default")
        meta_path = Path(args.store) / "default" / version / "metadata.json"
        meta = json.loads(meta_path.read_text())
        meta["metrics"]["independent_alloys"] = {
            **rows[version]["independent_alloys"],
            "procedure": PROCEDURE,
        }
        meta_path.write_text(json.dumps(meta, indent=2))
    print("wrote", path)


if __name__ == "__main__":
    main()
