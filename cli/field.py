"""`mlipserve props field-sweep`: forces, dipole and Born charges against the field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlipserve.cli.options import TARGET, console
from mlipserve.cli.workflow import (
    JsonOutput,
    Model,
    provider,
    read_one,
    record,
    titled,
    write_json,
)


def field_sweep(
    file: Annotated[Path, typer.Argument(help="A molecule or cluster ASE can read (last frame).")],
    direction: Annotated[str, typer.Option(help="Field direction, e.g. '0,0,1'.")] = "0,0,1",
    max_field: Annotated[float, typer.Option(min=0.0, help="Largest |E| (V/Å).")] = 0.1,
    points: Annotated[int, typer.Option(min=2, help="Fields from −max to +max.")] = 11,
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    output: JsonOutput = None,
) -> None:
    """Energy, forces, dipole, Born charges and charges of FILE at a sweep of uniform fields
    (one call for all fields); the polarizability from the dipole's slope."""
    from mlipserve.simulation.properties.field_sweep import field_sweep as sweep_fn
    from mlipserve.simulation.properties.field_sweep import plot_field_sweep

    atoms, _, _ = read_one(file)
    try:
        axis = [float(x) for x in direction.split(",")]
    except ValueError:
        raise typer.BadParameter(f"--direction: {direction!r} is not three numbers") from None
    if len(axis) != 3 or not any(axis) or max_field <= 0:
        raise typer.BadParameter("--direction needs three numbers, not all 0, and --max-field > 0")
    with provider(target, model) as remote:
        sweep = sweep_fn(remote, atoms, axis, max_field, points)
        prov = record(remote)
    alpha = sweep.polarizability()
    console.print(f"dipole at E = 0: {sweep.dipole[points // 2].round(4).tolist()} e·Å")
    console.print(f"polarizability (e·Å²/V): diagonal {alpha.diagonal().round(4).tolist()}")
    console.print(f"Born sum rule |Σ Z*| ≤ {abs(sweep.born_charges.sum(1)).max():.2e} e")
    if output is not None:
        write_json(output, {**sweep.to_dict(), "polarizability_eA2_per_V": alpha}, prov)
        png = plot_field_sweep(sweep, output.with_suffix(".png"), **titled(atoms, prov, "field"))
        console.print(f"wrote {png}")
