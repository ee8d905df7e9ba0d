"""The `mlipserve` command line: every sub-command is registered here, explicitly.

Each command lives in the module named for it and imports heavy parts (torch, the server,
ASE) inside the command, so `mlipserve --help` stays fast and the thin client's install
runs the client commands without the server extras.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mlipserve.cli import (
    conductivity,
    datasets,
    evaluate,
    field,
    health,
    ipi,
    jobs,
    keys,
    labellers,
    md,
    models,
    paths,
    props,
    sampling,
    serve,
    status,
    training,
)

app = typer.Typer(
    help="Serve machine-learning interatomic potentials to many simulations.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(show: bool) -> None:
    if show:
        from mlipserve import __version__

        typer.echo(f"mlipserve {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Serve machine-learning interatomic potentials to many simulations."""


app.command("serve", cls=serve.SettingsHelp)(serve.serve)
app.command("eval")(evaluate.evaluate)
app.command("health")(health.health)
app.command("status")(status.status)
app.command("ipi-driver")(ipi.ipi_driver)
app.command("data")(training.make_data)
app.command("train")(training.train_model)
app.command("worker")(jobs.worker)
app.add_typer(models.app, name="models")
app.add_typer(keys.app, name="keys")
app.add_typer(jobs.app, name="jobs")
app.add_typer(datasets.app, name="datasets")
app.add_typer(labellers.app, name="labellers")
props.app.command("conductivity")(conductivity.conductivity)
props.app.command("field-sweep")(field.field_sweep)
app.add_typer(props.app, name="props")
app.command("md")(md.md)
app.command("pimd")(md.pimd)
app.command("relax")(paths.relax)
app.command("neb")(paths.neb)
app.command("umbrella")(sampling.umbrella)
app.command("metad")(sampling.metad)
