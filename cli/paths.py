"""`mlipserve relax` and `mlipserve neb`: minima and minimum-energy paths from structure files."""

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
    read_structures,
    record,
    titled,
    write_json,
)

Fmax = Annotated[float, typer.Option(min=1e-6, help="Converged when max |F| < FMAX (eV/Å).")]
MaxSteps = Annotated[int, typer.Option(min=1, help="FIRE iterations at most.")]


def relax(
    file: Annotated[Path, typer.Argument(help="Structures ASE can read (every frame).")],
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    fmax: Fmax = 0.05,
    steps: MaxSteps = 500,
    cell: Annotated[bool, typer.Option(help="Relax the cell too (needs stress).")] = False,
    output: Output = None,
) -> None:
    """Relax every frame of FILE (batched FIRE): relaxed frames, energies (JSON), plot."""
    from ase.io import write

    from mlipserve.simulation.provenance import stamp
    from mlipserve.simulation.relax import relax_batch

    frames = read_structures(file)
    out = prefix(output, file, "relaxed")
    with provider(target, model) as remote:
        starts = [r["energy"] for r in remote.evaluate(frames, ("energy",))]
        results = relax_batch(remote, frames, fmax=fmax, max_steps=steps, relax_cell=cell)
        prov = record(remote)
    write(out.with_suffix(".extxyz"), [stamp(r.atoms, prov) for r in results], format="extxyz")
    console.print(f"wrote {out.with_suffix('.extxyz')}")
    rows = [
        {
            "frame": i,
            "energy_eV": r.energy,
            "energy_change_eV": r.energy - e0,
            "fmax_eV_per_A": r.fmax,
            "steps": r.steps,
            "converged": r.converged,
        }
        for i, (r, e0) in enumerate(zip(results, starts))
    ]
    settings = {"fmax": fmax, "max_steps": steps, "relax_cell": cell}
    write_json(
        out.with_suffix(".json"),
        {"structure": str(file), "settings": settings, "frames": rows},
        prov,
    )
    _plot_relax(rows, out.with_suffix(".png"), frames[0], prov)
    for row in rows:
        state = "converged" if row["converged"] else "[yellow]not converged[/yellow]"
        console.print(
            f"frame {row['frame']}: {row['energy_eV']:.6f} eV ({row['energy_change_eV']:+.4f}), "
            f"max |F| {row['fmax_eV_per_A']:.4f} eV/Å after {row['steps']} steps, {state}"
        )


def _plot_relax(rows: list[dict], path: Path, atoms, prov: dict) -> None:
    """Energy change and final max force per frame."""
    from mlipserve.simulation.plotting import new_panels, save

    fig, (ax_e, ax_f) = new_panels(2, 8, 3.2)
    frames = [r["frame"] for r in rows]
    ax_e.bar(frames, [r["energy_change_eV"] for r in rows])
    ax_e.set_xlabel("frame")
    ax_e.set_ylabel("relaxation energy (eV)")
    ax_f.bar(frames, [r["fmax_eV_per_A"] for r in rows])
    ax_f.set_xlabel("frame")
    ax_f.set_ylabel("final max |F| (eV/Å)")
    save(fig, path, **titled(atoms, prov, "relaxation"))
    console.print(f"wrote {path}")


def neb(
    initial: Annotated[Path, typer.Argument(help="Initial state (last frame).")],
    final: Annotated[Path, typer.Argument(help="Final state (last frame), same atoms.")],
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    images: Annotated[int, typer.Option(min=1, help="Intermediate images.")] = 5,
    climb: Annotated[bool, typer.Option(help="Climbing image.")] = True,
    interpolation: Annotated[str, typer.Option(help="'linear' or 'idpp'.")] = "idpp",
    fmax: Fmax = 0.05,
    steps: MaxSteps = 500,
    output: Output = None,
) -> None:
    """CI-NEB between INITIAL and FINAL (one call per iteration): band, barrier, profile."""
    from ase.io import write

    from mlipserve.simulation.neb import make_band, run_neb
    from mlipserve.simulation.provenance import stamp

    start, _, _ = read_one(initial)
    end, _, _ = read_one(final)
    out = prefix(output, initial, "neb")
    try:
        band = make_band(start, end, images, method=interpolation)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    with provider(target, model) as remote:
        result = run_neb(remote, band, fmax=fmax, max_steps=steps, climb=climb)
        prov = record(remote)
    write(out.with_suffix(".extxyz"), [stamp(a, prov) for a in result.images], format="extxyz")
    console.print(f"wrote {out.with_suffix('.extxyz')}")
    summary = {
        "initial": str(initial),
        "final": str(final),
        "settings": {"images": images, "climb": climb, "interpolation": interpolation},
        "barrier_eV": result.barrier,
        "reverse_barrier_eV": result.barrier - result.reaction_energy,
        "reaction_energy_eV": result.reaction_energy,
        "energies_eV": result.energies,
        "climbing_index": result.climbing_index,
        "converged": result.converged,
        "steps": result.steps,
        "fmax": result.fmax,
    }
    write_json(out.with_suffix(".json"), summary, prov)
    png = result.plot(out.with_suffix(".png"), **titled(start, prov, "NEB"))
    console.print(f"wrote {png}")
    state = "converged" if result.converged else "[yellow]not converged[/yellow]"
    console.print(
        f"barrier {result.barrier:.4f} eV (reverse {summary['reverse_barrier_eV']:.4f}), "
        f"reaction energy {result.reaction_energy:+.4f} eV; {state} after {result.steps} steps"
    )
