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
    """Evaluate every frame of FILE on a server; print energy, max force, the ensemble's
    uncertainty and every trust warning; --output writes the frames with their results and
    provenance (model, version, content hash, server, mlipserve version) as extxyz."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    from mlipserve.client import Client
    from mlipserve.simulation.provenance import from_model_info, provenance, stamp

    try:
        frames = ase.io.read(file, index=":")
    except Exception as err:  # noqa: BLE001 - ASE raises many kinds for unreadable files
        console.print(f"[red]cannot read {file}:[/red] {err}")
        raise typer.Exit(2) from None
    with exit_on_errors(f"server {target}"), Client(target, model) as client:
        results = client.evaluate(frames, ["energy", "forces"])
        served = [
            e
            for e in client.list_models()
            if e["name"] == results[0]["model"] and e["version"] == results[0]["model_version"]
        ]
        ensemble = bool(served and served[0]["ensemble_size"])
        properties = ["energy", "forces"] + ["stress"] * stress + ["uncertainty"] * ensemble
        if len(properties) > 2:
            results = client.evaluate(frames, properties)
    record = provenance(None)
    record.update(from_model_info(served[0], target) if served else {"server": target})
    console.print(_table(file, frames, results, ensemble))
    for i, res in enumerate(results):
        for warning in res.get("warnings", []):
            console.print(f"[yellow]frame {i}:[/yellow] {warning}")
    if output is not None:
        for atoms, res in zip(frames, results):
            atoms.calc = SinglePointCalculator(
                atoms, **{k: res[k] for k in ("energy", "forces", "stress") if k in res}
            )
            stamp(atoms, record)
            for key in ("energy_std", "max_force_std"):
                if key in res:
                    atoms.info[key] = res[key]
        ase.io.write(output, frames, format="extxyz")
        console.print(f"wrote {output}")


def _table(file: Path, frames: list, results: list[dict], ensemble: bool) -> Table:
    """One row per frame: energy, per atom, max |F|, and the ensemble's std when there is one."""
    import numpy as np

    table = Table(title=f"{file} on {results[0]['model']}@{results[0]['model_version']}")
    columns = ["frame", "atoms", "energy (eV)", "eV/atom", "max |F| (eV/Å)"]
    columns += ["E std (eV/atom)", "max F std (eV/Å)"] * ensemble + ["warnings"]
    for col in columns:
        table.add_column(col, justify="right")
    for i, (atoms, res) in enumerate(zip(frames, results)):
        n = len(atoms)
        row = [str(i), str(n), f"{res['energy']:.6f}", f"{res['energy'] / n:.6f}"]
        row.append(f"{float(np.linalg.norm(res['forces'], axis=1).max()):.4f}")
        if ensemble:
            row += [f"{res['energy_std'] / n:.4f}", f"{res['max_force_std']:.4f}"]
        row.append(str(len(res.get("warnings", []))))
        table.add_row(*row)
    return table
