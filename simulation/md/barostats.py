"""Stochastic cell rescaling (Bernetti & Bussi, J. Chem. Phys. 153, 114107 (2020)): NPT.

A first-order barostat with noise, so it samples the isothermal–isobaric ensemble (volume
fluctuations included) where Berendsen coupling only relaxes the density. Once per step,
just before the force call, every replica's log-volume ε = ln V moves by the Itô step

    dε = −(β_T/τ_P) (P₀ − P) dt + √(2 k_B T β_T dt / (V τ_P)) ξ,

P the instantaneous pressure (virial from the last call's stress plus 2 E_kin / 3V). This
is the paper's volume equation dV = −(β_T V/τ_P)(P₀ − P − k_BT/V) dt + √(2 k_BT β_T V/τ_P) dW
rewritten for ε: the k_BT/V drift and Itô's −½(dV/V)² cancel. Positions and the cell are
scaled by λ = e^{dε/3} and momenta by 1/λ. `anisotropic=True` moves the three Cartesian
strains εₐ (a diagonal deformation) each with its own noise and pressure Pₐₐ, at a third of
the isotropic rate each (β_T/(3τ_P)), so the volume relaxes at the same rate.
`anisotropic="full"` also shears the cell: six strains of a triangular cell driven by the
pressure tensor (Del Tatto, Raiteri, Bernetti & Bussi, Appl. Sci. 12, 1139 (2022); the
equations are in `flexible_cell`). It needs cells with rows lower triangular (a along x,
b in the xy plane), as ASE builds them from cell parameters.

The energy the barostat puts in (ΔE_kin of the momentum scaling plus ΔU, by the trapezoid
rule ½ Σₐ (Vσₐₐ before + Vσₐₐ after the force call) dεₐ, all six components of σ for "full":
`scale` books the first half, `settle` the second) is taken out of `thermostat_energy`, so
`conserved_energy` stays constant up to integration error, as with the thermostats. β_T
and τ_P only set how fast the volume relaxes (β_T/τ_P): the sampled distribution does not
depend on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import units

from mlipserve.simulation.md import flexible_cell
from mlipserve.simulation.md.state import MDState, per_replica

MODES: dict[bool | str, str] = {False: "isotropic", True: "diagonal"}
MODES.update({m: m for m in ("isotropic", "diagonal", "full")})


@dataclass(frozen=True)
class StochasticCellRescaling:
    """NPT by stochastic cell rescaling; replicas each with their own cell, pressure and T.

    Args:
        temperature_K: the bath temperature of the noise (the thermostat's), scalar or one
            per replica.
        pressure: target P₀ in eV/Å³ (`1 * ase.units.bar`), scalar or one per replica.
        tau: relaxation time τ_P in ASE time units (`500 * ase.units.fs`).
        compressibility: β_T in Å³/eV (`1 / (100 * ase.units.GPa)`), an estimate.
        anisotropic: False / "isotropic" scales the volume; True / "diagonal" scales x, y
            and z independently (a diagonal strain); "full" also shears a triangular cell.
    """

    temperature_K: float | Sequence[float]
    pressure: float | Sequence[float] = 0.0
    tau: float = 500 * units.fs
    compressibility: float = 1 / (100 * units.GPa)
    anisotropic: bool | str = False

    def __post_init__(self) -> None:
        if not self.tau > 0 or not self.compressibility > 0:
            raise ValueError("tau and compressibility must be positive")
        if np.any(np.asarray(self.temperature_K) <= 0):
            raise ValueError("the barostat's temperature_K must be positive")
        if not isinstance(self.anisotropic, (bool, str)) or self.anisotropic not in MODES:
            raise ValueError(
                f"anisotropic must be False, True, 'isotropic', 'diagonal' or 'full', "
                f"got {self.anisotropic!r}"
            )

    @property
    def mode(self) -> str:
        """'isotropic', 'diagonal' or 'full'."""
        return MODES[self.anisotropic]

    def check(self, state: MDState) -> None:
        """Raise ValueError for non-periodic replicas or mismatched per-replica lists."""
        per_replica(self.pressure, state.n_replicas, "pressure")
        per_replica(self.temperature_K, state.n_replicas, "temperature_K")
        if not state.pbc.all():
            raise ValueError("the barostat needs every replica periodic in all directions")
        if self.mode == "full":
            flexible_cell.check_cells(state.cell)

    def axis_pressure(self, state: MDState) -> np.ndarray:
        """Instantaneous pressure per replica and Cartesian axis (R, 3), eV/Å³."""
        if state.stress is None:
            raise ValueError("the barostat needs the stress; evaluate with 'stress'")
        kinetic = np.stack(
            [state.per_replica_sum(state.momenta[:, a] ** 2 / state.masses) for a in range(3)], 1
        )
        return -state.stress[:, :3] + kinetic / state.volume[:, None]

    def scale(self, state: MDState, dt: float) -> MDState:
        """One barostat move of every replica (needs the state's stress from the last call)."""
        r = state.n_replicas
        target = per_replica(self.pressure, r, "pressure")
        kt = units.kB * per_replica(self.temperature_K, r, "temperature_K")
        volume = state.volume
        rate = self.compressibility / self.tau
        if self.mode == "full":
            return self._scale_full(state, rate * dt, target, kt)
        noise = np.stack([rng.standard_normal(3) for rng in state.rngs])
        if self.mode == "diagonal":
            drift = -(rate / 3) * (target[:, None] - self.axis_pressure(state)) * dt
            strain = drift + np.sqrt(2 * kt * rate * dt / (3 * volume))[:, None] * noise
        else:
            drift = -rate * (target - state.pressure) * dt
            d_eps = drift + np.sqrt(2 * kt * rate * dt / volume) * noise[:, 0]
            strain = np.repeat(d_eps[:, None] / 3, 3, axis=1)
        lam = np.exp(strain)  # (R, 3) per-axis scale factors
        per_atom = lam[state.replica]
        before = state.kinetic_energy
        new = state.replace(
            positions=state.positions * per_atom,
            momenta=state.momenta / per_atom,
            cell=state.cell * lam[:, None, :],
        )
        assert state.stress is not None  # axis_pressure / pressure checked it
        d_potential = 0.5 * volume * np.einsum("ra,ra->r", state.stress[:, :3], strain)
        work = new.kinetic_energy - before + d_potential
        return new.replace(thermostat_energy=state.thermostat_energy - work)

    @staticmethod
    def _scale_full(state: MDState, rate_dt: float, target: np.ndarray, kt: np.ndarray) -> MDState:
        """The fully flexible move: cell, positions by exp(X), momenta by exp(−X)ᵀ."""
        flexible_cell.check_cells(state.cell)
        x = flexible_cell.flexible_strain(state, target, kt, rate_dt)
        new = flexible_cell.deform(state, flexible_cell.expm_upper(x))
        assert state.stress is not None  # pressure_tensor checked it
        d_potential = flexible_cell.strain_work(state.volume, state.stress, x)
        work = new.kinetic_energy - state.kinetic_energy + d_potential
        return new.replace(thermostat_energy=state.thermostat_energy - work)

    def settle(self, before: MDState, after: MDState) -> MDState:
        """Book the second half of ΔU once the force call after `scale` gave the new stress."""
        if after.stress is None:
            raise ValueError("the barostat needs the stress; evaluate with 'stress'")
        if self.mode == "full":
            x = flexible_cell.step_generator(before.cell, after.cell)
            d_potential = flexible_cell.strain_work(after.volume, after.stress, x)
            return after.replace(thermostat_energy=after.thermostat_energy - d_potential)
        strain = np.log(np.linalg.norm(after.cell, axis=1) / np.linalg.norm(before.cell, axis=1))
        d_potential = 0.5 * after.volume * np.einsum("ra,ra->r", after.stress[:, :3], strain)
        return after.replace(thermostat_energy=after.thermostat_energy - d_potential)
