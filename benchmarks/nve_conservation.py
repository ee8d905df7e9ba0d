"""Benchmark: NVE energy conservation of the shipped default model beside EMT, same system.

32 Cu atoms (fcc 2×2×2 conventional, a = 3.61 Å, rattled 0.05 Å, seed 0), velocities
drawn at 300 K (seed 0, zero momentum), velocity Verlet at 2 fs for `--steps` steps, one
in-process `LocalProvider` per model (no transport: this measures the potential, not the
wire). Figures per model, in eV/atom: the fluctuation (std of the conserved energy) and the
drift (slope of a least-squares line, per ps). A smooth potential conserves energy to
O(dt²) fluctuations with no systematic drift; an energy that jumps at the cutoff shows up
as steps in E(t), i.e. a larger fluctuation and drift. Also plotted: E(t) − E(0) per atom.
Run: `.venv/bin/python -m benchmarks.nve_conservation` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse

import numpy as np
from ase import units
from ase.build import bulk

from benchmarks.common import RESULTS, write_result
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import velocity_verlet
from mlipserve.simulation.md.state import MDState

DT_FS = 2.0


def copper() -> object:
    """The test system: 32 rattled Cu atoms in a periodic cell."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=0)
    return atoms


def nve_energies(model: str, steps: int, temperature_K: float = 300.0) -> np.ndarray:
    """Conserved energy per atom (eV) at each step of a velocity-Verlet run on `model`."""
    atoms = copper()
    state = MDState.from_atoms(atoms, temperature_K=temperature_K, seeds=0)
    md = MolecularDynamics(LocalProvider(model), state, velocity_verlet(DT_FS * units.fs))
    energies = [float(md.state.conserved_energy[0])]
    md.attach(lambda: energies.append(float(md.state.conserved_energy[0])), interval=1)
    md.run(steps)
    return np.asarray(energies[1:]) / len(atoms)


def figures(energies: np.ndarray) -> dict[str, float]:
    """Fluctuation (std, eV/atom), drift (eV/atom/ps) and the largest step-to-step change."""
    t_ps = np.arange(len(energies)) * DT_FS / 1000.0
    slope = float(np.polyfit(t_ps, energies, 1)[0])
    return {
        "fluctuation_eV_per_atom": float(np.std(energies)),
        "drift_eV_per_atom_per_ps": slope,
        "max_step_change_eV_per_atom": float(np.abs(np.diff(energies)).max()),
    }


def plot(series: dict[str, np.ndarray], path) -> None:
    """E(t) − E(0) per atom for each model, one axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    for name, energies in series.items():
        t_ps = np.arange(len(energies)) * DT_FS / 1000.0
        ax.plot(t_ps, (energies - energies[0]) * 1000.0, label=name)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("E − E(0) (meV/atom)")
    ax.set_title("NVE, 32 Cu atoms, 300 K, 2 fs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--models", nargs="+", default=["default", "emt"])
    args = parser.parse_args()
    series = {model: nve_energies(model, args.steps) for model in args.models}
    rows = {model: figures(e) for model, e in series.items()}
    for model, row in rows.items():
        print(
            f"{model:8s} fluctuation {row['fluctuation_eV_per_atom']:.2e} eV/atom, drift "
            f"{row['drift_eV_per_atom_per_ps']:+.2e} eV/atom/ps, largest step "
            f"{row['max_step_change_eV_per_atom']:.2e} eV/atom"
        )
    png = RESULTS / "nve_conservation.png"
    plot(series, png)
    path = write_result(
        "nve_conservation",
        {
            "system": "Cu fcc 2x2x2 cubic (32 atoms), a=3.61, rattle 0.05 seed 0, 300 K",
            "integrator": f"velocity Verlet, {DT_FS} fs",
            "steps": args.steps,
            "models": rows,
        },
    )
    print("wrote", path, png)


if __name__ == "__main__":
    main()
