"""The `mlipserve` command line: serve, eval, models, keys, data, train, jobs, worker, props."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


def _mount_queue_commands() -> None:
    from mlipserve.jobs_cli import datasets_app, jobs_app, worker
    from mlipserve.labellers_cli import labellers_app

    app.add_typer(jobs_app, name="jobs")
    app.add_typer(datasets_app, name="datasets")
    app.add_typer(labellers_app, name="labellers")
    app.command("worker")(worker)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="gRPC port (default 50051).")] = None,
    rest_port: Annotated[int | None, typer.Option(help="REST port (default 8080).")] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated models, e.g. 'emt,lj,lj-ensemble,lj:float32'."),
    ] = None,
    default_model: Annotated[str | None, typer.Option(help="Model for requests naming none.")] = None,
    batching: Annotated[bool | None, typer.Option(help="Batch concurrent requests.")] = None,
    max_batch_atoms: Annotated[int | None, typer.Option(help="Atoms per batch at most.")] = None,
    max_wait_us: Annotated[int | None, typer.Option(help="Extra wait for fuller batches (µs).")] = None,
    device: Annotated[str | None, typer.Option(help="'auto', 'cpu' or 'cuda:N'.")] = None,
    auth: Annotated[bool | None, typer.Option(help="Require API keys (see `keys create`).")] = None,
    insecure_public: Annotated[bool | None, typer.Option(
        help="Allow a non-loopback address with auth off.")] = None,
    tls_cert: Annotated[str | None, typer.Option(help="PEM certificate (gRPC and REST).")] = None,
    tls_key: Annotated[str | None, typer.Option(help="PEM private key.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Keys database and model store.")] = None,
    tenant_max_queued_atoms: Annotated[int | None, typer.Option(help="Per tenant, 0: none.")] = None,
    tenant_requests_per_s: Annotated[float | None, typer.Option(help="Per tenant, 0: none.")] = None,
    redis_url: Annotated[str | None, typer.Option(
        help="Queue jobs on Redis (redis://127.0.0.1:6379/0); default: SQLite in data-dir.")] = None,
    workers: Annotated[int | None, typer.Option(
        help="In-process queue workers (default 1; 0 when separate `mlipserve worker`s run).")] = None,
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
        "host": host, "port": port, "rest_port": rest_port, "default_model": default_model, "batching": batching,
        "max_batch_atoms": max_batch_atoms, "max_wait_us": max_wait_us, "device": device,
        "auth": auth, "insecure_public": insecure_public, "tls_cert": tls_cert, "tls_key": tls_key,
        "data_dir": data_dir, "tenant_max_queued_atoms": tenant_max_queued_atoms,
        "tenant_requests_per_s": tenant_requests_per_s, "redis_url": redis_url, "workers": workers,
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


@app.command("eval")
def evaluate(
    file: Annotated[Path, typer.Argument(help="Any structure file ASE can read (all frames).")],
    target: Annotated[str, typer.Option(help="Server address.")] = "127.0.0.1:50051",
    model: Annotated[str, typer.Option(help="Model name (empty: server default).")] = "",
    stress: Annotated[bool, typer.Option(help="Also compute stress (needs a cell).")] = False,
    output: Annotated[Path | None, typer.Option(help="Write frames with results as extxyz.")] = None,
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


models_app = typer.Typer(help="Manage a server's models over its REST API.", no_args_is_help=True)
app.add_typer(models_app, name="models")
URL = Annotated[str, typer.Option("--url", help="REST address of the server.")]
KEY = Annotated[str | None, typer.Option("--api-key", envvar="MLIPSERVE_API_KEY",
                                            help="API key (or MLIPSERVE_API_KEY).")]


def _rest(url: str, key: str | None, method: str, path: str, **kwargs):
    from mlipserve.rest_call import rest_call

    return rest_call(url, key, method, path, **kwargs)


@models_app.command("list")
def models_list(url: URL = "http://127.0.0.1:8080", api_key: KEY = None) -> None:
    """Loaded and stored model versions."""
    table = Table(title=f"models on {url}")
    for col in ("name", "version", "kind", "ensemble", "cutoff (Å)", "loaded", "default"):
        table.add_column(col)
    for m in _rest(url, api_key, "GET", "/v1/models"):
        table.add_row(m["name"], m["version"], m["kind"], str(m.get("ensemble_size") or "-"),
                      "?" if m["cutoff"] is None else f"{m['cutoff']:g}",
                      "yes" if m["loaded"] else "",
                      "yes" if m["is_default"] else "")
    console.print(table)


@models_app.command("upload")
def models_upload(name: str, artifact: Path, metadata: Path, url: URL = "http://127.0.0.1:8080",
                  api_key: KEY = None,
                  member: Annotated[list[Path] | None, typer.Option(
                      help="More files of a committee (metatomic / mace families); repeat.")] = None,
                  ) -> None:
    """Add a version: an ARTIFACT (safetensors, or a TorchScript / metatomic / MACE file) and
    its METADATA JSON file, e.g. {"family": "metatomic"} (admin)."""
    paths = [artifact, *(member or [])]
    out = _rest(url, api_key, "POST", f"/v1/models/{name}/versions",
                files=[("artifact", (p.name, p.read_bytes())) for p in paths],
                data={"metadata": metadata.read_text()})
    console.print(f"uploaded {out['name']}@{out['version']} (sha256 {out['sha256'][:12]}…)")


@models_app.command("set-default")
def models_set_default(name: str, version: str, url: URL = "http://127.0.0.1:8080",
                       api_key: KEY = None) -> None:
    """Hot-swap NAME's default to VERSION (admin)."""
    _rest(url, api_key, "PUT", f"/v1/models/{name}/default", json={"version": version})
    console.print(f"{name} now serves {version}")


