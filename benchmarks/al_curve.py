"""The active-learning curve: held-out force error vs labels for ways of picking frames.

A small ensemble trained on bulk fcc Cu only (EMT labels) meets a Cu(100) slab with a
vacancy at 800 K. A pool of MD frames of the slab is scored by the ensemble's max force
std; for each label budget (4, 8, 16, 32) the frames are picked by

- `top_sigma`: the largest std (what the plain AL trigger does),
- `random`: uniformly from the pool (several draws),
- `selection`: `server.training.selection.select_batch` (its default: uncertainty-weighted
  farthest-point sampling in the bulk model's own descriptor space),
- `selection_cluster`: the same with `method="cluster"` (k-means, most uncertain frame of
  each cluster), the second method tried,

labelled with EMT, the model is warm-started on bulk + those labels (in pool order, so the
same set trains the same way), and its force MAE on held-out slab frames (another MD run)
is measured. Every curve is repeated over training seeds (random: one pick draw per run),
so each point is a mean ± std over runs. Choices of the method (descriptor, weighting) were
made on a separate validation set (a third MD run); `--explore` reruns that comparison and
never looks at the held-out frames.
Run: `OMP_NUM_THREADS=1 python -m benchmarks.al_curve` (writes al_curve.json, al_curve.png;
about 15 minutes on one core).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
from ase import units
from ase.build import bulk, fcc100
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from benchmarks.common import RESULTS, write_result
from mlipserve.server.store import ModelStore
from mlipserve.server.training import TrainConfig
from mlipserve.server.training.pipeline import Architecture, train_version
from mlipserve.server.training.report import as_provider, evaluate_split
from mlipserve.server.training.selection import select_batch, structure_descriptors

BUDGETS = (4, 8, 16, 32)
ARCH = Architecture(members=3, features=12, layers=1, cutoff=4.5)
POOL = 200  # MD frames to pick from (every 5th step: 2 ps)
TRAIN_SEEDS = tuple(range(1, 11))  # one curve per seed for the deterministic strategies
RANDOM_DRAWS = 10  # random curves: draw i is trained with TRAIN_SEEDS[i % 10]
TRUST_LO = 0.0  # every pool frame is a candidate, as for top-sigma and random
# no test split: every labelled frame trains or validates (early stopping)
RETRAIN = dict(epochs=30, batch_size=4, lr=3e-3, split=(0.9, 0.1, 0.0))


def labelled(atoms):
    """A copy of `atoms` with EMT energy and forces."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    atoms.get_potential_energy()
    atoms.get_forces()
    return atoms


