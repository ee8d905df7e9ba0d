"""Constant-potential MD: the electron number follows the electron chemical potential μe.

Each replica carries a `fermi_level` condition; a potential-conditioned model (the
`painn-field` family) returns the grand potential Ω(R, μe) = min_N [E(R, N) − μe N] with the
charges that minimise it, so the electron number relaxes at every step to the value the
potential fixes (adiabatic, like Born–Oppenheimer electrons): no extra charge variable, no
charge thermostat. Forces are −∂Ω/∂R, so `energy + kinetic + thermostat` (with Ω as the
energy) is the conserved quantity, checked like the other integrators'. `ChargeLog` records
each replica's total charge (e) every `interval` steps.

```python
md, log = constant_potential_md(provider, [water], fermi_level=-5.0,
                                integrator=velocity_verlet(0.25 * units.fs))
md.run(1000)
log.arrays()["charge"]  # (T, R)
```
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from mlipserve.simulation.md.driver import MolecularDynamics
from mlipserve.simulation.md.integrators import Integrator
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.provider import ForceProvider


class ChargeLog:
    """Total charge (e), grand potential (eV) and conserved energy of every replica."""

    def __init__(self, md: MolecularDynamics) -> None:
        self.md = md
        self.times: list[float] = []
        self.charge: list[np.ndarray] = []
        self.grand_potential: list[np.ndarray] = []
        self.conserved: list[np.ndarray] = []

    def __call__(self) -> None:
        results = self.md.last_results
        state = self.md.state
        self.times.append(self.md.time)
        self.charge.append(np.array([float(np.sum(r["charges"])) for r in results]))
        self.grand_potential.append(np.asarray(state.energy, dtype=float).copy())
        self.conserved.append(state.energy + state.kinetic_energy + state.thermostat_energy)

    def arrays(self) -> dict[str, np.ndarray]:
        """time (T,) in ASE units; charge, grand_potential, conserved (T, R)."""
        return {
            "time": np.array(self.times),
            "charge": np.array(self.charge),
            "grand_potential": np.array(self.grand_potential),
            "conserved": np.array(self.conserved),
        }


def constant_potential_md(
    provider: ForceProvider,
    images: Sequence[Atoms],
    fermi_level: float | Sequence[float],
    integrator: Integrator,
    temperature_K: float | None = None,
    interval: int = 1,
    seeds: Sequence[int] | None = None,
) -> tuple[MolecularDynamics, ChargeLog]:
    """A batched MD at fixed μe (eV, one per replica or one for all) and its charge log."""
    images = list(images)
    levels = np.broadcast_to(np.asarray(fermi_level, dtype=float), (len(images),))
    frames = []
    for atoms, mu in zip(images, levels):
        atoms = atoms.copy()
        atoms.info.pop("charge", None)  # the potential, not the electron number, is fixed
        atoms.info["fermi_level"] = float(mu)
        frames.append(atoms)
    state = MDState.from_atoms(frames, temperature_K=temperature_K, seeds=seeds)
    md = MolecularDynamics(provider, state, integrator, extra_properties=("charges",))
    log = ChargeLog(md)
    md.attach(log, interval)
    return md, log
