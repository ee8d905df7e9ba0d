"""`mlipserve ipi-driver`: answer i-PI's socket force requests with a served model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlipserve.cli.options import KEY, console, exit_on_errors


def ipi_driver(
    structure: Annotated[
        Path,
        typer.Argument(
            help="The system i-PI runs (e.g. its init.xyz), read by ASE for the elements."
        ),
    ],
    address: Annotated[
        str,
        typer.Option(
            help="i-PI's <address>: a host (inet), or with --unix a socket name (/tmp/ipi_NAME) "
            "or path."
        ),
    ] = "localhost",
    port: Annotated[int, typer.Option(help="i-PI's <port> (inet sockets).")] = 31415,
    unix: Annotated[bool, typer.Option("--unix", help="Connect to a unix socket.")] = False,
    server: Annotated[
        str,
        typer.Option(
            "--target",
            "--server",
            envvar="MLIPSERVE_TARGET",
            help="gRPC address of the mlipserve server (host:port).",
        ),
    ] = "127.0.0.1:50051",
    model: Annotated[str, typer.Option(help="Model name (empty: server default).")] = "",
    clients: Annotated[
        int,
        typer.Option(
            help="Connections to i-PI in this process, so beads are evaluated concurrently."
        ),
    ] = 1,
    api_key: KEY = None,
    stress: Annotated[
        bool, typer.Option(help="Send the virial (needed for NPT, pressure).")
    ] = True,
    pbc: Annotated[bool, typer.Option(help="Periodic in all three directions.")] = True,
    wait: Annotated[float, typer.Option(help="Seconds to wait for i-PI's socket.")] = 30.0,
    server_wait: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 10.0,
) -> None:
    """Answer i-PI's force requests (i-PI socket protocol) with a served model until EXIT."""
    import ase.io

    from mlipserve.client.ipi_driver import run_ipi_driver

    try:
        template = ase.io.read(structure, index=0)
    except Exception as err:  # noqa: BLE001 - ASE raises many kinds for unreadable files
        console.print(f"[red]cannot read {structure}:[/red] {err}")
        raise typer.Exit(2) from None
    template.pbc = pbc
    with exit_on_errors(f"mlipserve server {server}"):
        report = run_ipi_driver(
            template,
            server,
            model,
            address=address,
            port=port,
            unix=unix,
            clients=clients,
            stress=stress,
            api_key=api_key,
            connect_wait_s=wait,
            server_wait_s=server_wait,
        )
    console.print(
        f"i-PI finished: {sum(report.structures)} structures evaluated on "
        f"{report.model} over {clients} connection(s)"
    )
    if not all(report.said_exit):
        console.print(
            "[yellow]i-PI closed the connection without EXIT (did it stop early?)[/yellow]"
        )
