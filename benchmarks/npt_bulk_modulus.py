"""Benchmark: does the NPT driver sample NPT? Bulk modulus from volume fluctuations vs the EOS.

For each model, in process (`LocalProvider`: this checks the physics, not the wire):
E(V) of the crystal over ±2 % strain → ASE's Birch–Murnaghan fit → B(V) = V E''(V) at the
mean volume of the run; R independent replicas of Langevin MD (BAOAB, γ = 0.02/fs) at
P₀ = 0 with each barostat → B = k_B T ⟨V⟩/⟨δV²⟩ (error: standard error over replicas), the
mean pressure with its error, and ⟨V⟩ against the relaxed V₀. Stochastic cell rescaling
(isotropic and anisotropic) should give the EOS's B; Berendsen suppresses the fluctuations
(B far too large). Systems: 32 Ar atoms on `lj` at 10 K, 4 Cu atoms on `emt` at 100 K.
Run: `.venv/bin/python -m benchmarks.npt_bulk_modulus` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse

import numpy as np
from ase import units
from ase.build import bulk

from benchmarks.common import RESULTS, write_result
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.barostats import StochasticCellRescaling
from mlipserve.simulation.md.integrators import BerendsenBarostat, langevin_baoab
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.plotting import new_figure, save
from mlipserve.simulation.properties.fluctuations import (
    energy_volume_scan,
    eos_bulk_modulus,
    fluctuation_bulk_modulus,
)

SYSTEMS = {
    "lj": (lambda: bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 2), 10.0, 5.0, 3.0),
    "emt": (lambda: bulk("Cu", "fcc", a=3.61, cubic=True), 100.0, 2.0, 140.0),
}  # model: (crystal, T in K, dt in fs, B guess in GPa for β_T)


def barostats(t: float, b_guess: float) -> dict:
    """The barostats compared, each at τ_P = 100 fs and β_T = 1/B_guess."""
    common = {"tau": 100 * units.fs, "compressibility": 1 / (b_guess * units.GPa)}
    return {
        "scr-isotropic": StochasticCellRescaling(t, 0.0, **common),
        "scr-anisotropic": StochasticCellRescaling(t, 0.0, anisotropic=True, **common),
        "berendsen": BerendsenBarostat(0.0, **common),
    }


def run(model: str, replicas: int, steps: int, skip: int) -> dict:
    """Every barostat's figures on one model's crystal."""
    make, t, dt_fs, b_guess = SYSTEMS[model]
    provider = LocalProvider(model)
    atoms = make()
    vols, energies = energy_volume_scan(provider, atoms)
    b0, v0 = eos_bulk_modulus(vols, energies)
    atoms.set_cell(atoms.cell * (v0 / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
    out: dict = {"atoms": len(atoms), "T_K": t, "V0": v0, "B_eos_at_V0_GPa": b0 / units.GPa}
    for name, barostat in barostats(t, b_guess).items():
        state = MDState.from_atoms([atoms.copy() for _ in range(replicas)], t, range(replicas))
        integrator = langevin_baoab(dt_fs * units.fs, t, 0.02 / units.fs)
        md = MolecularDynamics(provider, state, integrator, barostat)
        rows: list = []
        md.attach(lambda md=md, rows=rows: rows.append((md.state.volume, md.state.pressure)))
        md.run(steps, progress=True)
        volumes, pressures = (np.array(x)[skip:] for x in zip(*rows))
        b, err = fluctuation_bulk_modulus(volumes, t)
        b_eos, _ = eos_bulk_modulus(vols, energies, at_volume=volumes.mean())
        p_err = pressures.mean(0).std(ddof=1) / np.sqrt(replicas)
        out[name] = {
            "B_fluctuation_GPa": b / units.GPa,
            "B_error_GPa": err / units.GPa,
            "B_eos_at_mean_V_GPa": b_eos / units.GPa,
            "mean_P_GPa": float(pressures.mean()) / units.GPa,
            "P_error_GPa": float(p_err) / units.GPa,
            "mean_V_over_V0": float(volumes.mean() / v0),
        }
        print(model, name, {k: round(v, 4) for k, v in out[name].items()})
    return out


def plot(results: dict, path) -> None:
    """B from fluctuations (± error) per barostat, relative to the EOS's B at ⟨V⟩."""
    fig, ax = new_figure(6, 3.5)
    for i, (model, res) in enumerate(results.items()):
        names = [k for k in res if isinstance(res[k], dict)]
        x = np.arange(len(names)) + 0.3 * i
        ratio = [res[n]["B_fluctuation_GPa"] / res[n]["B_eos_at_mean_V_GPa"] for n in names]
        err = [res[n]["B_error_GPa"] / res[n]["B_eos_at_mean_V_GPa"] for n in names]
        ax.errorbar(x, ratio, yerr=err, fmt="o", label=model)
        ax.set_xticks(np.arange(len(names)) + 0.15, names)
    ax.axhline(1.0, color="0.5", lw=1)
    ax.set_yscale("log")
    ax.set_ylabel("B (fluctuations) / B (EOS at ⟨V⟩)")
    ax.legend()
    save(fig, path, "NPT: bulk modulus from volume fluctuations")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--models", nargs="+", default=list(SYSTEMS))
    args = parser.parse_args()
    results = {m: run(m, args.replicas, args.steps, skip=300) for m in args.models}
    png = RESULTS / "npt_bulk_modulus.png"
    plot(results, png)
    path = write_result(
        "npt_bulk_modulus",
        {"replicas": args.replicas, "steps": args.steps, "tau_fs": 100, "models": results},
    )
    print("wrote", path, png)


if __name__ == "__main__":
    main()
