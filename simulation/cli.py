"""`mlipserve props ...`: materials-property workflows on a server's model."""

from __future__ import annotations

import typer

app = typer.Typer(help="Materials properties computed on a server's model (batched).",
                  no_args_is_help=True)
