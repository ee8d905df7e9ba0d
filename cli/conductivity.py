"""`mlipserve props conductivity`: ionic conductivity and the Haven ratio from batched MD."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlipserve.cli.options import TARGET, console
from mlipserve.cli.workflow import (
    JsonOutput,
    Model,
    parse_charges,
    provider,
    read_one,
    record,
    titled,
    write_json,
)


def conductivity(
    file: Annotated[Path, typer.Argument(help="A periodic ionic cell ASE can read (last frame).")],
    charges: Annotated[str, typer.Option(help="Formal charges, e.g. 'Na=1,Cl=-1'.")],
    temperature: Annotated[float, typer.Option(help="Temperature (K).")] = 1500.0,
    replicas: Annotated[int, typer.Option(min=1, help="Independent replicas (one call).")] = 8,
    steps: Annotated[int, typer.Option(min=20, help="NVE production steps.")] = 5000,
    equilibration: Annotated[int, typer.Option(min=0, help="Langevin steps first.")] = 1000,
    timestep: Annotated[float, typer.Option(min=0.01, help="Time step (fs).")] = 2.0,
    sample_every: Annotated[int, typer.Option(min=1, help="Steps between samples.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of velocities and noise.")] = 0,
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    output: JsonOutput = None,
) -> None:
    """Tracer and charge diffusion, conductivity (Einstein, Green–Kubo, Nernst–Einstein) and
    the Haven ratio from Langevin-equilibrated, NVE-sampled replicas of FILE."""
    from mlipserve.simulation.properties.conductivity import conductivity_md
    from mlipserve.simulation.properties.transport_plot import plot_transport

    atoms, _, _ = read_one(file)
    table = parse_charges(charges)
    if not atoms.pbc.all() or atoms.cell.rank != 3:
        raise typer.BadParameter(f"{file}: a conductivity needs a cell periodic in 3D")
    missing = sorted(set(atoms.get_chemical_symbols()) - set(table))
    if missing:
        raise typer.BadParameter(f"--charges gives no charge for {', '.join(missing)}")
    with provider(target, model) as remote:
        run = conductivity_md(
            remote, atoms, table, temperature, replicas=replicas, dt_fs=timestep,
            equilibration_steps=equilibration, steps=steps, sample_every=sample_every,
            seed=seed, progress=True,
        )  # fmt: skip
        prov = record(remote)
    res = run.result
    for symbol, d in res.tracer_cm2_s.items():
        console.print(f"D*({symbol}) = {d.value:.3e} ± {d.error:.1e} cm²/s")
    for name, est in (("Einstein", res.einstein_S_m), ("Green–Kubo", res.green_kubo_S_m),
                      ("Nernst–Einstein", res.nernst_einstein_S_m)):  # fmt: skip
        if est is not None:
            console.print(f"σ {name}: {est.value:.1f} ± {est.error:.1f} S/m")
    haven = res.haven
    console.print(f"Haven ratio {haven.value:.2f} ± {haven.error:.2f}; T {run.temperature_K:.0f} K")
    if output is not None:
        summary = {"temperature_K": run.temperature_K, "force_calls": run.calls, **res.to_dict()}
        write_json(output, summary, prov)
        png = plot_transport(res, output.with_suffix(".png"), **titled(atoms, prov, "conductivity"))
        console.print(f"wrote {png}")
