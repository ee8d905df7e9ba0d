"""`mlipserve data` and `mlipserve train`: the default model's data set and the trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlipserve.cli.options import console


def make_data(
    output: Annotated[Path, typer.Argument(help="extxyz file to write.")],
    seed: Annotated[int, typer.Option(help="Random seed (another seed: an independent set).")] = 0,
    scale: Annotated[int, typer.Option(help="Multiply the set's size.")] = 1,
    ood: Annotated[bool, typer.Option(help="Write the out-of-distribution set instead.")] = False,
) -> None:
    """Generate the EMT-labelled metal/alloy set the default model is trained on."""
    import ase.io

    from mlipserve.server.training.emt_data import generate, out_of_distribution

    frames = out_of_distribution(seed) if ood else generate(seed, scale)
    output.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(output, frames, format="extxyz")
    console.print(f"wrote {len(frames)} structures ({sum(map(len, frames))} atoms) to {output}")


def train_model(
    data: Annotated[Path, typer.Argument(help="Labelled structures: extxyz or ase.db.")],
    name: Annotated[str, typer.Option(help="Model name in the store.")] = "default",
    store: Annotated[
        Path | None,
        typer.Option(help="Model store directory (default: the server settings' store)."),
    ] = None,
    report: Annotated[Path, typer.Option(help="Folder for plots and metrics.")] = Path(
        "train-report"
    ),
    epochs: Annotated[int, typer.Option()] = 300,
    members: Annotated[int, typer.Option(help="Ensemble size K.")] = 4,
    features: Annotated[int, typer.Option()] = 32,
    layers: Annotated[int, typer.Option()] = 2,
    cutoff: Annotated[float, typer.Option(help="Å")] = 5.0,
    lr: Annotated[float, typer.Option()] = 3e-3,
    batch_size: Annotated[int, typer.Option()] = 8,
    seed: Annotated[int, typer.Option()] = 0,
    energy_weight: Annotated[float, typer.Option(help="Loss weight on (meV/atom)².")] = 1.0,
    forces_weight: Annotated[float, typer.Option(help="Loss weight on (meV/Å)².")] = 1.0,
    stress_weight: Annotated[float, typer.Option(help="Loss weight on (meV/Å³)².")] = 1.0,
    max_minutes: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
    warm_start: Annotated[
        str | None, typer.Option(help="Version of NAME to continue from.")
    ] = None,
    test_data: Annotated[Path | None, typer.Option(help="Extra held-out set to report on.")] = None,
    ood_data: Annotated[Path | None, typer.Option(help="Out-of-distribution set.")] = None,
) -> None:
    """Train an ensemble (PaiNN family) and store it as a new version of NAME."""
    from mlipserve.server.store import ModelStore
    from mlipserve.server.training import TrainConfig, load_structures
    from mlipserve.server.training.pipeline import Architecture, train_version

    train_cfg = TrainConfig(
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        max_minutes=max_minutes,
        energy_weight=energy_weight,
        forces_weight=forces_weight,
        stress_weight=stress_weight,
    )
    extra = {
        key: load_structures(path)
        for key, path in (("held_out", test_data), ("out_of_distribution", ood_data))
        if path is not None
    }
    if store is None:
        from mlipserve.server.config import Settings

        store = Settings().model_store_dir
    version, metrics = train_version(
        load_structures(data),
        ModelStore(store),
        name,
        train_cfg,
        arch=Architecture(members, features, layers, cutoff),
        warm_start=warm_start,
        report_dir=report,
        extra_sets=extra,
    )
    table = Table(title=f"{name}@{version}")
    for col in ("set", "E MAE meV/atom", "F MAE meV/Å", "S MAE meV/Å³", "Spearman"):
        table.add_column(col)
    for key, m in metrics.items():
        table.add_row(
            key,
            f"{m.get('energy_mae_mev_per_atom', float('nan')):.2f}",
            f"{m.get('force_mae_mev_per_A', float('nan')):.1f}",
            f"{m.get('stress_mae_mev_per_A3', float('nan')):.2f}",
            f"{m.get('calibration_spearman') or float('nan'):.2f}",
        )
    console.print(table)
    console.print(f"stored {name}@{version} in {store}; plots and metrics in {report}")