def bulk_set(n: int, seed: int):
    """Strained, rattled fcc Cu cells with EMT labels."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61 * rng.uniform(0.97, 1.03), cubic=True)
        atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
        out.append(labelled(atoms))
    return out


def slab_frames(n: int, seed: int, every: int = 5):
    """MD frames of a Cu(100) slab with a surface vacancy at 800 K (EMT)."""
    slab = fcc100("Cu", (3, 3, 3), vacuum=5.0)
    del slab[len(slab) - 1]
    slab.calc = EMT()
    MaxwellBoltzmannDistribution(slab, temperature_K=800, rng=np.random.default_rng(seed))
    dyn = Langevin(
        slab, 2 * units.fs, temperature_K=800, friction=0.02, rng=np.random.default_rng(seed + 1)
    )
    frames = []
    for _ in range(n):
        dyn.run(every)
        frames.append(labelled(slab))
    return frames


def picks(strategy: str, k: int, stds, descriptors, draw: int, options: dict) -> list[int]:
    """The k pool indices a strategy labels (top-sigma, random and fps: nested in k)."""
    if strategy == "top_sigma":
        return [int(i) for i in np.argsort(stds, kind="stable")[::-1][:k]]
    if strategy == "random":
        return [int(i) for i in np.random.default_rng(100 + draw).permutation(len(stds))[:k]]
    return select_batch(descriptors, stds, k, TRUST_LO, seed=draw, **options)


def runs_of(strategy: str) -> list[tuple[int, int]]:
    """(pick draw, training seed) of every curve of a strategy."""
    if strategy == "random":
        return [(d, TRAIN_SEEDS[d % len(TRAIN_SEEDS)]) for d in range(RANDOM_DRAWS)]
    return [(0, s) for s in TRAIN_SEEDS]


def curves(store, v1, base, pool, stds, variants: dict, sets: dict) -> dict:
    """{variant: {set: (runs, budgets) force MAE}} for every variant's runs and budgets.

    `variants` maps a name to (strategy, descriptors, select_batch options); `sets` names
    the evaluation sets (held-out, validation).
    """
    out = {}
    for name, (strategy, descriptors, options) in variants.items():
        maes = {s: [] for s in sets}
        for draw, seed in runs_of(strategy):
            row = {s: [] for s in sets}
            for budget in BUDGETS:
                chosen = picks(strategy, budget, stds, descriptors, draw, options)
                version, _ = train_version(
                    base + [pool[i] for i in sorted(chosen)],  # same set, same training
                    store,
                    "cu",
                    TrainConfig(seed=seed, **RETRAIN),
                    warm_start=v1,
                    make_default=False,
                    progress=False,
                )
                module = store.load_module("cu", version)[0]
                for s, frames in sets.items():
                    row[s].append(evaluate_split(module, frames)["force_mae_mev_per_A"])
            print(
                f"{name:22s} draw {draw} seed {seed}: "
                + "  ".join(f"{s} " + " ".join(f"{v:5.1f}" for v in row[s]) for s in sets),
                flush=True,
            )
            for s in sets:
                maes[s].append(row[s])
        out[name] = maes
    return out


def summary(maes: list[list[float]]) -> dict:
    """Mean, std and every run of a (runs, budgets) table of MAEs."""
    table = np.array(maes)
    return {
        "mean": table.mean(0).tolist(),
        "std": table.std(0).tolist(),
        "runs": table.tolist(),
    }


def setup(tmp: str):
    """The bulk-only model, the pool with its std and descriptors, and the two test sets."""
    store = ModelStore(tmp)
    base = bulk_set(24, 0)
    cfg = TrainConfig(epochs=40, batch_size=4, seed=0, lr=5e-3)
    v1, _ = train_version(base, store, "cu", cfg, arch=ARCH, progress=False)
    pool = slab_frames(POOL, 1)
    sets = {"held_out": slab_frames(20, 2, every=10), "validation": slab_frames(20, 3, every=10)}
    module = store.load_module("cu", v1)[0]
    results = as_provider(module).evaluate(pool, ["energy", "forces", "uncertainty"])
    stds = np.array([r["max_force_std"] for r in results])
    descriptors = structure_descriptors(module, pool, spread=True)  # means, then spreads
    initial = {s: evaluate_split(module, f)["force_mae_mev_per_A"] for s, f in sets.items()}
    return store, v1, base, pool, stds, descriptors, sets, initial, module


def _means(desc: np.ndarray) -> np.ndarray:
    """The per-member means of mean+spread descriptors (structure_descriptors' default)."""
    n, k, f = len(desc), ARCH.members, ARCH.features
    return desc.reshape(n, k, 2, f)[:, :, 0].reshape(n, -1)


def explore(names: list[str]) -> None:
    """Variants of the selection (all, or those named) on the validation set only."""
    with tempfile.TemporaryDirectory() as tmp:
        store, v1, base, pool, stds, desc, sets, initial, _ = setup(tmp)
        mean_only = _means(desc)
        variants = {
            "fps mean+std, sigma^1": ("selection", desc, {}),
            "fps mean+std, sigma^0": ("selection", desc, {"sigma_power": 0.0}),
            "fps mean+std, sigma^2": ("selection", desc, {"sigma_power": 2.0}),
            "fps mean only, sigma^1": ("selection", mean_only, {}),
            "cluster mean only": ("selection", mean_only, {"method": "cluster"}),
        }
        only = [v for v in (names or variants) if v not in variants]
        if only:
            raise SystemExit(f"unknown variants {only}; known: {list(variants)}")
        variants = {n: variants[n] for n in (names or variants)}
        val = {"validation": sets["validation"]}
        found = curves(store, v1, base, pool, stds, variants, val)
    print(f"validation, bulk-only model: {initial['validation']:.1f} meV/Å")
    for name, maes in found.items():
        s = summary(maes["validation"])
        print(f"{name:22s} " + "  ".join(f"{m:5.1f}±{d:4.1f}" for m, d in zip(s["mean"], s["std"])))


def main() -> None:
    """The three curves on the held-out set (and the validation set), JSON and plot."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store, v1, base, pool, stds, desc, sets, initial, _ = setup(tmp)
        means = _means(desc)  # the default of structure_descriptors (chosen by --explore)
        variants = {s: (s, means, {}) for s in ("top_sigma", "random", "selection")}
        variants["selection_cluster"] = ("selection", means, {"method": "cluster"})
        found = curves(store, v1, base, pool, stds, variants, sets)
    result = {s: {k: summary(v) for k, v in maes.items()} for s, maes in found.items()}
    held = {s: np.array(r["held_out"]["mean"]) for s, r in result.items()}
    wins = {
        s: dict(zip(map(str, BUDGETS), (held[s] < np.minimum(held["top_sigma"], held["random"]))))
        for s in ("selection", "selection_cluster")
    }
    # run i of every strategy has the same training seed: the difference per run, its
    # mean and in how many runs it is < 0
    paired = {}
    for s in ("selection", "selection_cluster"):
        for other in ("top_sigma", "random"):
            n = min(len(found[s]["held_out"]), len(found[other]["held_out"]))
            diff = np.array(found[s]["held_out"][:n]) - np.array(found[other]["held_out"][:n])
            paired[f"{s} - {other}"] = {
                "mean": diff.mean(0).tolist(),
                "lower_in": (diff < 0).sum(0).tolist(),
                "runs": n,
            }
    for i, budget in enumerate(BUDGETS):
        cells = [(s, r["held_out"]["mean"][i], r["held_out"]["std"][i]) for s, r in result.items()]
        text = "  ".join(f"{s} {m:5.1f}±{d:4.1f}" for s, m, d in cells)
        print(f"{budget:3d} labels, held-out MAE (meV/Å): {text}")
    _plot(initial["held_out"], result)
    write_result(
        "al_curve",
        {
            "budgets": list(BUDGETS),
            "initial_force_mae": initial["held_out"],
            "initial_force_mae_validation": initial["validation"],
            "force_mae": {s: r["held_out"] for s, r in result.items()},
            "force_mae_validation": {s: r["validation"] for s, r in result.items()},
            "beats_top_sigma_and_random": {
                s: {b: bool(w) for b, w in v.items()} for s, v in wins.items()
            },
            "paired_differences": paired,
            "runs": {s: runs_of(s) for s in result},
            "method": "selection: select_batch's default, uncertainty-weighted farthest-point "
            "sampling (sigma_power 1); selection_cluster: select_batch(method='cluster'), the "
            "most uncertain frame of each of k k-means clusters; both on "
            "structure_descriptors' default (mean over atoms of the PaiNN scalar features of "
            "every member of the bulk-only model), trust_lo 0",
            "retrain": RETRAIN,
            "pool_size": len(pool),
            "pool_max_force_std": {
                "min": float(stds.min()),
                "median": float(np.median(stds)),
                "max": float(stds.max()),
            },
            "wall_s": time.perf_counter() - start,
        },
    )


def _plot(initial: float, result: dict) -> None:
    """One curve per strategy, mean ± std over runs (nudged sideways so the bars do not
    hide each other), and the bulk-only model's error."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    labels = {
        "top_sigma": "top sigma",
        "random": "random",
        "selection": "select_batch (fps)",
        "selection_cluster": "select_batch (cluster)",
    }
    for i, (strategy, r) in enumerate(result.items()):
        mean, std = np.array(r["held_out"]["mean"]), np.array(r["held_out"]["std"])
        n = len(r["held_out"]["runs"])
        x = np.array(BUDGETS) * 2 ** (0.05 * (i - (len(result) - 1) / 2))
        ax.errorbar(x, mean, yerr=std, fmt="o-", capsize=3, ms=4,
                    label=f"{labels[strategy]} (mean ± std, {n} runs)")  # fmt: skip
    ax.axhline(initial, color="grey", ls="--", label="bulk-only model")
    ax.set_xscale("log", base=2)
    ax.set_xticks(BUDGETS, [str(b) for b in BUDGETS])
    ax.set_xlabel("labelled slab frames")
    ax.set_ylabel("held-out force MAE (meV/Å)")
    ax.set_title("Active learning on a Cu(100) slab with a vacancy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "al_curve.png", dpi=120)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--explore",
        nargs="*",
        metavar="VARIANT",
        help="compare selection variants (all, or those named) on the validation set only",
    )
    parser.add_argument(
        "--plot", action="store_true", help="redraw al_curve.png from al_curve.json"
    )
    args = parser.parse_args()
    if args.plot:
        saved = json.loads((RESULTS / "al_curve.json").read_text())
        _plot(
            saved["initial_force_mae"], {s: {"held_out": r} for s, r in saved["force_mae"].items()}
        )
    else:
        explore(args.explore) if args.explore is not None else main()
