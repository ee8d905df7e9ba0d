"""Liquid water at 300 K on default-molecular: Langevin NVT, O–O g(r), molecules intact.

A periodic box of waters at 1 g/cm³ (O on a cubic grid, random orientations), relaxed with
FIRE (H-bonds form: O–O 2.85–2.95 Å), then Langevin NVT (BAOAB, 0.5 fs) over the server,
one call per step. Prints the mean
temperature, the O–O first peak and minimum and whether every H stayed on its O; writes
the trajectory, g(r) as a PNG and a JSON summary. `--small`: 8 waters, 600 steps (0.3 ps);
the full run: 27 waters, 10 ps (benchmarks/water_nvt.py compares g(r) with GFN2-xTB).
Run: `python examples/water_md.py --target HOST:PORT` (a server with default-molecular).
"""

from _common import options, write_summary
from ase import units

from mlipserve.simulation import RemoteProvider, relax_batch
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import langevin_baoab
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.plotting import new_figure, save
from mlipserve.simulation.properties.rdf import first_shell, rdf
from mlipserve.simulation.properties.water import (
    energy_drift,
    temperature_stats,
    water_integrity,
    water_lattice,
)
from mlipserve.simulation.provenance import provenance, system_title

args = options(__doc__, "default-molecular")
# --small: a short run, so a stronger friction (τ = 20 fs) brings T to 300 K within it
n_side, steps, every, gamma = (2, 600, 5, 0.05) if args.small else (3, 20000, 20, 0.01)
temperature, dt = 300.0, 0.5 * units.fs
provider = RemoteProvider(args.target, args.model)
box = relax_batch(provider, [water_lattice(n_side, seed=0)], fmax=0.05, max_steps=500)[0].atoms
# from a minimum, equipartition hands half the kinetic energy to the potential: start at 2 T
state = MDState.from_atoms(box, temperature_K=2 * temperature, seeds=0)
md = MolecularDynamics(provider, state, langevin_baoab(dt, temperature, gamma / units.fs))
log = md.log_energies(every)
frames = []
md.attach(lambda: frames.append(md.state.to_atoms(0)), every)
with md.write_trajectory(args.output / "water.extxyz", every * 10):
    md.run(steps, progress=True)
rows = log.arrays()
equilibrated = len(frames) // 4  # the first quarter is equilibration
r, g = rdf(frames[equilibrated:], 6.0, 60, ("O", "O"))
shell = first_shell(r, g, density=n_side**3 / box.get_volume())
intact = water_integrity(frames)
temps = temperature_stats(rows["temperature"][equilibrated:, 0], temperature)
time_ps = rows["time"] / (1000 * units.fs)
summary = {
    "waters": n_side**3,
    "steps": steps,
    "dt_fs": dt / units.fs,
    "friction_per_fs": gamma,
    "mean_temperature_K": temps["mean_K"],
    "temperature_std_K": temps["std_K"],
    "rdf_first_peak_A": shell["peak_r_A"],
    "rdf_first_peak_g": shell["peak_g"],
    "rdf_first_min_A": shell.get("min_r_A"),
    "coordination": shell.get("coordination"),
    "molecules_intact": intact["molecules_intact"],
    "max_oh_A": intact["max_oh_A"],
    "conserved_drift_meV_per_atom_per_ps": energy_drift(time_ps, rows["conserved"][:, 0], len(box))[
        "drift_meV_per_atom_per_ps"
    ],
}
record = provenance(provider)
fig, ax = new_figure(5, 3.5)
ax.plot(r, g)
ax.axhline(1.0, color="0.7", lw=0.5)
ax.set_xlabel("r (Å)")
ax.set_ylabel("g_OO(r)")
save(fig, args.output / "water_rdf.png", system_title(box, record, "O–O g(r), 300 K"), record)
write_summary(args.output / "water_md.json", summary, provider)
print(
    f"<T> = {temps['mean_K']:.0f} K, O–O peak {shell['peak_r_A']:.2f} Å "
    f"(g = {shell['peak_g']:.2f}), molecules intact: {intact['molecules_intact']}"
)
provider.close()
