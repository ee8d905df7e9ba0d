"""Train a native ensemble: weighted bootstrap per member, AdamW, early stopping."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from mlipserve.server.memory import keep_freed_memory
from mlipserve.server.models.families import family_module
from mlipserve.server.models.field import FieldConfig
from mlipserve.server.models.field_response import field_leaf
from mlipserve.server.models.longrange import LongRangeConfig
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.models.torch_potential import (
    apply_strain,
    geometry_members,
    member_geometry,
    member_gradients,
    pick_device,
)
from mlipserve.server.training.data import GraphCache, element_shifts, split_indices
from mlipserve.server.training.report import evaluate_split, write_plots


@dataclass
class TrainConfig:
    """Training settings (recorded in the model's metadata)."""

    epochs: int = 300
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-6
    energy_weight: float = 1.0  # on (meV/atom)²
    forces_weight: float = 1.0  # on (meV/Å)² per component
    stress_weight: float = 1.0  # on (meV/Å³)² per component
    dipole_weight: float = 1.0  # on (m e·Å)² per component (field models with dipole labels)
    schedule: str = "plateau"  # or "cosine"
    patience: int = 40  # epochs without a better validation loss before stopping
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    bootstrap: bool = True
    dtype: str = "float32"
    device: str = "auto"
    max_minutes: float | None = None


@dataclass
class TrainResult:
    """The best module, its metrics and where the report files went."""

    module: PaiNN
    metrics: dict
    history: list[dict] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    split: dict[str, list[int]] = field(default_factory=dict)


def has_fixed_charges(model: object) -> bool:
    """A fixed-charge long-range config or module."""
    cfg = getattr(model, "cfg", model)
    return isinstance(cfg, LongRangeConfig) and cfg.charges == "fixed"


def predict(
    module: PaiNN, g: dict, need_stress: bool, create_graph: bool, need_dipole: bool = False
):
    """Energies (K, S), forces (K, A, 3), stress (K, S, 3, 3) and, for a field model,
    dipoles (K, S, 3) = −∂E/∂field of a training batch."""
    members = geometry_members(module)
    positions, cell, per_member = member_geometry(members, g["positions"], g["cell"])
    positions = positions.clone().requires_grad_(True)
    strain, eff_pos, eff_cell = (
        apply_strain(positions, cell, g["system_index"]) if need_stress else (None, positions, cell)
    )
    graph = {**g, "positions": eff_pos, "cell": eff_cell}
    dipole = None
    if need_dipole and per_member:
        graph, field = field_leaf(graph, g["n_systems"], positions, members)
        energy = module(graph)["energy"]
        inputs = [positions, field] + ([strain] if strain is not None else [])
        grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph)
        forces, dipole = -grads[0], -grads[1]
        virial = grads[2] if strain is not None else None
    else:
        energy = module(graph)["energy"]
        forces, virial = member_gradients(
            energy, positions, strain, create_graph=create_graph, per_member=per_member
        )
    stress = virial / g["volume"][None, :, None, None] if virial is not None else None
    return energy, forces, stress, dipole


def wants_dipole(module: torch.nn.Module, g: dict, cfg: TrainConfig) -> bool:
    """Dipole labels, a field model and a dipole weight."""
    return (
        g.get("dipole") is not None
        and cfg.dipole_weight > 0
        and "dipole" in getattr(module, "extra_properties", ())
    )


