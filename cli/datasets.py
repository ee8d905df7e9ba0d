"""`mlipserve datasets ...`: which tenants may use a dataset (over REST; sharing is admin-only)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mlipserve.cli.options import KEY, URL, console
from mlipserve.cli.rest import rest_call

app = typer.Typer(
    help="Dataset sharing between tenants (over REST; admin to share).", no_args_is_help=True
)


@app.command("shares")
def datasets_shares(url: URL = "http://127.0.0.1:8080", api_key: KEY = None) -> None:
    """Shared datasets your tenant owns or receives (every share for admins)."""
    table = Table(title=f"dataset shares on {url}")
    for col in ("dataset", "shared with"):
        table.add_column(col)
    for row in rest_call(url, api_key, "GET", "/v1/datasets/shares"):
        table.add_row(row["dataset"], ", ".join(row["shared_with"]))
    console.print(table)


@app.command("share")
def datasets_share(
    owner: Annotated[str, typer.Argument(help="Tenant that owns the dataset.")],
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    tenants: Annotated[
        str,
        typer.Option(
            "--with",
            help="Comma-separated tenants that may read and label into it (empty: unshare).",
        ),
    ] = "",
    url: URL = "http://127.0.0.1:8080",
    api_key: KEY = None,
) -> None:
    """Share OWNER's dataset NAME with exactly the tenants given (admin key); jobs of those
    tenants name it as OWNER:NAME."""
    from urllib.parse import quote

    body = {"tenants": [t.strip() for t in tenants.split(",") if t.strip()]}
    owner_q, name_q = (quote(s, safe="").replace(".", "%2E") for s in (owner, name))
    out = rest_call(url, api_key, "PUT", f"/v1/datasets/shares/{owner_q}/{name_q}", json=body)
    console.print(f"{out['dataset']} shared with: {', '.join(out['shared_with']) or 'nobody'}")
