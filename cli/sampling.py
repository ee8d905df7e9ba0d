"""`mlipserve umbrella` and `mlipserve metad`: free energy along an interatomic distance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlipserve.cli.options import TARGET, console
from mlipserve.cli.workflow import (
    Model,
    Output,
    prefix,
    provider,
    read_one,
    record,
    titled,
    write_json,
)

Structure = Annotated[Path, typer.Argument(help="A structure ASE can read (its last frame).")]
Atoms = Annotated[str, typer.Option(help="The distance's two atoms, 'i,j' (0-based).")]
Temperature = Annotated[float, typer.Option(min=1e-3, help="Temperature (K).")]
Timestep = Annotated[float, typer.Option(min=0.01, help="Time step (fs).")]
Friction = Annotated[float, typer.Option(min=0.0, help="Langevin friction (1/ps).")]
Seed = Annotated[int, typer.Option(help="Seed of the noise.")]


def _distance(atoms_option: str, n_atoms: int):
    """The Distance CV named by 'i,j', checked against the structure."""
    from mlipserve.simulation.sampling.cvs import Distance

    try:
        i, j = (int(x) for x in atoms_option.split(","))
        cv = Distance(i, j)
        cv.check(n_atoms)
    except ValueError as err:
        raise typer.BadParameter(f"--atoms {atoms_option!r}: {err}") from None
    return cv


def _windows(text: str) -> list[float]:
    """'start:stop:n' as n evenly spaced centres."""
    import numpy as np

    try:
        start, stop, n = text.split(":")
        centers = np.linspace(float(start), float(stop), int(n))
    except ValueError:
        raise typer.BadParameter(f"expected START:STOP:N, got {text!r}") from None
    if len(centers) < 2:
        raise typer.BadParameter("at least two windows are needed")
    return centers.tolist()


def _profile_json(profile) -> dict:
    """A FreeEnergyProfile's arrays."""
    return {
        "cv": profile.cv_name,
        "centers": profile.centers,
        "free_energy_eV": profile.free_energy,
        "error_eV": profile.error,
        "method": profile.method,
    }


def umbrella(
    file: Structure,
    atoms: Atoms,
    windows: Annotated[str, typer.Option(help="Window centres 'START:STOP:N' (Å).")],
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    kappa: Annotated[float, typer.Option(min=1e-9, help="Spring constant (eV/Å²).")] = 5.0,
    temperature: Temperature = 300.0,
    timestep: Timestep = 1.0,
    friction: Friction = 10.0,
    steps: Annotated[int, typer.Option(min=1, help="Production steps per window.")] = 2000,
    equilibration: Annotated[int, typer.Option(min=0, help="Steps before recording.")] = 200,
    bins: Annotated[int, typer.Option(min=2, help="Histogram bins of the profile.")] = 30,
    seed: Seed = 0,
    output: Output = None,
) -> None:
    """Umbrella sampling of a distance, all windows in one batch; MBAR profile (JSON, PNG)."""
    from ase import units

    from mlipserve.simulation.sampling.umbrella import run_umbrella

    start, _, _ = read_one(file)
    cv = _distance(atoms, len(start))
    centers = _windows(windows)
    out = prefix(output, file, "umbrella")
    with provider(target, model) as remote:
        result = run_umbrella(
            remote,
            start,
            cv,
            centers,
            kappa,
            temperature,
            dt=timestep * units.fs,
            friction=friction / (1000 * units.fs),
            steps=steps,
            equilibration=equilibration,
            seed=seed,
            progress=True,
        )
        prov = record(remote)
    profile = result.profile(bins, method="mbar")
    barrier, error = profile.barrier()
    summary = {
        "structure": str(file),
        "settings": {"centers": centers, "kappa": kappa, "temperature_K": temperature},
        "profile": _profile_json(profile),
        "highest_free_energy_eV": barrier,
        "highest_free_energy_error_eV": error,
    }
    write_json(out.with_suffix(".json"), summary, prov)
    png = profile.plot(out.with_suffix(".png"), **titled(start, prov, f"umbrella {cv.name}"))
    console.print(f"wrote {png}")
    console.print(f"highest F along {cv.name}: {barrier:.4f} ± {error:.4f} eV (MBAR)")


def metad(
    file: Structure,
    atoms: Atoms,
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    height: Annotated[float, typer.Option(min=1e-9, help="Initial hill height (eV).")] = 0.01,
    width: Annotated[float, typer.Option(min=1e-9, help="Hill width σ (Å).")] = 0.1,
    bias_factor: Annotated[float, typer.Option(min=1.0, help="Well-tempered γ.")] = 10.0,
    pace: Annotated[int, typer.Option(min=1, help="Steps between hills.")] = 50,
    walkers: Annotated[int, typer.Option(min=1, help="Walkers sharing the bias.")] = 4,
    temperature: Temperature = 300.0,
    timestep: Timestep = 1.0,
    friction: Friction = 10.0,
    steps: Annotated[int, typer.Option(min=1, help="MD steps of every walker.")] = 5000,
    grid: Annotated[str, typer.Option(help="Profile grid 'START:STOP:N' (Å).")] = "",
    seed: Seed = 0,
    output: Output = None,
) -> None:
    """Well-tempered metadynamics of a distance (batched walkers): F(s) (JSON, PNG)."""
    import numpy as np
    from ase import units

    from mlipserve.simulation.sampling.metadynamics import run_metadynamics

    start, _, _ = read_one(file)
    cv = _distance(atoms, len(start))
    out = prefix(output, file, "metad")
    with provider(target, model) as remote:
        result = run_metadynamics(
            remote,
            start,
            [cv],
            width,
            height,
            bias_factor,
            temperature,
            dt=timestep * units.fs,
            friction=friction / (1000 * units.fs),
            steps=steps,
            pace=pace,
            walkers=walkers,
            seed=seed,
            progress=True,
        )
        prov = record(remote)
    visited = result.values[..., 0]
    points = _windows(grid) if grid else np.linspace(visited.min(), visited.max(), 60).tolist()
    profile = result.profile(np.asarray(points))
    summary = {
        "structure": str(file),
        "settings": {
            "height_eV": height,
            "width_A": width,
            "bias_factor": bias_factor,
            "pace": pace,
            "walkers": walkers,
            "temperature_K": temperature,
            "steps": steps,
        },
        "visited_range_A": [float(visited.min()), float(visited.max())],
        "profile": _profile_json(profile),
    }
    write_json(out.with_suffix(".json"), summary, prov)
    png = profile.plot(out.with_suffix(".png"), **titled(start, prov, f"metaD {cv.name}"))
    console.print(f"wrote {png}")
    console.print(
        f"{cv.name} visited {visited.min():.3f}–{visited.max():.3f} Å; "
        f"F spans {np.nanmax(profile.free_energy):.4f} eV on the grid"
    )
