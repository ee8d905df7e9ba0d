"""The molecular default model `default-molecular`: H, C, N, O structures labelled by
GFN2-xTB and the K = 4 native ensemble trained on them
(`python -m mlipserve.server.training.molecular_data OUT_DIR`, `make molecular-model`; the
shipped copy came from this, seeds fixed).

Training frames (seed 0) come from `molecular_frames`: water monomers and clusters of 2-8
molecules, periodic liquid-density water boxes of 8 and 16 molecules (randomly packed and
from short xTB Langevin MD), water-cluster and organic MD snapshots, rattled organics
(ethanol, malonaldehyde, glycine, formic acid dimer, small g2 molecules), proton-transfer
images with rattled transition-state regions, xTB NEB paths of the malonaldehyde and formic
acid dimer proton transfers with rattled copies of their barrier tops, and hot (strongly
rattled) frames. The
held-out set is the same recipe from seed 1; the out-of-distribution set (seed 2) holds
water clusters of 12-16 molecules and frames with one X-H bond stretched 1.3-1.7x, neither
of which is in training.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from mlipserve.server.labellers.xtb import XtbLabeller
from mlipserve.server.training import molecular_frames as mf

NAME = "default-molecular"


class XtbCalculator(Calculator):
    """An ASE calculator on the labeller (same settings as the labels) for the MD frames."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, labeller: XtbLabeller | None = None) -> None:
        super().__init__()
        self.labeller = labeller or XtbLabeller()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """One xTB single point; an SCF failure raises."""
        super().calculate(atoms, properties, system_changes)
        (label,) = self.labeller.label([self.atoms])
        if not label.ok:
            raise RuntimeError(f"xTB failed during MD: {label.error}")
        res = label.atoms.calc.results
        self.results = {"energy": res["energy"], "forces": res["forces"]}


def label(frames: Sequence[Atoms], kinds: Sequence[str]) -> list[Atoms]:
    """GFN2-xTB energy and forces on each frame (failed SCFs dropped), kind in info."""
    out = []
    for atoms, kind, lab in zip(frames, kinds, XtbLabeller().label(list(frames))):
        if not lab.ok:
            continue
        res = lab.atoms.calc.results
        atoms = atoms.copy()
        atoms.calc = SinglePointCalculator(atoms, energy=res["energy"], forces=res["forces"])
        atoms.info["kind"] = kind
        out.append(atoms)
    return out


def md_frames(
    atoms: Atoms, rng: np.random.Generator, temperature: float, steps: int, every: int, kind: str
) -> list[Atoms]:
    """Snapshots (every `every` steps after the first `every`) of xTB Langevin MD, 0.5 fs
    steps at `temperature` K, each with the energy and forces of its step."""
    atoms = atoms.copy()
    atoms.calc = XtbCalculator()
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    dyn = Langevin(
        atoms, 0.5 * units.fs, temperature_K=temperature, friction=0.02, fixcm=False, rng=rng
    )
    frames = []
    for step in range(1, steps + 1):
        dyn.run(1)
        if step % every == 0:
            snap = atoms.copy()
            snap.calc = SinglePointCalculator(
                snap, energy=atoms.get_potential_energy(), forces=atoms.get_forces()
            )
            snap.info["kind"] = kind
            frames.append(snap)
    return frames


