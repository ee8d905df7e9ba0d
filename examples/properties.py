"""Materials properties of copper on the default model: elastic constants and a vacancy.

The strained cells of the elastic tensor go in batched calls; prints C11, C12, C44 (GPa)
and the relaxed vacancy formation energy (eV).
Run: `python examples/properties.py --target HOST:PORT`.
"""

from _common import options, write_summary
from ase.build import bulk

from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.properties.bulk import relaxed_fcc
from mlipserve.simulation.properties.elastic import elastic_tensor, plot_elastic
from mlipserve.simulation.properties.vacancy import vacancy_formation_energies
from mlipserve.simulation.provenance import provenance, system_title

args = options(__doc__, "default")
provider = RemoteProvider(args.target, args.model)
a = relaxed_fcc(provider, ["Cu"])["Cu"].a
crystal = bulk("Cu", "fcc", a=a, cubic=True)
elastic = elastic_tensor(provider, crystal, [0.005], progress=False)
record = provenance(provider)
plot_elastic(elastic, args.output / "elastic.png", system_title(crystal, record, "C_ij"), record)
cell = crystal * ((2, 2, 2) if args.small else (3, 3, 3))
vacancy = vacancy_formation_energies(provider, cell, [0], fmax=0.05, progress=False)
c = elastic.C
summary = {
    "a_A": a,
    "C11_C12_C44_GPa": [float(c[0, 0]), float(c[0, 1]), float(c[3, 3])],
    "vacancy_eV": vacancy.to_dict(),
}
write_summary(args.output / "properties.json", summary, provider)
print(f"a = {a:.3f} Å; C11 {c[0, 0]:.0f}, C12 {c[0, 1]:.0f}, C44 {c[3, 3]:.0f} GPa")
provider.close()
