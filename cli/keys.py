"""`mlipserve keys ...`: API keys, kept in the server machine's database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlipserve.cli.options import console

app = typer.Typer(
    help="API keys (run on the server machine; they go to its database).", no_args_is_help=True
)


def _key_store(db: str | None, data_dir: Path | None):
    from mlipserve.server.auth import KeyStore
    from mlipserve.server.config import Settings

    settings = Settings(**{k: v for k, v in {"auth_db": db, "data_dir": data_dir}.items() if v})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return KeyStore(settings.key_db_url)


@app.command("create")
def keys_create(
    role: Annotated[
        str, typer.Option(help="user (evaluate, read) or admin (also manage).")
    ] = "user",
    tenant: Annotated[
        str, typer.Option(help="Who the key belongs to (fair-share unit).")
    ] = "default",
    db: Annotated[str | None, typer.Option(help="Key database URL.")] = None,
    data_dir: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Create a key; it is printed once and stored only as an argon2 hash."""
    try:
        key_id, key = _key_store(db, data_dir).create(role, tenant)
    except ValueError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    console.print(f"key id {key_id} ({role}, tenant {tenant}):")
    print(key)


@app.command("list")
def keys_list(
    db: Annotated[str | None, typer.Option()] = None,
    data_dir: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """List keys (ids, roles, tenants; never the keys)."""
    table = Table()
    for col in ("id", "role", "tenant", "revoked"):
        table.add_column(col)
    for row in _key_store(db, data_dir).list():
        table.add_row(row["id"], row["role"], row["tenant"], "yes" if row["revoked"] else "")
    console.print(table)


@app.command("revoke")
def keys_revoke(
    key_id: str,
    db: Annotated[str | None, typer.Option()] = None,
    data_dir: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Revoke a key by id."""
    if not _key_store(db, data_dir).revoke(key_id):
        console.print(f"[red]no key {key_id}[/red]")
        raise typer.Exit(1)
