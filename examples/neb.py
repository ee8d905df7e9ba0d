"""A gold adatom hopping on Al(100) (ASE's NEB tutorial) by batched CI-NEB.

All images in one call per iteration; prints the barrier and writes the profile plot.
Run: `python examples/neb.py --target HOST:PORT --model emt`.
"""

from _common import options, write_summary
from ase.build import add_adsorbate, fcc100
from ase.constraints import FixAtoms

from mlipserve.simulation import RemoteProvider, make_band, relax_batch, run_neb
from mlipserve.simulation.provenance import provenance, system_title

args = options(__doc__, "emt")
slab = fcc100("Al", size=(2, 2, 3))
add_adsorbate(slab, "Au", 1.7, "hollow")
slab.center(axis=2, vacuum=4.0)
slab.set_constraint(FixAtoms(mask=[tag > 1 for tag in slab.get_tags()]))
final = slab.copy()
final[-1].x += slab.cell[0, 0] / 2
provider = RemoteProvider(args.target, args.model)
ends = [r.atoms for r in relax_batch(provider, [slab, final], fmax=0.05, progress=False)]
for atoms in ends:
    atoms.calc = None
band = make_band(*ends, 3 if args.small else 5)
result = run_neb(provider, band, fmax=0.05)
record = provenance(provider)
result.plot(args.output / "neb.png", system_title(slab, record, "NEB"), record)
summary = {"barrier_eV": result.barrier, "converged": result.converged, "steps": result.steps}
write_summary(args.output / "neb.json", summary, provider)
print(f"barrier {result.barrier:.3f} eV (ASE's tutorial with EMT: 0.37 eV)")
provider.close()
