"""What every workflow command shares: a provider, structure files in, JSON / PNG out.

A command reads structures with `read_structures` (one-line error when the file is missing
or unreadable), evaluates through `provider(target, model)` (server errors end the command
with a message), and writes with `write_json` (the provenance record added) and the
drivers' plot functions (title and provenance from `titled`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from mlipserve.cli.options import console, exit_on_errors

Model = Annotated[str, typer.Option(help="Model name (empty: server default).")]
Output = Annotated[
    Path | None,
    typer.Option(
        help="Prefix of the files written: PREFIX.extxyz, .json, .png (default: FILE's stem)."
    ),
]

JsonOutput = Annotated[
    Path | None,
    typer.Option(
        help="Write results as JSON here and the plot as PNG next to it (same name, .png)."
    ),
]


@contextmanager
def provider(target: str, model: str) -> Iterator[Any]:
    """A RemoteProvider; server errors and bad input end the command with a message."""
    from mlipserve.simulation.provider import RemoteProvider

    with exit_on_errors():
        remote = RemoteProvider(target, model)
        try:
            yield remote
        finally:
            remote.close()


def read_structures(file: Path, index: str = ":") -> list[Any]:
    """Frames of an ASE-readable file; typer.BadParameter (exit 2, one line) when it cannot."""
    import ase.io

    if not file.is_file():
        raise typer.BadParameter(f"{file} does not exist or is not a file")
    try:
        frames = ase.io.read(file, index=index)
    except Exception as err:  # noqa: BLE001 - ASE raises many kinds for unreadable files
        raise typer.BadParameter(f"cannot read {file}: {err}") from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise typer.BadParameter(f"{file} holds no structure")
    return frames


def read_one(file: Path, index: int = -1) -> tuple[Any, int, int]:
    """(frame `index` of `file`, its position, how many frames the file holds)."""
    frames = read_structures(file)
    if not -len(frames) <= index < len(frames):
        raise typer.BadParameter(f"{file} has {len(frames)} frames; there is no frame {index}")
    return frames[index], index % len(frames), len(frames)


def prefix(output: Path | None, file: Path, what: str) -> Path:
    """The output prefix: `output`, or FILE's stem with `-what` in the working directory."""
    out = output if output is not None else Path(f"{file.stem}-{what}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def record(provider: Any) -> dict[str, Any]:
    """The provenance record of `provider` (after its first evaluation)."""
    from mlipserve.simulation.provenance import provenance

    return provenance(provider)


def write_json(path: Path, data: dict, provenance: dict) -> Path:
    """`data` with "provenance" as indented JSON; prints where it went."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**data, "provenance": provenance}, indent=2, default=_plain))
    console.print(f"wrote {path}")
    return path


def titled(atoms: Any, provenance: dict, what: str) -> dict[str, Any]:
    """`title=` and `provenance=` keyword arguments for a plot of `atoms` on the model."""
    from mlipserve.simulation.provenance import system_title

    return {"title": system_title(atoms, provenance, what), "provenance": provenance}


def trust(remote: Any, atoms: Any, prov: dict) -> dict[str, Any]:
    """The ensemble's uncertainty on `atoms` and every trust warning, printed and returned."""
    served = [
        e
        for e in remote.client.list_models()
        if e["name"] == prov.get("model") and e["version"] == prov.get("model_version")
    ]
    if not served or not served[0]["ensemble_size"]:
        console.print(f"{prov.get('model')} is not an ensemble: no uncertainty to show")
        return {"ensemble": False}
    (res,) = remote.evaluate([atoms], ("energy", "forces", "uncertainty"))
    out = {
        "ensemble": True,
        "energy_std_eV_per_atom": res["energy_std"] / len(atoms),
        "max_force_std_eV_per_A": res["max_force_std"],
        "warnings": res.get("warnings", []),
    }
    console.print(
        f"ensemble std: energy {out['energy_std_eV_per_atom']:.4f} eV/atom, "
        f"max force {out['max_force_std_eV_per_A']:.4f} eV/Å"
    )
    for warning in out["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    return out


def parse_charges(text: str, option: str = "--charges") -> dict[str, float]:
    """'Na=1,Cl=-1' as {"Na": 1.0, "Cl": -1.0}; typer.BadParameter naming the bad item."""
    from ase.data import atomic_numbers

    table = {}
    for item in text.split(","):
        symbol, _, value = item.partition("=")
        try:
            if symbol.strip() not in atomic_numbers:
                raise ValueError
            table[symbol.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(
                f"{option}: {item!r} is not SYMBOL=CHARGE (e.g. 'Na=1,Cl=-1')"
            ) from None
    return table


def first_replica(arrays: dict[str, Any]) -> dict[str, Any]:
    """A log's (T,) series of replica 0, from its (T, R) and (T,) arrays."""
    return {k: v[:, 0] if v.ndim == 2 else v for k, v in arrays.items()}


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists (for json.dumps)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
