"""`mlipserve data` and `mlipserve train`: the default model's data set and the trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from ase.data import atomic_numbers
from rich.table import Table

from mlipserve.cli.options import console
from mlipserve.cli.workflow import parse_charges


def make_data(
    output: Annotated[Path, typer.Argument(help="extxyz file to write.")],
    seed: Annotated[int, typer.Option(help="Random seed (another seed: an independent set).")] = 0,
    scale: Annotated[int, typer.Option(help="Multiply the set's size.")] = 1,
    ood: Annotated[bool, typer.Option(help="Write the out-of-distribution set instead.")] = False,
    wide: Annotated[
        bool, typer.Option(help="Write the widening set (uneven alloys, vacancies, MD).")
    ] = False,
    independent: Annotated[
        bool,
        typer.Option(
            help="Write the independent alloy test set (another procedure; --scale: x40)."
        ),
    ] = False,
) -> None:
    """Generate the EMT-labelled metal/alloy set the default model is trained on."""
    import ase.io

    from mlipserve.server.training import emt_data
    from mlipserve.server.training.alloy_testset import independent_alloys

    if sum((ood, wide, independent)) > 1:
        raise typer.BadParameter("choose at most one of --ood, --wide, --independent")
    if ood:
        frames = emt_data.out_of_distribution(seed)
    elif wide:
        frames = emt_data.wide(seed, scale)
    elif independent:
        frames = independent_alloys(seed, 40 * scale)
    else:
        frames = emt_data.generate(seed, scale)
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
    charges: Annotated[
        str | None,
        typer.Option(
            help="Add a Coulomb term (family painn-coulomb): 'predicted' (per atom, projected "
            "onto each system's total charge) or fixed per element, e.g. 'Na=1,Cl=-1'."
        ),
    ] = None,
    coulomb_cutoff: Annotated[float, typer.Option(help="Ewald real-space cutoff, Å.")] = 8.0,
    ewald_accuracy: Annotated[
        float, typer.Option(help="Relative accuracy the pinned Ewald split is chosen for.")
    ] = 1e-6,
    ewald_method: Annotated[str, typer.Option(help="'ewald' or 'pme'.")] = "ewald",
) -> None:
    """Train an ensemble (PaiNN, or PaiNN + Coulomb with --charges) and store it as a new
    version of NAME."""
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
        arch=Architecture(
            members,
            features,
            layers,
            cutoff,
            long_range=long_range_options(charges, coulomb_cutoff, ewald_accuracy, ewald_method),
        ),
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


def long_range_options(
    charges: str | None, cutoff: float, accuracy: float, method: str
) -> dict | None:
    """The Architecture's long_range entry from the train options (None: short-range)."""
    if charges is None:
        return None
    if method not in ("ewald", "pme"):
        raise typer.BadParameter(f"--ewald-method must be 'ewald' or 'pme', not {method!r}")
    spec: dict = {"coulomb_cutoff": cutoff, "accuracy": accuracy, "method": method}
    if charges == "predicted":
        return {**spec, "charges": "predicted"}
    table = {str(atomic_numbers[k]): v for k, v in parse_charges(charges).items()}
    return {**spec, "charges": "fixed", "element_charges": table}
