"""Ionic conductivity from batched MD: R replicas thermalised by Langevin dynamics, then run
in NVE (the dynamics Green–Kubo needs) with every replica in one force call per step;
positions and velocities sampled into a `transport.Trajectory` and analysed by `transport`.

```python
from ase.build import bulk
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.properties.conductivity import conductivity_md

melt = bulk("NaCl", "rocksalt", a=6.1, cubic=True) * (2, 2, 2)
run = conductivity_md(RemoteProvider(address, "nacl-rigid-ion"), melt, {"Na": 1, "Cl": -1},
                      temperature_K=1500, replicas=8, steps=5000)
print(run.result.einstein_S_m, run.result.green_kubo_S_m, run.result.haven)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units

from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import langevin_baoab, velocity_verlet
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.properties.transport import Trajectory, TransportResult, transport
from mlipserve.simulation.provider import ForceProvider


@dataclass
class ConductivityRun:
    """The sampled trajectory, its transport analysis, the force calls and the mean NVE T."""

    trajectory: Trajectory
    result: TransportResult
    calls: int
    temperature_K: float


def _sampler(md: MolecularDynamics, n: int, frames: list, velocities: list):
    """An observer that stores positions (R, N, 3) and velocities (Å/fs)."""

    def sample() -> None:
        state = md.state
        frames.append(state.positions.reshape(-1, n, 3).copy())
        v = state.momenta / state.masses[:, None] * units.fs
        velocities.append(v.reshape(-1, n, 3))

    return sample


def conductivity_md(
    provider: ForceProvider,
    atoms: Atoms,
    charges: Mapping[str, float],
    temperature_K: float,
    replicas: int = 8,
    dt_fs: float = 2.0,
    equilibration_steps: int = 500,
    steps: int = 2000,
    sample_every: int = 5,
    friction_per_ps: float = 5.0,
    seed: int = 0,
    progress: bool = False,
    **analysis,
) -> ConductivityRun:
    """Langevin equilibration, then NVE production of `replicas` copies of `atoms` (a fixed
    cell); `analysis` goes to `transport` (fit_range, gk_window, ...)."""
    if not atoms.pbc.all() or atoms.cell.rank != 3:
        raise ValueError("a conductivity needs a cell periodic along all three axes")
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(charges))
    if unknown:
        raise ValueError(f"no charge given for species {unknown}")
    if replicas < 1 or steps < 4 * sample_every or sample_every < 1:
        raise ValueError("need replicas ≥ 1, sample_every ≥ 1 and steps ≥ 4 × sample_every")
    dt = dt_fs * units.fs
    state = MDState.from_atoms(
        [atoms] * replicas, temperature_K=temperature_K, seeds=range(seed, seed + replicas)
    )
    bath = langevin_baoab(
        dt, temperature_K=temperature_K, friction=friction_per_ps / (1000 * units.fs)
    )
    md = MolecularDynamics(provider, state, bath)
    if equilibration_steps:
        md.run(equilibration_steps, progress=progress)
    calls = md.calls
    n = len(atoms)
    start = md.state
    momenta = start.momenta.reshape(replicas, n, 3)
    masses = start.masses.reshape(replicas, n)
    drift = momenta.sum(1, keepdims=True) / masses.sum(1)[:, None, None]
    start.momenta = (momenta - masses[..., None] * drift).reshape(-1, 3)  # no centre-of-mass drift
    nve = MolecularDynamics(provider, start, velocity_verlet(dt))
    frames: list[np.ndarray] = []
    velocities: list[np.ndarray] = []
    nve.attach(_sampler(nve, n, frames, velocities), sample_every)
    temps: list[float] = []
    nve.attach(lambda: temps.append(float(nve.state.temperature.mean())), sample_every)
    nve.run(steps, progress=progress)
    mean_t = float(np.mean(temps))
    trajectory = Trajectory(
        positions=np.stack(frames, axis=1),
        velocities=np.stack(velocities, axis=1),
        symbols=atoms.get_chemical_symbols(),
        charges=np.array([charges[s] for s in atoms.get_chemical_symbols()], dtype=float),
        volume=float(atoms.get_volume()),
        temperature=mean_t,
        dt_fs=dt_fs * sample_every,
    )
    return ConductivityRun(trajectory, transport(trajectory, **analysis), calls + nve.calls, mean_t)
