"""Bias potentials on collective variables, added to a provider's energies and forces.

`BiasedProvider` is a ForceProvider: one call of the wrapped provider for every replica
(umbrella windows, metadynamics walkers), then each bias V(s(R)) adds its energy and forces
F = −Σ_d ∂V/∂s_d ∇s_d. System r of a batch is replica r: a bias may differ per replica (one
restraint centre per window). `SamplingMD` is `MolecularDynamics` over such a provider that
also holds fixed atoms (ASE's `FixAtoms`) in place.

```python
restraint = HarmonicRestraint(Position(0, 0), centers=np.linspace(-1.5, 1.5, 13), kappa=1.0)
md = SamplingMD(BiasedProvider(provider, [restraint]), state, langevin_baoab(dt, 300, 0.1))
md.run(1000)
md.provider.values[0]            # s of every window at the last step, (R, 1)
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import Integrator
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.provenance import provenance
from mlipserve.simulation.provider import ForceProvider
from mlipserve.simulation.sampling.cvs import CV


@runtime_checkable
class Bias(Protocol):
    """A potential V(s) on the values of its CVs; may differ per replica."""

    @property
    def cvs(self) -> Sequence[CV]:
        """The CVs whose values (R, d) `energy` takes, in order."""
        ...

    def energy(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V (R,) in eV and ∂V/∂s (R, d) for CV values (R, d) of R replicas."""
        ...


def wrap(delta: np.ndarray, period: float | None) -> np.ndarray:
    """Difference of a CV brought into [−period/2, period/2) (unchanged when not periodic)."""
    if period is None:
        return delta
    return delta - period * np.round(delta / period)


