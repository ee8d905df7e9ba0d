"""Ring-polymer state of R replicas × P beads × N atoms, and the kick / free-drift steps.

Scopes (torch-sim habit): per bead-atom (R, P, N, 3): `positions` Å, `momenta` amu·Å/t,
`forces` eV/Å (last force call); per bead (R, P): `energies` eV; per atom (N,): `masses` amu,
`numbers` (every replica holds the same atoms); per replica (R, ...): `cell`, `pbc`,
`thermostat_energy` eV (i-PI's `ethermo`) and `rngs`; global: `temperature_K` (the physical
T; the ring polymer is sampled at T_P = P T) and `step`. Bead positions are never wrapped
into the cell, so bead–centroid distances need no minimum image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from mlipserve.simulation.pimd.normal_modes import NormalModes
from mlipserve.wire import SystemArrays


@dataclass
class RingPolymerState:
    """Bead positions and momenta of R ring-polymer replicas; see the module docstring."""

    positions: np.ndarray
    momenta: np.ndarray
    masses: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    temperature_K: float
    rngs: list[np.random.Generator]
    thermostat_energy: np.ndarray
    forces: np.ndarray | None = None
    energies: np.ndarray | None = None
    step: int = 0

    def __post_init__(self) -> None:
        if np.ndim(self.positions) != 4 or np.shape(self.positions)[-1] != 3:
            raise ValueError(f"positions must be (R, P, N, 3), got {np.shape(self.positions)}")
        r, p, n, _ = self.positions.shape
        for name, shape in (
            ("momenta", (r, p, n, 3)),
            ("masses", (n,)),
            ("numbers", (n,)),
            ("cell", (r, 3, 3)),
            ("pbc", (r, 3)),
            ("thermostat_energy", (r,)),
        ):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(
                    f"{name} has shape {np.shape(getattr(self, name))}, expected {shape} "
                    f"(R = {r} replicas, P = {p} beads, N = {n} atoms)"
                )
        if r == 0 or p == 0 or n == 0:
            raise ValueError("a ring-polymer state needs at least one replica, bead and atom")
        if len(self.rngs) != r:
            raise ValueError(f"{len(self.rngs)} random generators for {r} replicas")
        if np.any(self.masses <= 0):
            raise ValueError("masses must be positive")
        if not self.temperature_K > 0:
            raise ValueError(f"temperature_K must be positive, got {self.temperature_K}")

    @classmethod
    def from_atoms(
        cls,
        images: Atoms | Sequence[Atoms],
        n_beads: int,
        temperature_K: float,
        seeds: int | Sequence[int] | None = None,
        thermal_momenta: bool = True,
    ) -> RingPolymerState:
        """P bead copies of each replica's atoms (all beads start at the atoms' positions).

        Replica r gets `np.random.default_rng(seeds[r])` (one seed s means s, s+1, ..., s+R−1;
        the default 0..R−1), so replicas never share a noise stream. Momenta are drawn
        per bead from Maxwell–Boltzmann at T_P = P T when `thermal_momenta`, else every bead
        takes the atoms' own momenta. Every replica must hold the same atoms (numbers, masses).
        """
        images = [images] if isinstance(images, Atoms) else list(images)
        if not images:
            raise ValueError("give at least one ase.Atoms")
        if n_beads < 1:
            raise ValueError(f"n_beads must be at least 1, got {n_beads}")
        if not temperature_K > 0:
            raise ValueError(f"temperature_K must be positive, got {temperature_K}")
        r = len(images)
        first = images[0]
        for i, atoms in enumerate(images):
            if len(atoms) != len(first) or np.any(atoms.numbers != first.numbers):
                raise ValueError(f"replica {i} holds other atoms than replica 0")
            if not np.allclose(atoms.get_masses(), first.get_masses()):
                raise ValueError(f"replica {i} has other masses than replica 0")
        if seeds is None or np.ndim(seeds) == 0:
            first_seed = 0 if seeds is None else int(np.asarray(seeds))
            seed_list = [first_seed + i for i in range(r)]
        else:
            seed_list = list(np.asarray(seeds))
        if len(seed_list) != r:
            raise ValueError(f"{len(seed_list)} seeds for {r} replicas")
        rngs = [np.random.default_rng(int(s)) for s in seed_list]
        masses = first.get_masses().astype(float)
        beads = [[atoms.copy() for _ in range(n_beads)] for atoms in images]
        positions = np.array([[b.positions for b in row] for row in beads], dtype=float)
        if thermal_momenta:
            sd = np.sqrt(masses * units.kB * temperature_K * n_beads)[:, None]
            momenta = np.stack([rng.standard_normal(positions.shape[1:]) * sd for rng in rngs])
        else:
            momenta = np.array([[b.get_momenta() for b in row] for row in beads], dtype=float)
        return cls(
            positions=positions,
            momenta=momenta,
            masses=masses,
            numbers=first.numbers.copy(),
            cell=np.stack([a.cell.array for a in images]).astype(float),
            pbc=np.stack([a.pbc for a in images]).astype(bool),
            temperature_K=float(temperature_K),
            rngs=rngs,
            thermostat_energy=np.zeros(r),
        )

    @property
    def n_replicas(self) -> int:
        """R."""
        return self.positions.shape[0]

    @property
    def n_beads(self) -> int:
        """P."""
        return self.positions.shape[1]

    @property
    def n_atoms(self) -> int:
        """N, atoms per bead."""
        return self.positions.shape[2]

    def replace(self, **changes: Any) -> RingPolymerState:
        """A new state with some fields replaced (arrays shared, not copied; not re-validated)."""
        unknown = set(changes) - _FIELDS
        if unknown:
            raise ValueError(f"RingPolymerState has no fields {sorted(unknown)}")
        new = object.__new__(RingPolymerState)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    @property
    def centroid(self) -> np.ndarray:
        """Centroid positions q̄ = (1/P) Σ_j q_j, (R, N, 3)."""
        return self.positions.mean(axis=1)

    @property
    def kinetic_energy(self) -> np.ndarray:
        """Ring-polymer kinetic energy Σ_j Σ_i |p_ij|²/2m_i per replica (R,), eV."""
        return 0.5 * np.einsum("rpnd,rpnd->rn", self.momenta, self.momenta) @ (1 / self.masses)

    def systems(self) -> list[SystemArrays]:
        """Every bead of every replica (R·P systems, replica-major) for one provider call."""
        return [
            SystemArrays(
                positions=self.positions[r, j],
                numbers=self.numbers,
                cell=self.cell[r],
                pbc=self.pbc[r],
            )
            for r in range(self.n_replicas)
            for j in range(self.n_beads)
        ]

    def with_results(self, results: Sequence[dict[str, Any]]) -> RingPolymerState:
        """Attach one result dict per bead (replica-major) as forces and bead energies."""
        r, p, n, _ = self.positions.shape
        if len(results) != r * p:
            raise ValueError(f"{len(results)} results for {r} replicas × {p} beads")
        forces = np.array([res["forces"] for res in results], dtype=float)
        if forces.shape != (r * p, n, 3):
            raise ValueError(f"forces of shape {forces.shape}, expected ({r * p}, {n}, 3)")
        energies = np.array([float(res["energy"]) for res in results]).reshape(r, p)
        return self.replace(forces=forces.reshape(r, p, n, 3), energies=energies)

    def to_atoms(self, r: int, bead: int | None = None) -> Atoms:
        """Replica r's centroid (bead None) or one bead as ase.Atoms (with its results)."""
        q = self.centroid[r] if bead is None else self.positions[r, bead]
        atoms = Atoms(
            numbers=self.numbers,
            positions=q,
            cell=self.cell[r],
            pbc=self.pbc[r],
            masses=self.masses,
        )
        if bead is not None and self.forces is not None and self.energies is not None:
            atoms.calc = SinglePointCalculator(
                atoms, energy=float(self.energies[r, bead]), forces=self.forces[r, bead].copy()
            )
        atoms.info["step"] = self.step
        return atoms


_FIELDS = {f.name for f in dataclasses.fields(RingPolymerState)}


def kick(state: RingPolymerState, dt: float) -> RingPolymerState:
    """B: p_j ← p_j + dt·F_j for every bead (forces from the last force call)."""
    if state.forces is None:
        raise ValueError("kick needs forces: evaluate the state first")
    return state.replace(momenta=state.momenta + dt * state.forces)


def free_drift(state: RingPolymerState, modes: NormalModes, dt: float) -> RingPolymerState:
    """A: exact free ring-polymer evolution for dt (springs in, physical forces out)."""
    q, p = modes.free_step(state.positions, state.momenta, state.masses, dt)
    return state.replace(positions=q, momenta=p)
