"""Train a version and put it in the store: one path for `mlipserve train` and the retrain job."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from ase import Atoms

from mlipserve.server.models.families import native_family
from mlipserve.server.models.field import FieldConfig
from mlipserve.server.models.longrange import LongRangeConfig
from mlipserve.server.models.painn import PaiNNConfig
from mlipserve.server.serving.checks import closest_distance
from mlipserve.server.store import ModelStore
from mlipserve.server.training.loop import TrainConfig, train
from mlipserve.server.training.report import evaluate_split
from mlipserve.wire import SystemArrays


@dataclass
class Architecture:
    """Size of a new ensemble (ignored on a warm start: the parent's architecture wins)."""

    members: int = 4
    features: int = 32
    layers: int = 2
    cutoff: float = 5.0
    # LongRangeConfig's charge fields (charges, element_charges, coulomb_cutoff, accuracy,
    # method): a short-range PaiNN plus Coulomb; None: short-range only
    long_range: dict | None = None
    # FieldConfig's fields (max_field, fermi_range): the field-conditioned family instead
    field: dict | None = None


def structures_sha256(structures: Sequence[Atoms]) -> str:
    """A content hash of labelled structures (numbers, positions, cell, energy, forces)."""
    h = hashlib.sha256()
    for a in structures:
        for arr in (a.numbers, a.positions, a.cell.array, a.calc.results.get("forces")):
            if arr is not None:
                h.update(memoryview(arr.astype(float).tobytes()))
        h.update(repr(float(a.calc.results.get("energy", 0.0))).encode())
    return h.hexdigest()


def train_version(
    structures: Sequence[Atoms],
    store: ModelStore,
    name: str,
    train_cfg: TrainConfig,
    *,
    arch: Architecture | None = None,
    warm_start: str | None = None,
    init_module: torch.nn.Module | None = None,
    report_dir: str | Path | None = None,
    extra_sets: dict[str, Sequence[Atoms]] | None = None,
    metadata: dict | None = None,
    make_default: bool = True,
    progress: bool = True,
) -> tuple[str, dict]:
    """Train (or warm-start from `name@warm_start`, or from `init_module`, e.g. a new family's
    module with a trunk loaded from another model) and store a new version; return it and
    its metrics."""
    if warm_start and init_module is not None:
        raise ValueError("give warm_start or init_module, not both")
    arch = arch or Architecture()
    init = store.load_module(name, warm_start)[0] if warm_start else init_module
    if init is not None:
        arch = Architecture(init.cfg.members, init.cfg.features, init.cfg.layers, init.cfg.cutoff)
    elements = sorted({int(z) for a in structures for z in a.numbers})
    max_z = max(elements) if init is None else init.cfg.max_z
    if init is not None and max(elements) > init.cfg.max_z:
        raise ValueError(
            f"data has element Z={max(elements)} beyond the parent's max_z "
            f"{init.cfg.max_z}; train a new model instead of warm-starting"
        )
    sizes = {
        "cutoff": arch.cutoff,
        "features": arch.features,
        "layers": arch.layers,
        "members": arch.members,
        "max_z": max_z,
    }
    config: PaiNNConfig | LongRangeConfig | FieldConfig = PaiNNConfig(**sizes)
    if arch.long_range:
        config = LongRangeConfig(**sizes, **arch.long_range)
    elif arch.field is not None:
        config = FieldConfig(**sizes, **arch.field)
    result = train(structures, config, train_cfg, out_dir=report_dir, init=init, progress=progress)
    metrics = {"test_split": result.metrics}
    for key, extra in (extra_sets or {}).items():
        metrics[key] = evaluate_split(result.module, extra)
    cutoff = float(result.module.cutoff)
    shortest = [closest_distance(SystemArrays.from_atoms(a), cutoff) for a in structures]
    parent_elements = store.metadata(name, warm_start).get("elements", []) if warm_start else []
    version = store.save(
        name,
        result.module,
        {
            "min_distance": min((d for d in shortest if d is not None), default=0.0),
            "family": native_family(result.module),
            "config": result.module.cfg.to_dict(),
            "cutoff": cutoff,
            "elements": sorted(set(elements) | set(parent_elements)),
            "ensemble_size": arch.members,
            "dtype": "float32",
            "units": {"energy": "eV", "length": "Å", "stress": "eV/Å³"},
            "training_data_sha256": structures_sha256(structures),
            "parent_version": warm_start,
            "metrics": metrics,
            "train_config": dict(vars(train_cfg)),
            **(metadata or {}),
        },
        make_default=make_default,
    )
    return version, metrics