@models_app.command("load")
def models_load(name: str, version: str, url: URL = "http://127.0.0.1:8080",
                api_key: KEY = None) -> None:
    """Load a stored version (admin)."""
    _rest(url, api_key, "POST", f"/v1/models/{name}/versions/{version}/load")
    console.print(f"loaded {name}@{version}")


@models_app.command("unload")
def models_unload(name: str, version: str, url: URL = "http://127.0.0.1:8080",
                  api_key: KEY = None) -> None:
    """Unload a non-default version (admin)."""
    _rest(url, api_key, "POST", f"/v1/models/{name}/versions/{version}/unload")
    console.print(f"unloaded {name}@{version}")


@models_app.command("trust")
def models_trust(
    name: str, version: str,
    store: Annotated[Path | None, typer.Option(
        help="Model store directory (default: the server settings' store).")] = None,
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


keys_app = typer.Typer(help="API keys (run on the server machine; they go to its database).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _key_store(db: str | None, data_dir: Path | None):
    from mlipserve.server.auth import KeyStore
    from mlipserve.server.config import Settings

    settings = Settings(**{k: v for k, v in {"auth_db": db, "data_dir": data_dir}.items() if v})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return KeyStore(settings.key_db_url)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="user (evaluate, read) or admin (also manage).")] = "user",
    tenant: Annotated[str, typer.Option(help="Who the key belongs to (fair-share unit).")] = "default",
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


@keys_app.command("list")
def keys_list(db: Annotated[str | None, typer.Option()] = None,
              data_dir: Annotated[Path | None, typer.Option()] = None) -> None:
    """List keys (ids, roles, tenants; never the keys)."""
    table = Table()
    for col in ("id", "role", "tenant", "revoked"):
        table.add_column(col)
    for row in _key_store(db, data_dir).list():
        table.add_row(row["id"], row["role"], row["tenant"], "yes" if row["revoked"] else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, db: Annotated[str | None, typer.Option()] = None,
                data_dir: Annotated[Path | None, typer.Option()] = None) -> None:
    """Revoke a key by id."""
    if not _key_store(db, data_dir).revoke(key_id):
        console.print(f"[red]no key {key_id}[/red]")
        raise typer.Exit(1)


@app.command("data")
def make_data(
    output: Annotated[Path, typer.Argument(help="extxyz file to write.")],
    seed: Annotated[int, typer.Option(help="Random seed (another seed: an independent set).")] = 0,
    scale: Annotated[int, typer.Option(help="Multiply the set's size.")] = 1,
    ood: Annotated[bool, typer.Option(help="Write the out-of-distribution set instead.")] = False,
) -> None:
    """Generate the EMT-labelled metal/alloy set the default model is trained on."""
    import ase.io
    from mlipserve.server.training.emt_data import generate, out_of_distribution

    frames = out_of_distribution(seed) if ood else generate(seed, scale)
    output.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(output, frames, format="extxyz")
    console.print(f"wrote {len(frames)} structures ({sum(map(len, frames))} atoms) to {output}")


