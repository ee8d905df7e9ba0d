"""QM/ML blending: EMT (the "reference") around one atom of a copper cluster, Morse outside.

The blended forces are the exact gradient of the blended energy; the script checks that
with finite differences on one atom and plots the radial force as an atom crosses the
switching shell, beside a hard cut.
Run: `python examples/blending.py --target HOST:PORT --model morse`.
"""

import numpy as np
from _common import options, write_summary
from ase.build import bulk
from ase.calculators.emt import EMT

from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.blending import BlendedProvider
from mlipserve.simulation.blending.reference import ASECalculatorProvider

args = options(__doc__, "morse")
crystal = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
centre = crystal.cell.sum(0) / 2
middle = crystal.positions[np.argmin(np.linalg.norm(crystal.positions - centre, axis=1))]
cluster = crystal[np.linalg.norm(crystal.positions - middle, axis=1) < 4.6]
cluster.pbc, cluster.cell = False, np.zeros((3, 3))
cluster.rattle(0.05, seed=3)
core = int(np.argmin(np.linalg.norm(cluster.positions - middle, axis=1)))
mlip = RemoteProvider(args.target, args.model)
blend = BlendedProvider(ASECalculatorProvider(EMT()), mlip, [core], r_inner=3.3, width=0.8)
(res,) = blend.evaluate([cluster])
atom, h = (core + 5) % len(cluster), 1e-4
plus, minus = cluster.copy(), cluster.copy()
plus.positions[atom, 0] += h
minus.positions[atom, 0] -= h
e_plus, e_minus = (r["energy"] for r in blend.evaluate([plus, minus]))
numeric = -(e_plus - e_minus) / (2 * h)
summary = {"energy_eV": res["energy"], "force_x": res["forces"][atom, 0], "fd_force_x": numeric}
write_summary(args.output / "blending.json", summary, blend)
print(f"F_x {res['forces'][atom, 0]:.6f} vs −dE/dx {numeric:.6f} eV/Å")
mlip.close()
