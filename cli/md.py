"""`mlipserve md` and `mlipserve pimd`: (path-integral) molecular dynamics from a structure file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlipserve.cli.options import TARGET, console
from mlipserve.cli.workflow import (
    Model,
    Output,
    first_replica,
    prefix,
    provider,
    read_one,
    record,
    write_json,
)

Structure = Annotated[Path, typer.Argument(help="A structure ASE can read (its last frame).")]
Temperature = Annotated[float, typer.Option(help="Temperature (K): start and bath.")]
Steps = Annotated[int, typer.Option(min=1, help="MD steps.")]
Interval = Annotated[int, typer.Option(min=1, help="Steps between trajectory frames.")]
Seed = Annotated[int, typer.Option(help="Seed of the velocities and the noise.")]
Friction = Annotated[float, typer.Option(min=0.0, help="Langevin friction (1/ps).")]


def md(
    file: Structure,
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    temperature: Temperature = 300.0,
    timestep: Annotated[float, typer.Option(min=0.01, help="Time step (fs).")] = 2.0,
    steps: Steps = 1000,
    thermostat: Annotated[
        str, typer.Option(help="'langevin' (BAOAB, NVT) or 'nve' (velocity Verlet).")
    ] = "langevin",
    friction: Friction = 10.0,
    pressure: Annotated[
        float | None,
        typer.Option(help="NPT at this pressure (GPa) by stochastic cell rescaling."),
    ] = None,
    interval: Interval = 10,
    seed: Seed = 0,
    output: Output = None,
) -> None:
    """MD from FILE at a temperature: trajectory, energies (JSON) and a plot (PNG)."""
    from ase import units

    from mlipserve.simulation.md import MolecularDynamics
    from mlipserve.simulation.md.barostats import StochasticCellRescaling
    from mlipserve.simulation.md.integrators import langevin_baoab, velocity_verlet
    from mlipserve.simulation.md.state import MDState

    if thermostat not in ("langevin", "nve"):
        raise typer.BadParameter(f"thermostat must be 'langevin' or 'nve', not {thermostat!r}")
    if pressure is not None and thermostat == "nve":
        raise typer.BadParameter("--pressure needs --thermostat langevin (NPT at a temperature)")
    atoms, _, _ = read_one(file)
    out = prefix(output, file, "md")
    dt = timestep * units.fs
    integrator = (
        langevin_baoab(dt, temperature, friction / (1000 * units.fs))
        if thermostat == "langevin"
        else velocity_verlet(dt)
    )
    barostat = None
    if pressure is not None:
        barostat = StochasticCellRescaling(temperature, pressure * units.GPa)
    with provider(target, model) as remote:
        state = MDState.from_atoms(atoms, temperature_K=temperature, seeds=seed)
        driver = MolecularDynamics(remote, state, integrator, barostat)
        log = driver.log_energies(interval)
        with driver.write_trajectory(out.with_suffix(".extxyz"), interval):
            driver.run(steps, progress=True)
        prov = record(remote)
    rows = first_replica(log.arrays())
    n = len(atoms)
    drift = float(rows["conserved"][-1] - rows["conserved"][0]) / n
    summary = {
        "structure": str(file),
        "settings": {
            "temperature_K": temperature,
            "timestep_fs": timestep,
            "steps": steps,
            "thermostat": thermostat,
            "friction_per_ps": friction,
            "pressure_GPa": pressure,
            "seed": seed,
        },
        "mean_temperature_K": float(rows["temperature"][1:].mean()),
        "mean_energy_eV_per_atom": float(rows["energy"].mean()) / n,
        "conserved_change_eV_per_atom": drift,
        "log": rows,
    }
    write_json(out.with_suffix(".json"), summary, prov)
    console.print(f"wrote {out.with_suffix('.extxyz')}")
    _plot_md(rows, out.with_suffix(".png"), atoms, prov)
    console.print(
        f"⟨T⟩ {summary['mean_temperature_K']:.1f} K; conserved energy changed by "
        f"{drift:+.2e} eV/atom over {steps} steps"
    )


def _plot_md(rows: dict, path: Path, atoms, prov: dict) -> None:
    """Energies and temperature against time."""
    from ase import units

    from mlipserve.cli.workflow import titled
    from mlipserve.simulation.plotting import new_panels, save

    fig, (ax_e, ax_t) = new_panels(2, 9, 3.5)
    t_ps = rows["time"] / (1000 * units.fs)
    n = len(atoms)
    ax_e.plot(t_ps, rows["energy"] / n, label="potential")
    ax_e.plot(t_ps, rows["conserved"] / n, label="conserved")
    ax_e.set_xlabel("time (ps)")
    ax_e.set_ylabel("energy (eV/atom)")
    ax_e.legend()
    ax_t.plot(t_ps, rows["temperature"])
    ax_t.set_xlabel("time (ps)")
    ax_t.set_ylabel("temperature (K)")
    save(fig, path, **titled(atoms, prov, "MD"))
    console.print(f"wrote {path}")


def pimd(
    file: Structure,
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    temperature: Temperature = 300.0,
    beads: Annotated[int, typer.Option(min=1, help="Beads per ring polymer.")] = 8,
    timestep: Annotated[float, typer.Option(min=0.01, help="Time step (fs).")] = 0.5,
    steps: Steps = 1000,
    interval: Interval = 10,
    seed: Seed = 0,
    output: Output = None,
) -> None:
    """Path-integral MD (PILE-L) from FILE: centroid trajectory, kinetic energy, plot."""
    import numpy as np
    from ase import units

    from mlipserve.simulation.pimd.driver import PathIntegralMD, PIMDIntegrator
    from mlipserve.simulation.pimd.ring_polymer import RingPolymerState

    atoms, _, _ = read_one(file)
    out = prefix(output, file, "pimd")
    with provider(target, model) as remote:
        state = RingPolymerState.from_atoms(atoms, beads, temperature, seeds=seed)
        driver = PathIntegralMD(remote, state, PIMDIntegrator(timestep * units.fs))
        log = driver.log(interval)
        driver.write_centroids(str(out.with_suffix(".extxyz")), interval)
        driver.run(steps, progress=True)
        prov = record(remote)
    rows = first_replica(log.arrays())
    n = len(atoms)
    classical = 1.5 * units.kB * temperature
    kinetic = rows["kinetic_cv"][len(rows["kinetic_cv"]) // 5 :] / n  # first fifth: warm-up
    summary = {
        "structure": str(file),
        "settings": {"temperature_K": temperature, "beads": beads, "timestep_fs": timestep},
        "steps": steps,
        "kinetic_energy_eV_per_atom": float(kinetic.mean()),
        "kinetic_energy_error": float(kinetic.std(ddof=1) / np.sqrt(len(kinetic)))
        if len(kinetic) > 1
        else None,
        "classical_kinetic_eV_per_atom": classical,
        "log": rows,
    }
    write_json(out.with_suffix(".json"), summary, prov)
    console.print(f"wrote {out.with_suffix('.extxyz')}")
    _plot_pimd(rows, classical * n, out.with_suffix(".png"), atoms, prov)
    console.print(
        f"quantum kinetic energy {kinetic.mean():.4f} eV/atom "
        f"(classical 3/2 kT = {classical:.4f}) with {beads} beads"
    )


def _plot_pimd(rows: dict, classical: float, path: Path, atoms, prov: dict) -> None:
    """Centroid-virial kinetic energy against steps, beside the classical 3/2 N kT."""
    from mlipserve.cli.workflow import titled
    from mlipserve.simulation.plotting import new_figure, save

    fig, ax = new_figure(6, 3.5)
    ax.plot(rows["step"], rows["kinetic_cv"], label="centroid-virial kinetic energy")
    ax.axhline(classical, color="0.5", ls="--", label="classical 3/2 N kT")
    ax.set_xlabel("step")
    ax.set_ylabel("energy (eV)")
    ax.legend()
    save(fig, path, **titled(atoms, prov, "PIMD"))
    console.print(f"wrote {path}")
