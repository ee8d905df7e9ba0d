"""`mlipserve eval`: evaluate every frame of a structure file on a server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlipserve.cli.options import TARGET, console, exit_on_errors


def evaluate(
    file: Annotated[Path, typer.Argument(help="Any structure file ASE can read (all frames).")],
    target: TARGET = "127.0.0.1:50051",
    model: Annotated[str, typer.Option(help="Model name (empty: server default).")] = "",
    stress: Annotated[bool, typer.Option(help="Also compute stress (needs a cell).")] = False,
    output: Annotated[
        Path | None, typer.Option(help="Write frames with results as extxyz.")
    ] = None,
) -> None:
    """Evaluate every frame of FILE on a server; print energy and max force."""
    import ase.io
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator

    from mlipserve.client import Client

    frames = ase.io.read(file, index=":")
    properties = ["energy", "forces"] + (["stress"] if stress else [])
    with exit_on_errors(f"server {target}"), Client(target, model) as client:
        results = client.evaluate(frames, properties)
    table = Table(title=f"{file} on {results[0]['model']}@{results[0]['model_version']}")
    for col in ("frame", "atoms", "energy (eV)", "eV/atom", "max |F| (eV/Å)"):
        table.add_column(col, justify="right")
    for i, (atoms, res) in enumerate(zip(frames, results)):
        fmax = float(np.linalg.norm(res["forces"], axis=1).max())
        table.add_row(
            str(i),
            str(len(atoms)),
            f"{res['energy']:.6f}",
            f"{res['energy'] / len(atoms):.6f}",
            f"{fmax:.4f}",
        )
        atoms.calc = SinglePointCalculator(
            atoms, **{k: res[k] for k in ("energy", "forces", "stress") if k in res}
        )
    console.print(table)
    if output is not None:
        ase.io.write(output, frames, format="extxyz")
        console.print(f"wrote {output}")
