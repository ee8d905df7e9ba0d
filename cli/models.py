"""`mlipserve models ...`: manage a server's models over REST (trust: on the server machine)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlipserve.cli.options import KEY, URL, console

app = typer.Typer(help="Manage a server's models over its REST API.", no_args_is_help=True)


def _rest(url: str, key: str | None, method: str, path: str, **kwargs):
    from mlipserve.cli.rest import rest_call

    return rest_call(url, key, method, path, **kwargs)


@app.command("list")
def models_list(url: URL = "http://127.0.0.1:8080", api_key: KEY = None) -> None:
    """Loaded and stored model versions."""
    table = Table(title=f"models on {url}")
    for col in ("name", "version", "kind", "ensemble", "cutoff (Å)", "loaded", "default"):
        table.add_column(col)
    for m in _rest(url, api_key, "GET", "/v1/models"):
        table.add_row(
            m["name"],
            m["version"],
            m["kind"],
            str(m.get("ensemble_size") or "-"),
            "?" if m["cutoff"] is None else f"{m['cutoff']:g}",
            "yes" if m["loaded"] else "",
            "yes" if m["is_default"] else "",
        )
    console.print(table)


@app.command("show")
def models_show(name: str, url: URL = "http://127.0.0.1:8080", api_key: KEY = None) -> None:
    """One model: every version, what it computes, its metrics and which is the default."""
    from ase.data import chemical_symbols

    for m in _rest(url, api_key, "GET", f"/v1/models/{name}")["versions"]:
        flags = [f for f, on in (("default", m["is_default"]), ("loaded", m["loaded"])) if on]
        console.print(f"[bold]{m['name']}@{m['version']}[/bold] ({', '.join(flags) or 'stored'})")
        elements = " ".join(chemical_symbols[z] for z in m.get("elements") or []) or "any"
        ensemble = m.get("ensemble_size") or "-"
        console.print(
            f"  kind {m['kind']}, cutoff {m['cutoff']} Å, ensemble {ensemble}, elements {elements}"
        )
        if m.get("properties"):
            console.print(f"  computes {', '.join(m['properties'])}")
        for split, values in (m.get("metrics") or {}).items():
            if isinstance(values, dict):
                numbers = {k: v for k, v in values.items() if isinstance(v, (int, float))}
                console.print(
                    f"  {split}: " + ", ".join(f"{k} {v:.3g}" for k, v in numbers.items())
                )


@app.command("upload")
def models_upload(
    name: str,
    artifact: Path,
    metadata: Path,
    url: URL = "http://127.0.0.1:8080",
    api_key: KEY = None,
    member: Annotated[
        list[Path] | None,
        typer.Option(help="More files of a committee (metatomic / mace families); repeat."),
    ] = None,
) -> None:
    """Add a version: an ARTIFACT (safetensors, or a TorchScript / metatomic / MACE file) and
    its METADATA JSON file, e.g. {"family": "metatomic"} (admin)."""
    paths = [artifact, *(member or [])]
    out = _rest(
        url,
        api_key,
        "POST",
        f"/v1/models/{name}/versions",
        files=[("artifact", (p.name, p.read_bytes())) for p in paths],
        data={"metadata": metadata.read_text()},
    )
    console.print(f"uploaded {out['name']}@{out['version']} (sha256 {out['sha256'][:12]}…)")


@app.command("set-default")
def models_set_default(
    name: str, version: str, url: URL = "http://127.0.0.1:8080", api_key: KEY = None
) -> None:
    """Hot-swap NAME's default to VERSION (admin)."""
    _rest(url, api_key, "PUT", f"/v1/models/{name}/default", json={"version": version})
    console.print(f"{name} now serves {version}")


def _version_action(name: str, version: str, action: str, url: str, key: str | None) -> None:
    """POST a version action (load, unload) over REST and say it was done."""
    _rest(url, key, "POST", f"/v1/models/{name}/versions/{version}/{action}")
    console.print(f"{action}ed {name}@{version}")


@app.command("load")
def models_load(
    name: str, version: str, url: URL = "http://127.0.0.1:8080", api_key: KEY = None
) -> None:
    """Load a stored version (admin)."""
    _version_action(name, version, "load", url, api_key)


@app.command("unload")
def models_unload(
    name: str, version: str, url: URL = "http://127.0.0.1:8080", api_key: KEY = None
) -> None:
    """Unload a non-default version (admin)."""
    _version_action(name, version, "unload", url, api_key)


@app.command("trust")
def models_trust(
    name: str,
    version: str,
    store: Annotated[
        Path | None,
        typer.Option(help="Model store directory (default: the server settings' store)."),
    ] = None,
    revoke: Annotated[bool, typer.Option(help="Remove the flag instead.")] = False,
) -> None:
    """Flag NAME@VERSION as trusted in the store, on the server machine (admin).

    Only a trusted version may be loaded by a loader that needs pickle or native code
    (e.g. a metatomic model with compiled extensions). Whoever can write the store can
    trust; nothing uploaded over the network can set the flag.
    """
    from mlipserve.server.config import Settings
    from mlipserve.server.store import ModelStore

    ModelStore(store or Settings().model_store_dir).set_trusted(name, version, not revoke)
    console.print(f"{name}@{version} is {'no longer ' if revoke else ''}trusted")
