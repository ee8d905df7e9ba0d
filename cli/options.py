"""Options and the console shared by the `mlipserve` commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import click
import typer
from rich.console import Console
from typer.core import TyperCommand

console = Console()
# One way to name the server for every command: --target (gRPC) / --url (REST), or the
# environment variables MLIPSERVE_TARGET / MLIPSERVE_URL.
TARGET = Annotated[
    str,
    typer.Option(
        "--target", envvar="MLIPSERVE_TARGET", help="gRPC address of the server (host:port)."
    ),
]
URL = Annotated[
    str, typer.Option("--url", envvar="MLIPSERVE_URL", help="REST address of the server.")
]
KEY = Annotated[
    str | None,
    typer.Option("--api-key", envvar="MLIPSERVE_API_KEY", help="API key (or MLIPSERVE_API_KEY)."),
]


@contextmanager
def exit_on_errors(where: str = "server") -> Iterator[None]:
    """End a command with a message: server errors and lost connections exit 1, bad input 2."""
    from mlipserve.client import MLIPServeError

    try:
        yield
    except MLIPServeError as err:
        console.print(f"[red]{where} error:[/red] {err.details}")
        raise typer.Exit(1) from None
    except ValueError as err:
        console.print(f"[red]bad input:[/red] {err}")
        raise typer.Exit(2) from None
    except ConnectionError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from None


class EpilogHelp(TyperCommand):
    """A command whose --help ends with `epilog_text()`, built only when help is asked for.

    Plain (click) help, not rich's tables: those cut long option names at 80 columns.
    """

    def epilog_text(self) -> str:
        """The text after the options (lines kept as they are)."""
        return ""

    def get_help(self, ctx: click.Context) -> str:
        """The help text, with `epilog_text()` as its epilog."""
        self.epilog = "\b\n" + self.epilog_text()
        self.rich_markup_mode = None
        return super().get_help(ctx)
