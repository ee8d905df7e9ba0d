"""Path-integral MD of copper at 100 K: nuclear quantum effects on the kinetic energy.

The quantum (centroid-virial) kinetic energy of Cu at 100 K sits above the classical
3/2 kT because of zero-point motion; 8 beads of 2 replicas go in one call per step.
Run: `python examples/pimd.py --target HOST:PORT`.
"""

from _common import options, write_summary
from ase import units
from ase.build import bulk

from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.pimd.driver import PathIntegralMD, PIMDIntegrator
from mlipserve.simulation.pimd.ring_polymer import RingPolymerState

args = options(__doc__, "default")
beads, steps = (4, 30) if args.small else (8, 2000)
temperature = 100.0
crystal = bulk("Cu", "fcc", a=3.61, cubic=True)
provider = RemoteProvider(args.target, args.model)
state = RingPolymerState.from_atoms([crystal, crystal], beads, temperature, seeds=0)
pimd = PathIntegralMD(provider, state, PIMDIntegrator(1.0 * units.fs))
log = pimd.log(5)
pimd.write_centroids(str(args.output / "centroid_{replica}.extxyz"), 10)
pimd.run(steps, progress=True)
kinetic = log.arrays()["kinetic_cv"][len(log.rows["step"]) // 4 :] / len(crystal)
classical = 1.5 * units.kB * temperature
summary = {"kinetic_eV_per_atom": float(kinetic.mean()), "classical_eV_per_atom": classical}
write_summary(args.output / "pimd.json", summary, provider)
print(f"quantum kinetic {kinetic.mean() * 1000:.2f} meV/atom vs classical {classical * 1000:.2f}")
provider.close()
