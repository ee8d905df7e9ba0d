"""`mlipserve labellers ...`: the operator's list of labellers queue jobs may use.

Run on the server machine: it writes ``STORE/_labellers.json`` in the model store that the
servers and workers share (like `mlipserve models trust`); no REST call can change it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlipserve.cli.options import console

app = typer.Typer(
    help="Labellers queue jobs may use, and their settings (operator, on the server machine).",
    no_args_is_help=True,
)
STORE = Annotated[
    Path | None,
    typer.Option("--store", help="Model store directory (default: the server settings' store)."),
]


def _store(store: Path | None) -> Path:
    from mlipserve.server.config import Settings

    return store or Settings().model_store_dir


def _load(store: Path):
    from mlipserve.server.labellers.policy import PolicyError, load_policy

    try:
        return load_policy(store)
    except PolicyError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None


def _json(text: str | None, what: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
    except (OSError, ValueError) as err:
        console.print(f"[red]error:[/red] {what} is not JSON: {err}")
        raise typer.Exit(2) from None
    if not isinstance(value, dict):
        console.print(f"[red]error:[/red] {what} must be a JSON object")
        raise typer.Exit(2)
    return value


def _check_importable(name: str) -> None:
    """Refuse an `ase:` path that does not import as an ASE calculator class."""
    import importlib

    from ase.calculators.calculator import BaseCalculator

    module_name, _, class_name = name[len("ase:") :].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name, None)
        reason = "not an ASE calculator class"
    except ImportError as err:
        cls, reason = None, str(err)
    if not (isinstance(cls, type) and issubclass(cls, BaseCalculator)):
        console.print(f"[red]error:[/red] {name}: {reason}")
        raise typer.Exit(2)


@app.command("list")
def labellers_list(store: STORE = None) -> None:
    """The enabled labellers, their fixed settings and what jobs may set."""
    policy = _load(_store(store))
    table = Table(title=f"labellers (at most {policy.max_structures} structures per job)")
    for col in ("labeller", "max atoms", "fixed", "jobs may set"):
        table.add_column(col)
    for name, entry in sorted(policy.labellers.items()):
        user = ", ".join(
            f"{k}: {r.type}"
            + (
                f" {r.choices}"
                if r.choices
                else f" [{r.min:g}, {r.max:g}]"
                if r.min is not None
                else ""
            )
            for k, r in entry.user.items()
        )
        table.add_row(name, str(entry.max_atoms), json.dumps(entry.fixed), user or "-")
    console.print(table)


@app.command("enable")
def labellers_enable(
    name: Annotated[str, typer.Argument(help="emt, xtb, pyscf or ase:package.module.Class")],
    fixed: Annotated[
        str | None,
        typer.Option(
            help="JSON object of settings the operator fixes (commands, directories, "
            "pseudopotentials ...), or @file.json."
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            help='JSON object of settings jobs may set, e.g. \'{"encut": {"type": "float", '
            '"min": 200, "max": 800}}\' (types int, float, bool, vector3, str with "choices"; '
            "default for built-ins: their bounded settings)."
        ),
    ] = None,
    max_atoms: Annotated[int | None, typer.Option(help="Atoms per structure at most.")] = None,
    slurm: Annotated[
        str | None,
        typer.Option(
            help="Run this labeller's calculations as Slurm jobs: a JSON object (or @file.json) "
            'of SlurmSettings, e.g. \'{"partition": "cpu", "time_min": 30, "mem_gb": 4, '
            '"structures_per_job": 8}\' (folder, partition, time_min, mem_gb, cpus_per_task, '
            "structures_per_job, setup, additional, python, poll_s); {} for the defaults."
        ),
    ] = None,
    store: STORE = None,
) -> None:
    """Enable (or redefine) a labeller for queue jobs."""
    from pydantic import ValidationError

    from mlipserve.server.labellers.policy import (
        ASE_NAME,
        BUILTIN,
        LabellerEntry,
        builtin_entries,
        save_policy,
    )

    root = _store(store)
    policy = _load(root)
    if name not in BUILTIN and not ASE_NAME.match(name):
        console.print(
            f"[red]error:[/red] {name!r} is neither one of {BUILTIN} nor 'ase:package.module.Class'"
        )
        raise typer.Exit(2)
    if name.startswith("ase:"):
        _check_importable(name)
    base = builtin_entries().get(name, LabellerEntry()) if name in BUILTIN else LabellerEntry()
    fixed_settings = _json(fixed, "--fixed")
    rules = (
        _json(user, "--user")
        if user is not None
        else {
            k: v.model_dump(exclude_none=True)
            for k, v in base.user.items()
            if k not in fixed_settings
        }
    )
    try:
        entry = LabellerEntry(
            fixed=fixed_settings,
            user=rules,
            max_atoms=max_atoms or base.max_atoms,
            slurm=_json(slurm, "--slurm") if slurm is not None else None,
        )
        policy.labellers[name] = entry
        policy = type(policy).model_validate(policy.model_dump())
    except ValidationError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    path = save_policy(root, policy)
    console.print(f"{name} enabled in {path}")


@app.command("disable")
def labellers_disable(name: str, store: STORE = None) -> None:
    """Disable a labeller: queued jobs that name it fail in the worker."""
    from mlipserve.server.labellers.policy import save_policy

    root = _store(store)
    policy = _load(root)
    if policy.labellers.pop(name, None) is None:
        console.print(f"[red]{name} is not enabled[/red]")
        raise typer.Exit(1)
    console.print(f"{name} disabled in {save_policy(root, policy)}")


@app.command("limits")
def labellers_limits(
    max_structures: Annotated[int, typer.Option(help="Structures per label job at most.")],
    store: STORE = None,
) -> None:
    """Set the size of a label job."""
    from mlipserve.server.labellers.policy import save_policy

    root = _store(store)
    policy = _load(root)
    if max_structures < 1:
        console.print("[red]error:[/red] --max-structures must be at least 1")
        raise typer.Exit(2)
    policy.max_structures = max_structures
    console.print(f"at most {max_structures} structures per job ({save_policy(root, policy)})")