def cv_values(
    cvs: Sequence[CV], positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Values (R, d) and gradients (R, d, n, 3) of d CVs for positions (R, n, 3)."""
    pairs = [cv.evaluate(positions, cell, pbc) for cv in cvs]
    return np.stack([p[0] for p in pairs], 1), np.stack([p[1] for p in pairs], 1)


class HarmonicRestraint:
    """Umbrella restraint V_r(s) = ½ κ_r (s − s0_r)², one centre s0_r per replica (window).

    `kappa` in eV per CV unit² (eV/Å² for distances, eV/rad² for angles), scalar or one per
    window. Differences of periodic CVs take the nearest image.
    """

    def __init__(
        self, cv: CV, centers: Sequence[float] | float, kappa: Sequence[float] | float
    ) -> None:
        self.cvs = [cv]
        self.centers = np.atleast_1d(np.asarray(centers, dtype=float))
        kappas = np.asarray(kappa, dtype=float)
        self.kappa = np.full(len(self.centers), float(kappas)) if kappas.ndim == 0 else kappas
        if self.centers.ndim != 1 or len(self.centers) == 0:
            raise ValueError(f"centers must be a list of window centres, got {centers!r}")
        if self.kappa.shape != self.centers.shape:
            raise ValueError(f"{self.kappa.size} force constants for {len(self.centers)} windows")
        if np.any(self.kappa <= 0) or not np.all(np.isfinite(self.kappa)):
            raise ValueError("force constants kappa must be positive and finite")

    @property
    def n_windows(self) -> int:
        """K, the number of windows (replicas this restraint acts on)."""
        return len(self.centers)

    def energy(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V (R,) and ∂V/∂s (R, 1); replica r feels window r."""
        if len(values) != self.n_windows:
            raise ValueError(
                f"{len(values)} replicas for a restraint with {self.n_windows} windows"
            )
        delta = wrap(values[:, 0] - self.centers, self.cvs[0].period)
        return 0.5 * self.kappa * delta**2, (self.kappa * delta)[:, None]

    def matrix(self, samples: np.ndarray) -> np.ndarray:
        """V_k(s_n) of every window k at every sample s_n: (K, N) in eV (for MBAR/WHAM)."""
        delta = wrap(
            np.asarray(samples, float)[None, :] - self.centers[:, None], self.cvs[0].period
        )
        return 0.5 * self.kappa[:, None] * delta**2


def system_arrays(systems: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (R, n, 3), cells and pbc of systems that all have n atoms."""
    sizes = {len(s.positions) for s in systems}
    if len(sizes) != 1:
        raise ValueError(f"a biased batch needs replicas of equal size, got sizes {sorted(sizes)}")
    positions = np.stack([np.asarray(s.positions, dtype=float) for s in systems])
    cell = np.stack([np.asarray(s.cell, dtype=float) for s in systems])
    pbc = np.stack([np.asarray(s.pbc, dtype=bool) for s in systems])
    return positions, cell, pbc


class BiasedProvider:
    """A ForceProvider adding bias energies and forces to another provider's results.

    One inner `evaluate` per call. Results gain `bias_energy` (eV), `energy` becomes
    E + V_bias and `forces` F − ∇V_bias. After each call `values[b]` holds the CV values
    (R, d) of bias b and `bias_energy` the total bias per replica (R,).
    """

    def __init__(self, provider: ForceProvider, biases: Bias | Sequence[Bias]) -> None:
        self.provider = provider
        self.biases = [biases] if isinstance(biases, Bias) else list(biases)
        if not self.biases:
            raise ValueError("BiasedProvider needs at least one bias")
        self.values: list[np.ndarray] = []
        self.bias_energy = np.zeros(0)
        self.calls = 0

    def provenance(self) -> dict[str, Any]:
        """The inner provider's record (the bias is part of the driver's settings)."""
        return provenance(self.provider)

    def evaluate(
        self, systems: Sequence[Any], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Evaluate every system in one inner call and add the biases."""
        if "stress" in properties:
            raise ValueError("biases do not implement stress: run biased MD at constant volume")
        properties = tuple(dict.fromkeys([*properties, "energy", "forces"]))
        positions, cell, pbc = system_arrays(systems)
        results = self.provider.evaluate(systems, properties)
        self.calls += 1
        total = np.zeros(len(systems))
        forces = np.zeros_like(positions)
        values = []
        for bias in self.biases:
            s, grads = cv_values(bias.cvs, positions, cell, pbc)
            energy, dv = bias.energy(s)
            total += energy
            forces -= np.einsum("rd,rdnk->rnk", dv, grads)
            values.append(s)
        self.values, self.bias_energy = values, total
        out = []
        for r, res in enumerate(results):
            res = dict(res)
            res["energy"] = float(res["energy"]) + total[r]
            res["forces"] = np.asarray(res["forces"], dtype=float) + forces[r]
            res["bias_energy"] = float(total[r])
            out.append(res)
        return out


def fixed_mask(images: Sequence[Atoms]) -> np.ndarray:
    """Per-atom mask (A,) of the atoms FixAtoms holds, over images concatenated as replicas."""
    masks = []
    for atoms in images:
        other = [type(c).__name__ for c in atoms.constraints if not isinstance(c, FixAtoms)]
        if other:
            raise ValueError(f"sampling MD honours only FixAtoms constraints, not {other}")
        mask = np.zeros(len(atoms), bool)
        for constraint in atoms.constraints:
            mask[constraint.index] = True
        masks.append(mask)
    return np.concatenate(masks)


class SamplingMD(MolecularDynamics):
    """`MolecularDynamics` over a `BiasedProvider`, with some atoms held fixed.

    Fixed atoms (`fixed`, a per-atom mask) are put back at their starting positions with
    zero momentum before every force call and feel zero force, so they never move; the
    thermostat's kick to them is dropped (not booked in `thermostat_energy`).
    """

    provider: BiasedProvider

    def __init__(
        self,
        provider: BiasedProvider,
        state: MDState,
        integrator: Integrator,
        fixed: np.ndarray | None = None,
    ) -> None:
        if fixed is not None:
            fixed = np.asarray(fixed, dtype=bool)
            if fixed.shape != (len(state.positions),):
                raise ValueError(
                    f"fixed mask has shape {fixed.shape}, expected ({len(state.positions)},)"
                )
        self.fixed = fixed if fixed is not None and fixed.any() else None
        self.anchor = None if self.fixed is None else state.positions[self.fixed].copy()
        super().__init__(provider, state, integrator)

    def _evaluate(self, state: MDState) -> MDState:
        if self.fixed is not None:
            positions, momenta = state.positions.copy(), state.momenta.copy()
            positions[self.fixed], momenta[self.fixed] = self.anchor, 0.0
            state = state.replace(positions=positions, momenta=momenta)
        state = super()._evaluate(state)
        if self.fixed is not None:
            assert state.forces is not None  # just evaluated
            forces = state.forces.copy()
            forces[self.fixed] = 0.0
            state = state.replace(forces=forces)
        return state

    @property
    def values(self) -> list[np.ndarray]:
        """CV values (R, d) of each bias at the current positions."""
        return self.provider.values
