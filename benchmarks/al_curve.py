"""The active-learning curve: held-out force error vs labels, uncertainty-picked vs random.

A small ensemble trained on bulk fcc Cu only (EMT labels) meets a Cu(100) slab with a
vacancy at 800 K. A pool of MD frames of the slab is scored by the ensemble's max force
std; for each label budget the frames with the largest std (the AL trigger's choice) or the
same number of random frames are labelled with EMT, the model is warm-started on bulk +
those labels, and its force MAE on held-out slab frames (another MD run) is measured.
Run: `python -m benchmarks.al_curve` (writes al_curve.json and al_curve.png).
"""

from __future__ import annotations

import tempfile

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

BUDGETS = (4, 8, 16)
ARCH = Architecture(members=3, features=12, layers=1, cutoff=4.5)


def labelled(atoms):
    atoms = atoms.copy()
    atoms.calc = EMT()
    atoms.get_potential_energy()
    atoms.get_forces()
    return atoms


def bulk_set(n: int, seed: int):
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


def main() -> None:
    cfg = TrainConfig(epochs=40, batch_size=4, seed=0, lr=5e-3)
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(tmp)
        base = bulk_set(24, 0)
        v1, _ = train_version(base, store, "cu", cfg, arch=ARCH, progress=False)
        pool, held_out = slab_frames(120, 1), slab_frames(20, 2, every=10)
        module = store.load_module("cu", v1)[0]
        stds = np.array(
            [
                r["max_force_std"]
                for r in as_provider(module).evaluate(pool, ["energy", "forces", "uncertainty"])
            ]
        )
        initial = evaluate_split(module, held_out)["force_mae_mev_per_A"]
        rng = np.random.default_rng(3)
        curves = {"uncertainty": [], "random": []}
        for budget in BUDGETS:
            picks = {
                "uncertainty": np.argsort(stds)[::-1][:budget],
                "random": rng.choice(len(pool), budget, replace=False),
            }
            for strategy, idx in picks.items():
                data = base + [pool[i] for i in idx]
                version, _ = train_version(
                    data,
                    store,
                    "cu",
                    TrainConfig(epochs=30, batch_size=4, seed=1, lr=3e-3),
                    warm_start=v1,
                    make_default=False,
                    progress=False,
                )
                mae = evaluate_split(store.load_module("cu", version)[0], held_out)[
                    "force_mae_mev_per_A"
                ]
                curves[strategy].append(mae)
                print(
                    f"{strategy:11s} {budget:3d} labels: held-out force MAE {mae:6.1f} meV/Å "
                    f"(initial {initial:.1f})",
                    flush=True,
                )
    _plot(initial, curves)
    write_result(
        "al_curve",
        {
            "budgets": list(BUDGETS),
            "initial_force_mae": initial,
            "force_mae": curves,
            "pool_size": len(pool),
            "pool_max_force_std": {
                "min": float(stds.min()),
                "median": float(np.median(stds)),
                "max": float(stds.max()),
            },
        },
    )


def _plot(initial: float, curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for strategy, values in curves.items():
        ax.plot(BUDGETS, values, "o-", label=f"{strategy} frames")
    ax.axhline(initial, color="grey", ls="--", label="bulk-only model")
    ax.set_xlabel("labelled slab frames")
    ax.set_ylabel("held-out force MAE (meV/Å)")
    ax.set_title("Active learning on a Cu(100) slab with a vacancy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "al_curve.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
