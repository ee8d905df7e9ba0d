"""QM/MLIP blending on a proton transfer: GFN2-xTB (tblite, in this process) as the QM region
inside the served default-molecular, on a water tetramer whose core (donor and acceptor
molecules) holds a proton 45 % of the way from one O to the other.

The other two waters are blended whole by their centroid's distance from the core's; the
script checks F = −∇E of the blended energy by a five-point central difference on the moving
proton and on an atom of a half-blended shell molecule. The served model is float32: its
energy (~550 eV) is resolved to 6e-5 eV, so the difference quotient carries up to ~1e-2 eV/Å
of round-off at h = 0.01 Å (measured: a few 1e-3; with the model in float64 and h = 1e-4 Å
the same check agrees to 1e-6). The pure model's forces show what the xTB core changes. Run:
`python examples/molecular_blending.py --target HOST:PORT --model default-molecular`.
"""

import numpy as np
from _common import options, write_summary
from ase.build import molecule
from tblite.ase import TBLite

from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.blending import BlendedProvider
from mlipserve.simulation.blending.reference import ASECalculatorProvider

args = options(__doc__, "default-molecular")
water = molecule("H2O")
atoms = water.copy()
for k, shift in enumerate([(2.8, 0, 0), (0.3, 3.0, 0.4), (-2.7, -1.2, 0.9)]):
    other = water.copy()
    other.rotate(40 * k + 10, "z")
    other.translate(shift)
    atoms += other
donor, acceptor = atoms.positions[0], atoms.positions[3]
atoms.positions[1] = donor + 0.45 * (acceptor - donor)  # the proton mid-transfer
groups = np.repeat(np.arange(3), [6, 3, 3])  # the core pair is one group
xtb = ASECalculatorProvider(TBLite(method="GFN2-xTB", verbosity=0, accuracy=0.01), "GFN2-xTB")
mlip = RemoteProvider(args.target, args.model)
blend = BlendedProvider(xtb, mlip, list(range(6)), 2.2, 1.6, groups=groups)
weights = blend.weights(atoms)
shell = np.flatnonzero((weights > 0) & (weights < 1))
(res,) = blend.evaluate([atoms])
(alone,) = mlip.evaluate([atoms], ["energy", "forces"])
h = 0.01
steps = [2, 1, -1, -2]
checked = {}
for atom in (1, int(shell[-1])):
    images = []
    for k in range(3):
        for step in steps:
            image = atoms.copy()
            image.positions[atom, k] += step * h
            images.append(image)
    e = np.array([r["energy"] for r in blend.evaluate(images)]).reshape(3, 4)
    numeric = -(-e[:, 0] + 8 * e[:, 1] - 8 * e[:, 2] + e[:, 3]) / (12 * h)
    checked[int(atom)] = (res["forces"][atom], numeric)
errors = {a: float(np.abs(f - n).max()) for a, (f, n) in checked.items()}
summary = {
    "energy_eV": res["energy"],
    "weights": weights.tolist(),
    "shell_atoms": shell.tolist(),
    "checked_atoms": list(checked),
    "forces_eV_per_A": {str(a): f.tolist() for a, (f, _) in checked.items()},
    "fd_forces_eV_per_A": {str(a): n.tolist() for a, (_, n) in checked.items()},
    "model_forces_eV_per_A": {str(a): alone["forces"][a].tolist() for a in checked},
    "max_fd_error_eV_per_A": max(errors.values()),
    "max_qm_effect_eV_per_A": float(
        max(np.abs(f - alone["forces"][a]).max() for a, (f, _) in checked.items())
    ),
    "fd_step_A": h,
}
write_summary(args.output / "molecular_blending.json", summary, blend)
for atom, (f, n) in checked.items():
    print(f"atom {atom}: F {np.round(f, 4)} vs −∇E {np.round(n, 4)} eV/Å")
print(
    f"max |F + ∇E| {summary['max_fd_error_eV_per_A']:.1e} eV/Å; the xTB core changes F by up to "
    f"{summary['max_qm_effect_eV_per_A']:.2f} eV/Å"
)
mlip.close()