def batch_loss(module: PaiNN, g: dict, weights: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Σ over members of their (bootstrap-weighted) energy, force and stress losses."""
    need_stress = g["stress"] is not None and cfg.stress_weight > 0
    need_dipole = wants_dipole(module, g, cfg)
    energy, forces, stress, dipole = predict(module, g, need_stress, True, need_dipole)
    e_err = 1e3 * (energy - g["energy"]) / g["n_atoms"]  # (K, S) meV/atom
    f_err = 1e3 * (forces - g["forces"])  # (K, A, 3) meV/Å
    atom_w = weights[:, g["system_index"]]  # (K, A)
    atom_w = atom_w * g["force_weight"][g["system_index"]]  # 0: forces not fitted
    loss = cfg.energy_weight * (weights * e_err**2).sum(1) / weights.sum(1).clamp_min(1e-9)
    loss = loss + cfg.forces_weight * (atom_w * (f_err**2).mean(-1)).sum(1) / atom_w.sum(
        1
    ).clamp_min(1e-9)
    if need_stress:
        voigt = stress[:, :, [0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        s_err = 1e3 * (voigt - g["stress"])
        loss = loss + cfg.stress_weight * (weights * (s_err**2).mean(-1)).sum(1) / weights.sum(
            1
        ).clamp_min(1e-9)
    if dipole is not None:
        d_err = 1e3 * (dipole - g["dipole"])  # (K, S, 3) m e·Å
        loss = loss + cfg.dipole_weight * (weights * (d_err**2).mean(-1)).sum(1) / weights.sum(
            1
        ).clamp_min(1e-9)
    return loss.sum()


def train(
    structures: Sequence[Atoms],
    model_config: PaiNNConfig | LongRangeConfig | FieldConfig,
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    init: PaiNN | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or, given `init`, warm-start) an ensemble; evaluate on the held-out test split.

    A fixed-charge long-range model trains its short-range part on the labels less the
    (parameter-free) Coulomb term: the same loss, without differentiating Ewald twice.
    """
    if len(structures) < 3:
        raise ValueError("training needs at least 3 labelled structures")
    if has_fixed_charges(init if init is not None else model_config):
        from mlipserve.server.training.residual import train_fixed_charges

        return train_fixed_charges(structures, model_config, cfg, out_dir, init, progress)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device(None if cfg.device == "auto" else cfg.device)
    if device.type == "cpu":
        keep_freed_memory()
    dtype = getattr(torch, cfg.dtype)
    train_idx, val_idx, test_idx = split_indices(len(structures), cfg.split, cfg.seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise ValueError("the split leaves no training or validation structure")
    module = copy.deepcopy(init) if init is not None else family_module(model_config)
    module.upgrade()  # a warm start from architecture-1 weights trains the current one
    if init is None:
        shifts = element_shifts([structures[i] for i in train_idx], model_config.max_z)
        module.shift.copy_(torch.tensor(shifts))
    module = module.to(device=device, dtype=dtype).train()
    k = module.cfg.members
    n = len(train_idx)
    weights = (
        rng.multinomial(n, np.full(n, 1 / n), size=k) if cfg.bootstrap else np.ones((k, n))
    ).astype(float)
    cache = GraphCache(structures, module.cutoff)
    optimizer = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.epochs)
        if cfg.schedule == "cosine"
        else torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=10)
    )
    best, best_state, stale, history = float("inf"), None, 0, []
    start = time.monotonic()
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("training", total=cfg.epochs)
        for epoch in range(cfg.epochs):
            order = rng.permutation(n)
            total = 0.0
            for lo in range(0, n, cfg.batch_size):
                pick = order[lo : lo + cfg.batch_size]
                g = cache.batch(train_idx[pick], dtype, device)
                w = torch.tensor(weights[:, pick], dtype=dtype, device=device)
                optimizer.zero_grad()
                loss = batch_loss(module, g, w, cfg)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(pick)
            val = validation_loss(module, cache, val_idx, cfg, dtype, device)
            scheduler.step() if cfg.schedule == "cosine" else scheduler.step(val)
            history.append(
                {
                    "epoch": epoch,
                    "train": total / n,
                    "val": val,
                    "lr": optimizer.param_groups[0]["lr"],
                }
            )
            if val < best:
                best, best_state, stale = val, copy.deepcopy(module.state_dict()), 0
            else:
                stale += 1
            bar.update(
                task,
                advance=1,
                description=f"training  train {total / n:9.1f}  val {val:9.1f}  best {best:9.1f}",
            )
            out_of_time = cfg.max_minutes and (time.monotonic() - start) / 60 > cfg.max_minutes
            if stale >= cfg.patience or out_of_time:
                break
    if best_state is None:
        raise ValueError(
            f"validation loss was never finite ({history[-1]['val'] if history else 'no epoch'}"
            "): check the labels for NaN/inf and the learning rate"
        )
    module.load_state_dict(best_state)
    module = module.to(torch.float64).eval()
    metrics = evaluate_split(module, [structures[i] for i in test_idx])
    metrics.update(
        {
            "epochs": len(history),
            "best_val_loss": best,
            "minutes": (time.monotonic() - start) / 60,
            "n_train": len(train_idx),
            "n_val": len(val_idx),
            "n_test": len(test_idx),
        }
    )
    result = TrainResult(
        module,
        metrics,
        history,
        split={"train": train_idx.tolist(), "val": val_idx.tolist(), "test": test_idx.tolist()},
    )
    if out_dir is not None:
        write_report(result, [structures[i] for i in test_idx], cfg, out_dir)
    return result


def write_report(
    result: TrainResult, test: Sequence[Atoms], cfg: TrainConfig, out_dir: str | Path
) -> None:
    """Plots of the test split and metrics.json into `out_dir` (paths in result.files)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.files = write_plots(result.module, list(test), result.history, out)
    (out / "metrics.json").write_text(
        json.dumps(
            {
                "metrics": result.metrics,
                "train_config": asdict(cfg),
                "model_config": result.module.cfg.to_dict(),
            },
            indent=2,
        )
    )
    result.files["metrics"] = str(out / "metrics.json")


def validation_loss(module, cache, val_idx, cfg, dtype, device) -> float:
    """Unweighted loss of the ensemble on the validation split (per structure)."""
    total = 0.0
    for lo in range(0, len(val_idx), cfg.batch_size):
        idx = val_idx[lo : lo + cfg.batch_size]
        g = cache.batch(idx, dtype, device)
        w = torch.ones(module.cfg.members, len(idx), dtype=dtype, device=device)
        with torch.enable_grad():
            total += batch_loss_detached(module, g, w, cfg) * len(idx)
    return total / len(val_idx) / module.cfg.members


def batch_loss_detached(module, g, w, cfg) -> float:
    """batch_loss without building a graph for second derivatives."""
    need_stress = g["stress"] is not None and cfg.stress_weight > 0
    need_dipole = wants_dipole(module, g, cfg)
    energy, forces, stress, dipole = predict(module, g, need_stress, False, need_dipole)
    e_err = 1e3 * (energy - g["energy"]) / g["n_atoms"]
    f_err = 1e3 * (forces - g["forces"])
    loss = cfg.energy_weight * (e_err**2).mean() + cfg.forces_weight * (f_err**2).mean()
    if dipole is not None:
        loss = loss + cfg.dipole_weight * ((1e3 * (dipole - g["dipole"])) ** 2).mean()
    if need_stress:
        voigt = stress[:, :, [0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        loss = loss + cfg.stress_weight * ((1e3 * (voigt - g["stress"])) ** 2).mean()
    return float(loss.detach()) * module.cfg.members