@app.command("train")
def train_model(
    data: Annotated[Path, typer.Argument(help="Labelled structures: extxyz or ase.db.")],
    name: Annotated[str, typer.Option(help="Model name in the store.")] = "default",
    store: Annotated[Path, typer.Option(help="Model store directory.")] = Path("models"),
    report: Annotated[Path, typer.Option(help="Folder for plots and metrics.")] = Path("train-report"),
    epochs: Annotated[int, typer.Option()] = 300,
    members: Annotated[int, typer.Option(help="Ensemble size K.")] = 4,
    features: Annotated[int, typer.Option()] = 32,
    layers: Annotated[int, typer.Option()] = 2,
    cutoff: Annotated[float, typer.Option(help="Å")] = 5.0,
    lr: Annotated[float, typer.Option()] = 3e-3,
    batch_size: Annotated[int, typer.Option()] = 8,
    seed: Annotated[int, typer.Option()] = 0,
    energy_weight: Annotated[float, typer.Option(help="Loss weight on (meV/atom)².")] = 1.0,
    forces_weight: Annotated[float, typer.Option(help="Loss weight on (meV/Å)².")] = 1.0,
    stress_weight: Annotated[float, typer.Option(help="Loss weight on (meV/Å³)².")] = 1.0,
    max_minutes: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
    warm_start: Annotated[str | None, typer.Option(help="Version of NAME to continue from.")] = None,
    test_data: Annotated[Path | None, typer.Option(help="Extra held-out set to report on.")] = None,
    ood_data: Annotated[Path | None, typer.Option(help="Out-of-distribution set.")] = None,
) -> None:
    """Train an ensemble (PaiNN family) and store it as a new version of NAME."""
    from mlipserve.server.store import ModelStore
    from mlipserve.server.training import TrainConfig, load_structures
    from mlipserve.server.training.pipeline import Architecture, train_version

    train_cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                            max_minutes=max_minutes, energy_weight=energy_weight,
                            forces_weight=forces_weight, stress_weight=stress_weight)
    extra = {key: load_structures(path) for key, path in
             (("held_out", test_data), ("out_of_distribution", ood_data)) if path is not None}
    version, metrics = train_version(
        load_structures(data), ModelStore(store), name, train_cfg,
        arch=Architecture(members, features, layers, cutoff), warm_start=warm_start,
        report_dir=report, extra_sets=extra)
    table = Table(title=f"{name}@{version}")
    for col in ("set", "E MAE meV/atom", "F MAE meV/Å", "S MAE meV/Å³", "Spearman"):
        table.add_column(col)
    for key, m in metrics.items():
        table.add_row(key, f"{m.get('energy_mae_mev_per_atom', float('nan')):.2f}",
                      f"{m.get('force_mae_mev_per_A', float('nan')):.1f}",
                      f"{m.get('stress_mae_mev_per_A3', float('nan')):.2f}",
                      f"{m.get('calibration_spearman') or float('nan'):.2f}")
    console.print(table)



@app.command("ipi-driver")
def ipi_driver(
    structure: Annotated[Path, typer.Argument(
        help="The system i-PI runs (e.g. its init.xyz), read by ASE for the elements.")],
    address: Annotated[str, typer.Option(
        help="i-PI's <address>: a host (inet), or with --unix a socket name (/tmp/ipi_NAME) "
             "or path.")] = "localhost",
    port: Annotated[int, typer.Option(help="i-PI's <port> (inet sockets).")] = 31415,
    unix: Annotated[bool, typer.Option("--unix", help="Connect to a unix socket.")] = False,
    server: Annotated[str, typer.Option(help="mlipserve server address.")] = "127.0.0.1:50051",
    model: Annotated[str, typer.Option(help="Model name (empty: server default).")] = "",
    clients: Annotated[int, typer.Option(
        help="Connections to i-PI in this process, so beads are evaluated concurrently.")] = 1,
    api_key: KEY = None,
    stress: Annotated[bool, typer.Option(help="Send the virial (needed for NPT, pressure).")] = True,
    pbc: Annotated[bool, typer.Option(help="Periodic in all three directions.")] = True,
    wait: Annotated[float, typer.Option(help="Seconds to wait for i-PI's socket.")] = 30.0,
    server_wait: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 10.0,
) -> None:
    """Answer i-PI's force requests (i-PI socket protocol) with a served model until EXIT."""
    import ase.io
    from mlipserve.client import MLIPServeError
    from mlipserve.client.ipi_driver import run_ipi_driver

    try:
        template = ase.io.read(structure, index=0)
    except Exception as err:  # noqa: BLE001 - ASE raises many kinds for unreadable files
        console.print(f"[red]cannot read {structure}:[/red] {err}")
        raise typer.Exit(2) from None
    template.pbc = pbc
    try:
        report = run_ipi_driver(template, server, model, address=address, port=port, unix=unix,
                                clients=clients, stress=stress, api_key=api_key,
                                connect_wait_s=wait, server_wait_s=server_wait)
    except MLIPServeError as err:
        console.print(f"[red]mlipserve server {server}:[/red] {err.details}")
        raise typer.Exit(1) from None
    except ValueError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    except ConnectionError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from None
    console.print(f"i-PI finished: {sum(report.structures)} structures evaluated on "
                  f"{report.model} over {clients} connection(s)")
    if not all(report.said_exit):
        console.print("[yellow]i-PI closed the connection without EXIT (did it stop early?)[/yellow]")


_mount_queue_commands()

if __name__ == "__main__":
    app()
