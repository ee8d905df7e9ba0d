"""MD state of R replicas: per-atom arrays concatenated over replicas, per-replica fields.

In the torch-sim habit every field has a scope: per atom (A = total atoms over replicas),
per replica (R) or global. Units are ASE's throughout: Å, amu, eV, and momenta in
amu·Å/(ASE time unit), so that `positions += dt * momenta / masses` with `dt` in ASE time
(`2 * ase.units.fs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from mlipserve.wire import SystemArrays, conditions_from_info, info_from_conditions


@dataclass
class MDState:
    """Positions, momenta and thermostat state of R independent replicas.

    Per atom (A,...): `positions` Å, `momenta` amu·Å/t, `masses` amu, `numbers`, `replica`
    (which replica each atom belongs to, non-decreasing), `forces` eV/Å (last force call).
    Per replica (R,...): `cell` Å, `pbc`, `energy` eV and `stress` eV/Å³ (Voigt, last force
    call; stress only when it was asked for), `thermostat_energy` eV (energy the thermostat
    and barostat took out of the system, i-PI's `ethermo`: `energy + kinetic_energy +
    thermostat_energy` is conserved up to integration error) and `rngs` (one generator per
    replica, so a replica's noise does not depend on what it is batched with).
    Global: `step`, the number of completed steps.
    """

    positions: np.ndarray
    momenta: np.ndarray
    masses: np.ndarray
    numbers: np.ndarray
    replica: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    rngs: list[np.random.Generator]
    thermostat_energy: np.ndarray
    forces: np.ndarray | None = None
    energy: np.ndarray | None = None
    stress: np.ndarray | None = None
    step: int = 0
    # per replica: the conditions its systems carry (charge, external_field, fermi_level, ...)
    conditions: list[dict[str, np.ndarray]] | None = None
    offsets: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError when the arrays disagree in shape or content."""
        a = len(self.positions)
        shape: tuple[int, ...]
        for name, shape in (
            ("positions", (a, 3)),
            ("momenta", (a, 3)),
            ("masses", (a,)),
            ("numbers", (a,)),
            ("replica", (a,)),
        ):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(
                    f"{name} has shape {np.shape(getattr(self, name))}, "
                    f"expected {shape} (A = {a} atoms)"
                )
        r = len(self.cell)
        for name, shape in (("cell", (r, 3, 3)), ("pbc", (r, 3)), ("thermostat_energy", (r,))):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(
                    f"{name} has shape {np.shape(getattr(self, name))}, "
                    f"expected {shape} (R = {r} replicas)"
                )
        if len(self.rngs) != r:
            raise ValueError(f"{len(self.rngs)} random generators for {r} replicas")
        if r == 0 or a == 0:
            raise ValueError("an MD state needs at least one replica with atoms")
        counts = np.bincount(self.replica, minlength=r) if self.replica.min() >= 0 else None
        if (
            counts is None
            or len(counts) != r
            or np.any(np.diff(self.replica) < 0)
            or np.any(counts == 0)
        ):
            raise ValueError("replica must be non-decreasing indices 0..R-1, each with atoms")
        if np.any(self.masses <= 0):
            raise ValueError("masses must be positive")
        self.offsets = np.concatenate([[0], np.cumsum(counts)])

    @classmethod
    def from_atoms(
        cls,
        images: Atoms | Sequence[Atoms],
        temperature_K: float | Sequence[float] | None = None,
        seeds: int | Sequence[int] | None = None,
        stationary: bool = True,
    ) -> MDState:
        """Build a state from ASE Atoms; momenta from the atoms or Maxwell–Boltzmann at T.

        Replica r gets `np.random.default_rng(seeds[r])` (seeds default to 0..R-1). With a
        temperature the momenta are drawn from that generator (centre of mass at rest when
        `stationary`); without one the atoms' own momenta are kept.
        """
        images = [images] if isinstance(images, Atoms) else list(images)
        r = len(images)
        seed_values: Sequence[int] | np.ndarray = (
            list(range(r)) if seeds is None else per_replica(seeds, r, "seeds", int)
        )
        rngs = [np.random.default_rng(s) for s in seed_values]
        momenta = []
        temps = None if temperature_K is None else per_replica(temperature_K, r, "temperature_K")
        for i, atoms in enumerate(images):
            m = atoms.get_masses()
            if temps is None:
                momenta.append(atoms.get_momenta())
                continue
            p = rngs[i].normal(size=(len(atoms), 3)) * np.sqrt(m * units.kB * temps[i])[:, None]
            if stationary and len(atoms) > 1:
                p -= m[:, None] * p.sum(0) / m.sum()
            momenta.append(p)
        return cls(
            positions=np.concatenate([a.positions for a in images]).astype(float),
            momenta=np.concatenate(momenta).astype(float),
            masses=np.concatenate([a.get_masses() for a in images]).astype(float),
            numbers=np.concatenate([a.numbers for a in images]),
            replica=np.repeat(np.arange(r), [len(a) for a in images]),
            cell=np.stack([a.cell.array for a in images]).astype(float),
            pbc=np.stack([a.pbc for a in images]).astype(bool),
            rngs=rngs,
            thermostat_energy=np.zeros(r),
            conditions=[conditions_from_info(a.info) for a in images],
        )

    @property
    def n_replicas(self) -> int:
        """R, the number of replicas."""
        return len(self.cell)

    def replace(self, **changes: Any) -> MDState:
        """A new state with some fields replaced (arrays are shared, not copied)."""
        return dataclasses.replace(self, **changes)

    def per_replica_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum a per-atom quantity over each replica: (A,) -> (R,)."""
        return np.bincount(self.replica, weights=values, minlength=self.n_replicas)

    @property
    def kinetic_energy(self) -> np.ndarray:
        """Kinetic energy per replica (R,), eV: Σ p²/2m."""
        return self.per_replica_sum(
            0.5 * np.einsum("ij,ij->i", self.momenta, self.momenta) / self.masses
        )

    @property
    def temperature(self) -> np.ndarray:
        """Kinetic temperature per replica (R,), K: 2 E_kin / (3 N k_B)."""
        return 2 * self.kinetic_energy / (3 * np.diff(self.offsets) * units.kB)

    @property
    def volume(self) -> np.ndarray:
        """Cell volume per replica (R,), Å³."""
        return np.abs(np.linalg.det(self.cell))

    @property
    def pressure(self) -> np.ndarray:
        """Instantaneous pressure per replica (R,), eV/Å³: −tr(σ)/3 + 2 E_kin / (3 V)."""
        if self.stress is None:
            raise ValueError("pressure needs the stress; evaluate with 'stress' (NPT does)")
        return -self.stress[:, :3].mean(1) + 2 * self.kinetic_energy / (3 * self.volume)

    @property
    def total_energy(self) -> np.ndarray:
        """Potential plus kinetic energy per replica (R,), eV."""
        if self.energy is None:
            raise ValueError("no energy yet: the state has not been through a force call")
        return self.energy + self.kinetic_energy

    @property
    def conserved_energy(self) -> np.ndarray:
        """Total energy plus the thermostat's exchanged energy (R,), eV; constant in exact MD."""
        return self.total_energy + self.thermostat_energy

    def replica_slice(self, r: int) -> slice:
        """The atoms of replica r in the per-atom arrays."""
        return slice(int(self.offsets[r]), int(self.offsets[r + 1]))

    def systems(self) -> list[SystemArrays]:
        """One SystemArrays per replica, the form a ForceProvider takes."""
        return [
            SystemArrays(
                positions=self.positions[self.replica_slice(r)],
                numbers=self.numbers[self.replica_slice(r)],
                cell=self.cell[r],
                pbc=self.pbc[r],
                conditions=dict(self.conditions[r]) if self.conditions else {},
            )
            for r in range(self.n_replicas)
        ]

    def with_results(self, results: Sequence[dict[str, Any]]) -> MDState:
        """Attach a provider's results (one dict per replica) as forces, energy and stress."""
        if len(results) != self.n_replicas:
            raise ValueError(f"{len(results)} results for {self.n_replicas} replicas")
        forces = np.concatenate([np.asarray(res["forces"], dtype=float) for res in results])
        if forces.shape != self.positions.shape:
            raise ValueError(f"forces of shape {forces.shape} for positions {self.positions.shape}")
        stress = None
        if all("stress" in res for res in results):
            stress = np.stack([np.asarray(res["stress"], dtype=float) for res in results])
        energy = np.array([float(res["energy"]) for res in results])
        return self.replace(forces=forces, energy=energy, stress=stress)

    def to_atoms(self, r: int) -> Atoms:
        """Replica r as ase.Atoms with momenta and a calculator holding the last results."""
        sl = self.replica_slice(r)
        atoms = Atoms(
            numbers=self.numbers[sl],
            positions=self.positions[sl],
            cell=self.cell[r],
            pbc=self.pbc[r],
            masses=self.masses[sl],
            momenta=self.momenta[sl],
        )
        results: dict[str, Any] = {}
        if self.energy is not None:
            results["energy"] = float(self.energy[r])
        if self.forces is not None:
            results["forces"] = self.forces[sl].copy()
        if self.stress is not None:
            results["stress"] = self.stress[r].copy()
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info["step"] = self.step
        atoms.info["thermostat_energy"] = float(self.thermostat_energy[r])
        if self.conditions and self.conditions[r]:
            atoms.info.update(info_from_conditions(self.conditions[r]))
        return atoms


def per_replica(value: Any, r: int, name: str, dtype: type = float) -> np.ndarray:
    """Broadcast a scalar or check a sequence to one value per replica."""
    arr: np.ndarray = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        return np.full(r, arr, dtype=dtype)
    if arr.shape != (r,):
        raise ValueError(f"{name} has {arr.size} values for {r} replicas")
    return arr
