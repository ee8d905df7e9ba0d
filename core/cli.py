"""The `mlipserve` command line: serve, eval, models."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Serve machine-learning interatomic potentials to many simulations.",
                  no_args_is_help=True, add_completion=False)
console = Console()


def _mount_simulation_commands() -> None:
    from mlipserve.simulation.cli import app as props_app

    app.add_typer(props_app, name="props")


_mount_simulation_commands()


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(help="gRPC port (default 50051).")] = None,
    models: Annotated[
        Optional[str],
        typer.Option(help="Comma-separated models, e.g. 'emt,lj,lj-ensemble,lj:float32'."),
    ] = None,
    default_model: Annotated[Optional[str], typer.Option(help="Model for requests naming none.")] = None,
    batching: Annotated[Optional[bool], typer.Option(help="Batch concurrent requests.")] = None,
    max_batch_atoms: Annotated[Optional[int], typer.Option(help="Atoms per batch at most.")] = None,
    max_wait_us: Annotated[Optional[int], typer.Option(help="Extra wait for fuller batches (µs).")] = None,
    device: Annotated[Optional[str], typer.Option(help="'auto', 'cpu' or 'cuda:N'.")] = None,
) -> None:
    """Start the server. Every option is also an MLIPSERVE_<OPTION> environment variable."""
    import asyncio

    from rich.logging import RichHandler

    from mlipserve.server.app import serve as run
    from mlipserve.server.config import Settings

    if sys.stderr.isatty():
        logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler()])
    else:  # plain lines for log files and supervisors
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    overrides = {
        "host": host, "port": port, "default_model": default_model, "batching": batching,
        "max_batch_atoms": max_batch_atoms, "max_wait_us": max_wait_us, "device": device,
        "models": [m.strip() for m in models.split(",") if m.strip()] if models else None,
    }
    from pydantic import ValidationError

    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        asyncio.run(run(settings))
    except (ValueError, ValidationError, OSError) as err:
        console.print(f"[red]cannot serve:[/red] {err}")
        raise typer.Exit(2) from None


@app.command("eval")
def evaluate(
    file: Annotated[Path, typer.Argument(help="Any structure file ASE can read (all frames).")],
    target: Annotated[str, typer.Option(help="Server address.")] = "127.0.0.1:50051",
    model: Annotated[str, typer.Option(help="Model name (empty: server default).")] = "",
    stress: Annotated[bool, typer.Option(help="Also compute stress (needs a cell).")] = False,
    output: Annotated[Optional[Path], typer.Option(help="Write frames with results as extxyz.")] = None,
) -> None:
    """Evaluate every frame of FILE on a server; print energy and max force."""
    import ase.io
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator

    from mlipserve.client import Client, MLIPServeError

    frames = ase.io.read(file, index=":")
    properties = ["energy", "forces"] + (["stress"] if stress else [])
    try:
        with Client(target, model) as client:
            results = client.evaluate(frames, properties)
    except MLIPServeError as err:
        console.print(f"[red]error:[/red] {err.details}")
        raise typer.Exit(1) from None
    table = Table(title=f"{file} on {results[0]['model']}@{results[0]['model_version']}")
    for col in ("frame", "atoms", "energy (eV)", "eV/atom", "max |F| (eV/Å)"):
        table.add_column(col, justify="right")
    for i, (atoms, res) in enumerate(zip(frames, results)):
        fmax = float(np.linalg.norm(res["forces"], axis=1).max())
        table.add_row(str(i), str(len(atoms)), f"{res['energy']:.6f}",
                      f"{res['energy'] / len(atoms):.6f}", f"{fmax:.4f}")
        atoms.calc = SinglePointCalculator(
            atoms, **{k: res[k] for k in ("energy", "forces", "stress") if k in res}
        )
    console.print(table)
    if output is not None:
        ase.io.write(output, frames, format="extxyz")
        console.print(f"wrote {output}")


@app.command("models")
def list_models(
    target: Annotated[str, typer.Option(help="Server address.")] = "127.0.0.1:50051",
) -> None:
    """List the models a server has loaded."""
    from mlipserve.client import Client

    with Client(target) as client:
        models = client.list_models()
    table = Table(title=f"models on {target}")
    for col in ("name", "version", "kind", "ensemble", "cutoff (Å)", "dtype", "device", "default"):
        table.add_column(col)
    for m in models:
        table.add_row(m["name"], m["version"], m["kind"], str(m["ensemble_size"] or "-"),
                      f"{m['cutoff']:g}", m["dtype"], m["device"], "yes" if m["is_default"] else "")
    console.print(table)


if __name__ == "__main__":
    app()
