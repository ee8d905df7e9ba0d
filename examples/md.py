"""MD of copper at 600 K on the default model: Langevin NVT, then NPT at 1 bar.

Starts from Maxwell–Boltzmann velocities (not a 0 K lattice), 4 replicas in one call per
step, writes each replica's trajectory and prints the mean temperature and volume per atom.
Run: `python examples/md.py --target HOST:PORT` (a server with `default` loaded).
"""

from _common import options, write_summary
from ase import units
from ase.build import bulk

from mlipserve.simulation import RemoteProvider, StochasticCellRescaling
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import langevin_baoab
from mlipserve.simulation.md.state import MDState

args = options(__doc__, "default")
steps = 40 if args.small else 2000
crystal = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
provider = RemoteProvider(args.target, args.model)
state = MDState.from_atoms([crystal] * 4, temperature_K=600, seeds=range(4))
md = MolecularDynamics(
    provider,
    state,
    langevin_baoab(2 * units.fs, 600, 0.01 / units.fs),
    barostat=StochasticCellRescaling(600, 1 * units.bar, tau=200 * units.fs),
)
log = md.log_energies(10)
with md.write_trajectory(args.output / "md_{replica}.extxyz", 10):
    md.run(steps, progress=True)
rows = log.arrays()
half = len(rows["temperature"]) // 2
summary = {
    "mean_temperature_K": float(rows["temperature"][half:].mean()),
    "volume_per_atom_A3": float(rows["volume"][half:].mean() / len(crystal)),
    "steps": steps,
}
write_summary(args.output / "md.json", summary, provider)
print(
    f"<T> = {summary['mean_temperature_K']:.0f} K, V/atom = {summary['volume_per_atom_A3']:.3f} Å³"
)
provider.close()
