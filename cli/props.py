"""`mlipserve props ...`: materials-property workflows on a server's model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mlipserve.cli.options import TARGET, console
from mlipserve.cli.workflow import (
    JsonOutput,
    Model,
    provider,
    read_one,
    record,
    titled,
    trust,
    write_json,
)

app = typer.Typer(
    help="Materials properties computed on a server's model (batched).", no_args_is_help=True
)

Output = JsonOutput


def _write(
    output: Path | None,
    data: dict,
    remote: Any,
    atoms: Any,
    plot: Callable[..., Any] | None = None,
) -> None:
    """JSON (with the ensemble's view of `atoms` and the provenance) and the titled plot."""
    report = trust(remote, atoms, record(remote))
    if output is None:
        return
    prov = record(remote)
    write_json(output, {**data, "trust": report}, prov)
    if plot is not None:
        png = plot(output.with_suffix(".png"), **titled(atoms, prov, "properties"))
        console.print(f"wrote {png}")


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def _unstressed(remote: Any, atoms: Any, limit_gpa: float, relax: bool) -> tuple[Any, dict]:
    """`atoms`, its cell relaxed first when its stress exceeds the limit (or a warning)."""
    import numpy as np
    from ase import units

    from mlipserve.simulation.relax import relax_batch

    (res,) = remote.evaluate([atoms], ("energy", "forces", "stress"))
    largest = float(np.abs(res["stress"]).max()) / units.GPa
    report = {"residual_stress_GPa": largest, "relaxed_first": False}
    if largest <= limit_gpa:
        return atoms, report
    if not relax:
        console.print(
            f"[yellow]warning:[/yellow] the structure is under {largest:.3f} GPa of stress "
            f"(above --residual-stress {limit_gpa:g}): C_ij of a stressed cell is not the "
            "equilibrium tensor; drop --no-relax to relax it first"
        )
        return atoms, report
    console.print(f"stress {largest:.3f} GPa > {limit_gpa:g} GPa: relaxing the cell first")
    (done,) = relax_batch(remote, [atoms], fmax=1e-3, max_steps=2000, relax_cell=True)
    (after,) = remote.evaluate([done.atoms], ("energy", "forces", "stress"))
    report.update(
        relaxed_first=True,
        stress_after_relaxation_GPa=float(np.abs(after["stress"]).max()) / units.GPa,
    )
    console.print(f"after relaxation: {report['stress_after_relaxation_GPa']:.4f} GPa")
    done.atoms.calc = None
    return done.atoms, report


@app.command()
def stress(
    file: Annotated[Path, typer.Argument(help="A periodic structure ASE can read.")],
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    h: Annotated[float, typer.Option(help="Deformation step of the finite differences.")] = 1e-4,
    index: Annotated[int, typer.Option(help="Which frame of FILE (default: the last).")] = -1,
    output: Output = None,
) -> None:
    """Stress as a 3×3 tensor: the model's vs central differences of its energy; asymmetry."""
    from mlipserve.simulation.properties.stress import check_stress

    atoms, position, frames = read_one(file, index)
    console.print(f"{file}: frame {position} of {frames} (0-based; --index picks another)")
    with provider(target, model) as remote:
        res = check_stress(remote, atoms, h=h)
        console.print(
            "model stress (eV/Å³):", res.stress, "finite differences:", res.finite_difference
        )
        console.print(
            f"‖σ−σᵀ‖/‖σ‖ = {res.asymmetry:.2e} (model), {res.fd_asymmetry:.2e} (FD); "
            f"max |model − FD| = {res.max_difference:.2e} eV/Å³"
        )
        frame = {"file": str(file), "frame": position, "frames": frames}
        _write(output, {**res.to_dict(), **frame}, remote, atoms)


@app.command()
def elastic(
    file: Annotated[
        Path | None, typer.Argument(help="Periodic structure (default: fcc --symbol).")
    ] = None,
    symbol: Annotated[
        str, typer.Option(help="fcc element, at the model's lattice constant.")
    ] = "Cu",
    strains: Annotated[
        str, typer.Option(help="Strain magnitudes δ, comma-separated.")
    ] = "0.0025,0.005",
    relax_ions: Annotated[
        bool, typer.Option(help="Relax positions in every strained cell.")
    ] = False,
    relax: Annotated[
        bool,
        typer.Option(
            help="Relax FILE's cell first when its stress exceeds --residual-stress "
            "(--no-relax: warn and go on)."
        ),
    ] = True,
    residual_stress: Annotated[
        float, typer.Option(min=0.0, help="Largest |σ_ij| (GPa) accepted as unstressed.")
    ] = 0.1,
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    output: Output = None,
) -> None:
    """Elastic tensor C_ij (GPa, stress–strain), bulk/shear moduli and Born stability."""
    from ase.build import bulk

    from mlipserve.simulation.properties.bulk import relaxed_fcc
    from mlipserve.simulation.properties.elastic import (
        cubic_born_criteria,
        elastic_tensor,
        plot_elastic,
    )

    with provider(target, model) as remote:
        if file is None:
            a = relaxed_fcc(remote, [symbol])[symbol].a
            atoms = bulk(symbol, "fcc", a=a, cubic=True)
        else:
            atoms, _, _ = read_one(file)
        atoms, residual = _unstressed(remote, atoms, residual_stress, relax)
        res = elastic_tensor(remote, atoms, _floats(strains), relax_ions=relax_ions, progress=True)
        console.print("C (GPa):", res.C.round(2))
        console.print({k: round(v, 2) for k, v in res.moduli.items()})
        console.print(
            f"Born stable (C positive definite): {res.born_stable}; cubic criteria: "
            f"{cubic_born_criteria(res.C)}"
        )
        data = {**res.to_dict(), "cubic_criteria": cubic_born_criteria(res.C), **residual}
        _write(output, data, remote, atoms, lambda p, **kw: plot_elastic(res, p, **kw))


@app.command()
def vacancy(
    file: Annotated[
        Path | None, typer.Argument(help="Periodic alloy cell (default: random fcc).")
    ] = None,
    elements: Annotated[
        str, typer.Option(help="Alloy elements, comma-separated.")
    ] = "Cu,Ni,Pd,Ag,Au,Pt,Al",
    size: Annotated[str, typer.Option(help="Cubic fcc cell repeats, e.g. 3,3,3.")] = "3,3,3",
    seed: Annotated[int, typer.Option(help="Random seed (species and site sample).")] = 0,
    sample: Annotated[int, typer.Option(help="Sites to remove (0: every site).")] = 0,
    fmax: Annotated[float, typer.Option(help="Relaxation threshold (eV/Å).")] = 0.02,
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    output: Output = None,
) -> None:
    """Vacancy formation energies, unrelaxed and relaxed (μ_X: pure fcc X on the model)."""
    import numpy as np

    from mlipserve.simulation.properties.vacancy import (
        plot_vacancy_histogram,
        random_fcc_alloy,
        vacancy_formation_energies,
    )

    with provider(target, model) as remote:
        if file is None:
            dims = _ints(size)
            if len(dims) != 3:
                raise typer.BadParameter("--size needs three integers")
            atoms = random_fcc_alloy(elements.split(","), tuple(dims), seed=seed)  # type: ignore[arg-type]
        else:
            atoms, _, _ = read_one(file)
        sites = None
        if sample:
            rng = np.random.default_rng(seed)
            sites = sorted(rng.choice(len(atoms), size=min(sample, len(atoms)), replace=False))
        res = vacancy_formation_energies(remote, atoms, sites, fmax=fmax, progress=True)
        for name, stats in res.summary().items():
            console.print(f"{name}: mean {stats['mean']:.3f} eV, std {stats['std']:.3f} eV")
        plot = lambda p, **kw: plot_vacancy_histogram(res, p, **kw)  # noqa: E731
        _write(output, res.to_dict(), remote, atoms, plot)


@app.command()
def surface(
    symbol: Annotated[str, typer.Option(help="fcc element.")] = "Cu",
    facets: Annotated[str, typer.Option(help="Facets, comma-separated.")] = "100,110,111",
    relax: Annotated[bool, typer.Option(help="Relax the slabs (positions).")] = True,
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    output: Output = None,
) -> None:
    """Surface energies (J/m², eV/Å²) from slabs of increasing thickness (linear fit)."""

    from mlipserve.simulation.properties.surface import plot_surface_energies, surface_energies

    with provider(target, model) as remote:
        res = surface_energies(remote, symbol, facets.split(","), relax=relax, progress=True)
        for facet, r in res.items():
            console.print(f"({facet}): γ = {r.gamma_j_m2:.4f} J/m² = {r.gamma:.5f} eV/Å²")
        bulk_cell = (
            next(iter(res.values())).bulk if hasattr(next(iter(res.values())), "bulk") else None
        )
        data = {f: r.to_dict() for f, r in res.items()}
        plot = lambda p, **kw: plot_surface_energies(res, p, **kw)  # noqa: E731
        _write(output, data, remote, bulk_cell or symbol, plot)


@app.command()
def gb(
    host: Annotated[str, typer.Option(help="fcc host metal.")] = "Cu",
    solute: Annotated[str, typer.Option(help="Solute element.")] = "Ag",
    plane: Annotated[str, typer.Option(help="Boundary plane h,k,0 of the [001] tilt.")] = "3,1,0",
    periods: Annotated[int, typer.Option(help="Grain thickness in periods along the normal.")] = 3,
    z_repeat: Annotated[int, typer.Option(help="Repeats along the [001] tilt axis.")] = 2,
    fmax: Annotated[float, typer.Option(help="Relaxation threshold (eV/Å).")] = 0.02,
    target: TARGET = "127.0.0.1:50051",
    model: Model = "",
    output: Output = None,
) -> None:
    """Solute segregation energy per site vs distance from a symmetric tilt boundary."""
    from mlipserve.simulation.properties.bulk import relaxed_fcc
    from mlipserve.simulation.properties.grain_boundary import (
        plot_segregation,
        segregation_energies,
        symmetric_tilt_gb,
    )

    hkl = _ints(plane)
    if len(hkl) != 3:
        raise typer.BadParameter("--plane needs three integers")
    with provider(target, model) as remote:
        a = relaxed_fcc(remote, [host])[host].a
        cell = symmetric_tilt_gb(
            host,
            a,
            tuple(hkl),
            periods=periods,  # type: ignore[arg-type]
            z_repeat=z_repeat,
        )
        res = segregation_energies(remote, cell, solute, fmax=fmax, progress=True)
        console.print(f"γ_GB = {res.gb_energy:.3f} J/m²; {len(cell)} atoms")
        for d, e in zip(res.distances, res.energies):
            console.print(f"  {d:6.2f} Å  {e:+.4f} eV")
        _write(output, res.to_dict(), remote, cell, lambda p, **kw: plot_segregation(res, p, **kw))
