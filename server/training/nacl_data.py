"""NaCl structures labelled by the Fumi–Tosi rigid-ion model, and the small long-range model
trained on them (`make longrange-model`; the shipped `nacl-longrange` came from this).

Structures: 64-ion rocksalt cells strained and rattled, snapshots of Langevin MD of 64 ions in
the melt (1300–2000 K, every replica one call per step), and neutral clusters and ion pairs
(2.3–9 Å) without a cell. `python -m mlipserve.server.training.nacl_data OUT_DIR` writes the
train/test extxyz files, trains the same tiny architecture with and without the Coulomb term,
and stores both (`nacl-longrange`, `nacl-shortrange`) in OUT_DIR/store with their held-out
errors, including the error of a separated ion pair at 10–20 Å.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from mlipserve.server.models.rigid_ion import nacl_rigid_ion
from mlipserve.server.serving.local import LocalProvider

CHARGES = {"11": 1.0, "17": -1.0}


def _labelled(provider: LocalProvider, frames: list[Atoms]) -> list[Atoms]:
    props = ["energy", "forces"]
    out = []
    for atoms in frames:
        res = provider.evaluate([atoms], props + (["stress"] if atoms.pbc.all() else []))[0]
        atoms = atoms.copy()
        atoms.calc = SinglePointCalculator(
            atoms, **{k: res[k] for k in res if k in props or k == "stress"}
        )
        out.append(atoms)
    return out


def crystals(rng: np.random.Generator, n: int) -> list[Atoms]:
    """Strained (±4 %) and rattled (0.05–0.25 Å) 64-ion rocksalt cells."""
    frames = []
    for _ in range(n):
        atoms = bulk("NaCl", "rocksalt", a=5.64 * rng.uniform(0.97, 1.04), cubic=True) * (2, 2, 2)
        atoms.set_cell(
            atoms.cell.array @ (np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))), scale_atoms=True
        )
        atoms.rattle(rng.uniform(0.05, 0.25), seed=int(rng.integers(1 << 30)))
        frames.append(atoms)
    return frames


def melt(
    provider: LocalProvider, rng: np.random.Generator, n: int, steps: int = 400
) -> list[Atoms]:
    """Snapshots of Langevin MD of 64 ions at 1300–2000 K in an expanded cell."""
    from mlipserve.simulation.md import MolecularDynamics
    from mlipserve.simulation.md.integrators import langevin_baoab
    from mlipserve.simulation.md.state import MDState

    replicas = 4
    start = []
    for r in range(replicas):
        atoms = bulk("NaCl", "rocksalt", a=5.64 * 1.08, cubic=True) * (2, 2, 2)
        atoms.rattle(0.2, seed=r)
        start.append(atoms)
    temps = np.linspace(1300, 2000, replicas)
    frames: list[Atoms] = []
    for t in temps:
        state = MDState.from_atoms(start, temperature_K=float(t), seeds=range(replicas))
        md = MolecularDynamics(
            provider,
            state,
            langevin_baoab(2 * units.fs, temperature_K=float(t), friction=0.05 / units.fs),
        )
        every = steps // max(1, n // (replicas * len(temps)))
        for _ in range(0, steps, every):
            md.run(every)
            frames += [md.state.to_atoms(k) for k in range(replicas)]
    idx = rng.choice(len(frames), size=min(n, len(frames)), replace=False)
    return [
        Atoms(frames[i].numbers, frames[i].positions, cell=frames[i].cell, pbc=True) for i in idx
    ]


def clusters(rng: np.random.Generator, n: int) -> list[Atoms]:
    """Neutral Na–Cl pairs at 2.3–9 Å and rattled Na4Cl4 cubes, without a cell."""
    frames = []
    for k in range(n):
        if k % 2:
            d = rng.uniform(2.3, 9.0)
            atoms = Atoms("NaCl", positions=[[0, 0, 0], [d, 0, 0]])
        else:
            atoms = bulk("NaCl", "rocksalt", a=5.64 * rng.uniform(0.95, 1.08), cubic=True)
            atoms.pbc = False
            atoms.cell = np.zeros((3, 3))
            atoms.rattle(rng.uniform(0.05, 0.2), seed=int(rng.integers(1 << 30)))
        atoms.info["charge"] = 0.0
        frames.append(atoms)
    return frames


def ion_pairs(distances=(10.0, 12.5, 15.0, 17.5, 20.0)) -> list[Atoms]:
    """Separated Na⁺–Cl⁻ pairs (beyond every short-range cutoff)."""
    return [
        Atoms("NaCl", positions=[[0, 0, 0], [d, 0, 0]], info={"charge": 0.0}) for d in distances
    ]


def dataset(seed: int, n_crystal: int, n_melt: int, n_cluster: int) -> list[Atoms]:
    """Rigid-ion-labelled crystals, melt snapshots and clusters."""
    rng = np.random.default_rng(seed)
    provider = LocalProvider(nacl_rigid_ion(device="cpu"))
    frames = crystals(rng, n_crystal) + melt(provider, rng, n_melt) + clusters(rng, n_cluster)
    return _labelled(provider, frames)


def pair_errors(provider: LocalProvider, reference: LocalProvider) -> dict:
    """Energy error (meV) of separated ion pairs at 10–20 Å, relative to the pair at 20 Å's
    reference (the binding curve's shape: a short-range model is flat there)."""
    pairs = ion_pairs()
    got = np.array([r["energy"] for r in provider.evaluate(pairs, ["energy"])])
    ref = np.array([r["energy"] for r in reference.evaluate(pairs, ["energy"])])
    err = 1e3 * ((got - got[-1]) - (ref - ref[-1]))
    return {
        "distances_A": [10.0, 12.5, 15.0, 17.5, 20.0],
        "binding_error_meV": err.round(2).tolist(),
        "max_abs_error_meV": float(np.abs(err).max()),
    }


def main(out: str = "build/longrange", epochs: int = 150) -> dict:
    """Build the data, train with and without the long-range term, store both, compare."""
    from mlipserve.server.store import METADATA, ModelStore
    from mlipserve.server.training.loop import TrainConfig
    from mlipserve.server.training.pipeline import Architecture, train_version

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    train_set = dataset(0, n_crystal=40, n_melt=48, n_cluster=32)
    test_set = dataset(1, n_crystal=8, n_melt=16, n_cluster=8)
    store = ModelStore(root / "store")
    reference = LocalProvider(nacl_rigid_ion(device="cpu"))
    cfg = TrainConfig(epochs=epochs, batch_size=8, lr=3e-3, patience=30, stress_weight=0.0)
    sizes = {"members": 4, "features": 16, "layers": 2, "cutoff": 5.0}
    report = {}
    for name, long_range in (
        ("nacl-longrange", {"charges": "fixed", "element_charges": CHARGES,
                            "coulomb_cutoff": 8.0, "accuracy": 1e-6}),
        ("nacl-shortrange", None),
    ):  # fmt: skip
        version, metrics = train_version(
            train_set, store, name, cfg, arch=Architecture(**sizes, long_range=long_range),
            extra_sets={"held_out": test_set}, progress=True,
        )  # fmt: skip
        provider = LocalProvider(store.load(name, version, dtype="float64", device="cpu"))
        metrics["ion_pair"] = pair_errors(provider, reference)
        meta_path = store.root / name / version / METADATA
        meta = json.loads(meta_path.read_text())
        meta["metrics"] = metrics
        meta_path.write_text(json.dumps(meta, indent=2))
        report[name] = {k: metrics[k] for k in ("held_out", "ion_pair")}
    (root / "comparison.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:2]), indent=2))
