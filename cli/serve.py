"""`mlipserve serve`: start the gRPC and REST server from settings and options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlipserve.cli.options import EpilogHelp, console


def settings_help() -> str:
    """Every server setting as its environment variable, default and meaning (for --help)."""
    try:
        from mlipserve.server.config import Settings
    except ImportError:  # the thin client's install: no server extra
        return "The server's settings are listed here once mlipserve[server] is installed."
    lines = ["Settings (environment variables; the options above override them):"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, list):
            default = ",".join(map(str, default))
        shown = repr(default) if isinstance(default, str) else str(default)
        about = f": {field.description}" if field.description else ""
        lines.append(f"  MLIPSERVE_{name.upper()}={shown}{about}")
    return "\n".join(lines)


class SettingsHelp(EpilogHelp):
    """`serve`'s command: its --help ends with every setting."""

    def epilog_text(self) -> str:
        """The settings list."""
        return settings_help()


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="gRPC port (default 50051).")] = None,
    rest_port: Annotated[int | None, typer.Option(help="REST port (default 8080).")] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated models, e.g. 'emt,lj' or 'default,lj:float32'."),
    ] = None,
    default_model: Annotated[
        str | None, typer.Option(help="Model for requests naming none.")
    ] = None,
    batching: Annotated[bool | None, typer.Option(help="Batch concurrent requests.")] = None,
    max_batch_atoms: Annotated[int | None, typer.Option(help="Atoms per batch at most.")] = None,
    max_wait_us: Annotated[
        int | None, typer.Option(help="Extra wait for fuller batches (µs).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="'auto', 'cpu' or 'cuda:N'.")] = None,
    auth: Annotated[bool | None, typer.Option(help="Require API keys (see `keys create`).")] = None,
    insecure_public: Annotated[
        bool | None,
        typer.Option(
            "--insecure-public/--private", help="Allow a non-loopback address with auth off."
        ),
    ] = None,
    tls_cert: Annotated[str | None, typer.Option(help="PEM certificate (gRPC and REST).")] = None,
    tls_key: Annotated[str | None, typer.Option(help="PEM private key.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Keys database and model store.")] = None,
    tenant_max_queued_atoms: Annotated[
        int | None, typer.Option(help="Per tenant, 0: none.")
    ] = None,
    tenant_requests_per_s: Annotated[
        float | None, typer.Option(help="Per tenant, 0: none.")
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="Queue jobs on Redis (redis://127.0.0.1:6379/0); default: SQLite in data-dir."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="In-process queue workers (default 1; 0 when separate `mlipserve worker`s run)."
        ),
    ] = None,
) -> None:
    """Start the server. Every option is also an MLIPSERVE_<OPTION> environment variable."""
    import asyncio
    import os

    # torch's idle OpenMP threads would otherwise spin, taking CPU from clients on this box
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from mlipserve.server.memory import keep_freed_memory

    keep_freed_memory()  # before any thread starts: they must share the tuned main arena
    from mlipserve.server.app import serve as run
    from mlipserve.server.config import Settings
    from mlipserve.server.logs import setup_logging

    overrides = {
        "host": host,
        "port": port,
        "rest_port": rest_port,
        "default_model": default_model,
        "batching": batching,
        "max_batch_atoms": max_batch_atoms,
        "max_wait_us": max_wait_us,
        "device": device,
        "auth": auth,
        "insecure_public": insecure_public,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "data_dir": data_dir,
        "tenant_max_queued_atoms": tenant_max_queued_atoms,
        "tenant_requests_per_s": tenant_requests_per_s,
        "redis_url": redis_url,
        "workers": workers,
        "models": [m.strip() for m in models.split(",") if m.strip()] if models else None,
    }
    from pydantic import ValidationError

    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        setup_logging(settings.log_level, settings.log_json)
        asyncio.run(run(settings))
    except (ValueError, ValidationError, OSError) as err:
        console.print(f"[red]cannot serve:[/red] {err}")
        raise typer.Exit(2) from None