def _recipe(rng: np.random.Generator, scale: int) -> tuple[list[Atoms], list[str]]:
    """The single-point frames of one set (unlabelled) and their kinds."""
    frames, kinds = [], []

    def add(kind: str, atoms: Atoms) -> None:
        frames.append(atoms)
        kinds.append(kind)

    for _ in range(2 * scale):
        add("water_monomer", mf.rattle(mf.organic("H2O"), rng, rng.uniform(0.01, 0.05)))
    for _ in range(8 * scale):
        cluster = mf.water_cluster(rng, int(rng.integers(2, 9)))
        add("water_cluster", mf.rattle(cluster, rng, rng.uniform(0.01, 0.04)))
    for name in mf.ORGANICS:
        for _ in range(2 * scale):
            add("organic", mf.rattle(mf.organic(name), rng, rng.uniform(0.01, 0.05)))
    for _ in range(4 * scale):
        base = (
            mf.organic(str(rng.choice(mf.ORGANICS)))
            if rng.random() < 0.6
            else mf.water_cluster(rng, int(rng.integers(2, 7)))
        )
        add("hot", mf.rattle(base, rng, rng.uniform(0.05, 0.09)))
    for path, t_max in mf.PATHS.items():
        for _ in range(4 * scale):
            image = mf.proton_transfer(path, rng.uniform(0, t_max))
            add("proton_transfer", mf.rattle(image, rng, rng.uniform(0.01, 0.03)))
        for _ in range(2 * scale):
            image = mf.proton_transfer(path, t_max * rng.uniform(0.4, 0.6))
            add("transition_state", mf.rattle(image, rng, rng.uniform(0.02, 0.05)))
    for _ in range(max(1, scale // 4)):
        box = mf.water_box(rng, int(rng.choice([8, 16])))
        add("water_box", mf.rattle(box, rng, rng.uniform(0.01, 0.04)))
    return frames, kinds


def dataset(seed: int, scale: int, md: bool = True) -> list[Atoms]:
    """One labelled set: the single-point recipe at `scale`, plus, with `md`, xTB MD
    snapshots (lengths grow with `scale`) of water boxes of 8 and 16, water clusters of 8
    and 6 and four organics."""
    rng = np.random.default_rng(seed)
    frames = label(*_recipe(rng, scale))
    if not md:
        return frames
    box8, box16 = mf.water_box(rng, 8), mf.water_box(rng, 16)
    frames += md_frames(box8, rng, 350.0, 10 * scale, scale, "water_box_md")
    frames += md_frames(box16, rng, 350.0, 5 * scale, scale, "water_box_md")
    for n, temperature in ((8, 300.0), (6, 400.0)):
        cluster = mf.water_cluster(rng, n)
        frames += md_frames(cluster, rng, temperature, 150 * scale, 3 * scale, "water_cluster_md")
    for name in ("ethanol", "glycine", "malonaldehyde", "formic_dimer"):
        frames += md_frames(mf.organic(name), rng, 600.0, 150 * scale, 3 * scale, "organic_md")
    return frames


def relaxed_path(name: str, images: int = 7, fmax: float = 0.03) -> list[Atoms]:
    """The xTB minimum energy path of a symmetric proton transfer (`mf.PATHS`' malonaldehyde
    or formic acid dimer): both ends relaxed (BFGS), then ASE's climbing-image NEB (FIRE);
    each image labelled with its own xTB energy and forces."""
    from ase.mep import NEB
    from ase.optimize import BFGS, FIRE

    ends = []
    for t in (0.0, mf.PATHS[name]):
        end = mf.proton_transfer(name, t)
        end.calc = XtbCalculator()
        BFGS(end, logfile=None).run(fmax=fmax, steps=300)
        ends.append(end)
    band = [ends[0].copy() for _ in range(images - 1)] + [ends[1].copy()]
    for image in band:
        image.calc = XtbCalculator()
    neb = NEB(band, climb=True, method="improvedtangent")
    neb.interpolate()
    FIRE(neb, logfile=None).run(fmax=fmax, steps=500)
    out = []
    for image in band:
        frame = image.copy()
        frame.calc = SinglePointCalculator(
            frame, energy=image.get_potential_energy(), forces=image.get_forces()
        )
        frame.info["kind"] = "neb_path"
        out.append(frame)
    return out


def path_frames(seed: int, scale: int) -> list[Atoms]:
    """NEB images of the malonaldehyde and formic acid dimer proton transfers on xTB, and
    rattled copies (σ 0.02-0.05 Å) of the three images around each barrier top."""
    rng = np.random.default_rng(seed)
    frames: list[Atoms] = []
    for name in ("malonaldehyde", "formic_dimer"):
        path = relaxed_path(name)
        frames += path
        top = int(np.argmax([f.get_potential_energy() for f in path]))
        near = path[max(0, top - 1) : top + 2]
        shaken = [
            mf.rattle(near[i % len(near)], rng, rng.uniform(0.02, 0.05)) for i in range(4 * scale)
        ]
        frames += label(shaken, ["neb_ts"] * len(shaken))
    return frames


def labelled(path: Path, make: Callable[[], list[Atoms]]) -> list[Atoms]:
    """The frames in `path` (extxyz) if it exists, else `make()` written there."""
    import ase.io

    if path.exists():
        return ase.io.read(path, index=":")
    frames = make()
    ase.io.write(path, frames)
    return frames


def ood_set(seed: int = 2, n: int = 12) -> list[Atoms]:
    """Out of distribution: water clusters of 12-16 molecules and frames with one X-H bond
    stretched 1.3-1.7x (organics and small clusters), `n` of each."""
    rng = np.random.default_rng(seed)
    frames, kinds = [], []
    for _ in range(n):
        cluster = mf.water_cluster(rng, int(rng.integers(12, 17)))
        frames.append(mf.rattle(cluster, rng, 0.03))
        kinds.append("large_cluster")
    for _ in range(n):
        base = (
            mf.organic(str(rng.choice(mf.ORGANICS)))
            if rng.random() < 0.6
            else mf.water_cluster(rng, int(rng.integers(2, 6)))
        )
        frames.append(mf.stretched(mf.rattle(base, rng, 0.02), rng, (1.3, 1.7)))
        kinds.append("stretched_bond")
    return label(frames, kinds)


def counts(frames: Sequence[Atoms]) -> dict[str, int]:
    """How many frames of each kind."""
    out: dict[str, int] = {}
    for f in frames:
        out[f.info["kind"]] = out.get(f.info["kind"], 0) + 1
    return dict(sorted(out.items()))


def figures(provider, frames: Sequence[Atoms]) -> dict:
    """Energy MAE (meV/atom), force MAE (meV/Å) and the Spearman correlation of the
    ensemble's max force std with the true max force error, over `frames`."""
    from scipy.stats import spearmanr

    results = provider.evaluate(list(frames), ["energy", "forces", "uncertainty"])
    e, f, std, err = [], [], [], []
    for r, a in zip(results, frames):
        e.append(abs(r["energy"] - a.get_potential_energy()) / len(a))
        diff = r["forces"] - a.get_forces()
        f.append(np.abs(diff).ravel())
        std.append(r["max_force_std"])
        err.append(np.linalg.norm(diff, axis=1).max())
    return {
        "n": len(frames),
        "energy_mae_meV_per_atom": 1e3 * float(np.mean(e)),
        "force_mae_meV_per_A": 1e3 * float(np.mean(np.concatenate(f))),
        "spearman_max_force_std_vs_error": float(spearmanr(std, err).statistic),
        "mean_max_force_std_meV_per_A": 1e3 * float(np.mean(std)),
        "max_force_std_p90_meV_per_A": 1e3 * float(np.percentile(std, 90)),
        "max_force_std_p98_meV_per_A": 1e3 * float(np.percentile(std, 98)),
    }


def targets(held_out: dict, ood: dict) -> dict[str, bool]:
    """The issue's three targets, met or not."""
    return {
        "force_mae_meV_per_A <= 50": held_out["force_mae_meV_per_A"] <= 50,
        "energy_mae_meV_per_atom <= 2": held_out["energy_mae_meV_per_atom"] <= 2,
        "ood_spearman >= 0.6": ood["spearman_max_force_std_vs_error"] >= 0.6,
    }


def main(
    out: str = "build/molecular",
    scale: int = 12,
    epochs: int = 400,
    max_minutes: float = 25.0,
    features: int = 32,
    finetune_minutes: float = 12.0,
) -> dict:
    """Label (or reuse OUT/*.extxyz), train, store `default-molecular` and report the
    held-out and OOD figures."""
    from mlipserve.server.store import ModelStore
    from mlipserve.server.training.loop import TrainConfig
    from mlipserve.server.training.pipeline import Architecture, train_version

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    timing_path = root / "label_minutes.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    sets = {}
    makers = {
        "train": lambda: dataset(0, scale),
        "held_out": lambda: dataset(1, max(2, scale // 4)),
        "ood": lambda: ood_set(2),
        "paths": lambda: path_frames(0, scale),  # xTB NEB paths, added to training
    }
    for key, make in makers.items():
        start = time.monotonic()
        sets[key] = labelled(root / f"{key}.extxyz", make)
        timing.setdefault(key, (time.monotonic() - start) / 60)
        print(f"{key}: {len(sets[key])} frames ({timing[key]:.1f} min labelling)", flush=True)
    timing_path.write_text(json.dumps(timing))
    sets["train"] = train_set = sets["train"] + sets.pop("paths")
    store = ModelStore(root / "store")
    cfg = TrainConfig(
        epochs=epochs, batch_size=8, lr=2e-3, patience=60, stress_weight=0.0,
        energy_weight=10.0, max_minutes=max_minutes, split=(0.9, 0.1, 0.0),
    )  # fmt: skip
    arch = Architecture(members=4, features=features, layers=2, cutoff=4.5)
    first, metrics = train_version(train_set, store, NAME, cfg, arch=arch, progress=False)
    # second stage: the same data, a warm start weighted towards energies (lr 5e-4, w_E 40)
    fine = TrainConfig(
        epochs=epochs, batch_size=8, lr=5e-4, patience=60, stress_weight=0.0,
        energy_weight=40.0, max_minutes=finetune_minutes, split=(0.9, 0.1, 0.0),
    )  # fmt: skip
    version, fine_metrics = train_version(
        train_set, store, NAME, fine, warm_start=first, progress=False
    )
    fine_metrics["first_stage"] = {**metrics["test_split"], "version": first}
    return write_report(store, version, fine_metrics, sets, timing, root)


def barrier_check(provider, name: str = "malonaldehyde") -> dict:
    """The proton-transfer barrier of `name` by the batched CI-NEB on the model (ends relaxed
    on the model) against ASE's CI-NEB on xTB (`relaxed_path`), in eV."""
    from mlipserve.simulation import make_band, relax_batch, run_neb

    reference = [f.get_potential_energy() for f in relaxed_path(name)]
    ends = [mf.proton_transfer(name, t) for t in (0.0, mf.PATHS[name])]
    ends = [r.atoms for r in relax_batch(provider, ends, fmax=0.03, progress=False)]
    for end in ends:
        end.calc = None
    result = run_neb(provider, make_band(*ends, 5), fmax=0.03, progress=False)
    xtb = float(max(reference) - reference[0])
    return {"model_eV": float(result.barrier), "xtb_eV": xtb, "converged": result.converged}


def write_report(store, version: str, metrics: dict, sets: dict, timing: dict, root: Path) -> dict:
    """Held-out and OOD figures of `version` into its metadata and ROOT/report.json."""
    from mlipserve.server.serving.local import LocalProvider
    from mlipserve.server.store import METADATA

    train_set, test_set, ood = sets["train"], sets["held_out"], sets["ood"]
    provider = LocalProvider(store.load(NAME, version, dtype="float64", device="cpu"))
    metrics["held_out"] = figures(provider, test_set)
    metrics["ood"] = figures(provider, ood)
    metrics["targets"] = targets(metrics["held_out"], metrics["ood"])
    metrics["chemistry"] = {"malonaldehyde_proton_transfer_barrier": barrier_check(provider)}
    metrics["labels"] = {
        "train": counts(train_set),
        "held_out": counts(test_set),
        "ood": counts(ood),
        "label_minutes": timing,
    }
    path = store.root / NAME / version / METADATA
    meta = json.loads(path.read_text())
    meta["metrics"] = metrics
    # the service's flags: `candidate` above the held-out 90th percentile of the max force
    # std, `untrusted` above its 98th (the defaults, 0.05/0.15 eV/Å, suit the metal model)
    held = metrics["held_out"]
    meta["trust_lo"] = round(held["max_force_std_p90_meV_per_A"] / 1e3, 2)
    meta["trust_hi"] = round(held["max_force_std_p98_meV_per_A"] / 1e3, 2)
    meta["labels"] = "GFN2-xTB (tblite, 300 K smearing), neutral closed-shell H/C/N/O"
    meta["sets"] = {
        "train": "seed 0: water monomers, clusters of 2-8, periodic boxes of 8/16 (packed and "
        "xTB MD at 350 K), organics rattled and xTB MD at 600 K, proton-transfer images and "
        "rattled TS regions, hot frames (rattle σ 0.05-0.09 Å per component; others 0.01-0.05 Å)",
        "held_out": "seed 1: the same recipe (independent frames)",
        "ood": "seed 2: water clusters of 12-16 molecules (training: <= 8) and one X-H bond "
        "stretched 1.3-1.7x (not in training)",
    }
    path.write_text(json.dumps(meta, indent=2))
    report = {k: metrics[k] for k in ("held_out", "ood", "targets", "labels", "test_split")}
    (root / "report.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(main(args[0] if args else "build/molecular",
                          *(int(a) for a in args[1:3])), indent=2))  # fmt: skip
