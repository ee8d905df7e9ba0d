"""Observers for batched MD: the observer registry, per-replica trajectory files, an energy log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from ase.io import Trajectory
from ase.io import write as ase_write
from ase.io.formats import filetype
from mlipserve.simulation.state import MDState


class Observed:
    """Observer registry of a driver: functions called every `interval` steps.

    The driver holds `observers` (a list) and `state.step`, and calls `_call_observers()`
    after step 0 and after every step.
    """

    observers: list[tuple[Callable[..., Any], int, tuple, dict]]

    def attach(
        self, function: Callable[..., Any], interval: int = 1, *args: Any, **kwargs: Any
    ) -> None:
        """Call `function(*args, **kwargs)` at step 0 and every `interval` steps."""
        if interval < 1:
            raise ValueError(f"interval must be at least 1, got {interval}")
        self.observers.append((function, interval, args, kwargs))

    def _call_observers(self) -> None:
        for function, interval, args, kwargs in self.observers:
            if self.state.step % interval == 0:
                function(*args, **kwargs)


class TrajectoryWriter:
    """Appends every replica's current frame to its own file each time it is called.

    `paths` is one pattern with `{replica}` (e.g. "run_{replica}.extxyz") or one path per
    replica. The format follows the suffix through `ase.io` (.extxyz, .xyz, .traj, ...);
    frames carry momenta, energy, forces (and stress), and `info` holds the step and the
    thermostat's exchanged energy.
    """

    def __init__(
        self,
        get_state: Callable[[], MDState],
        paths: str | Path | Sequence[str | Path],
        n_replicas: int,
    ) -> None:
        if isinstance(paths, (str, Path)):
            pattern = str(paths)
            if "{replica}" not in pattern and n_replicas > 1:
                raise ValueError(
                    "with several replicas give a pattern containing '{replica}' "
                    "or one path per replica"
                )
            paths = [pattern.format(replica=r) for r in range(n_replicas)]
        self.paths = [Path(p) for p in paths]
        if len(self.paths) != n_replicas:
            raise ValueError(f"{len(self.paths)} trajectory paths for {n_replicas} replicas")
        self.get_state = get_state
        self.frames = 0
        self._files: list[Any] = []
        self._formats: list[str] = []
        for path in self.paths:
            fmt = "traj" if path.suffix == ".traj" else filetype(path, read=False)
            fmt = "extxyz" if fmt == "xyz" else fmt
            self._formats.append(fmt)
            # files stay open across calls; close() (or the context manager) closes them
            handle = Trajectory(path, "w") if fmt == "traj" else open(path, "w")  # noqa: SIM115
            self._files.append(handle)

    def __call__(self) -> None:
        """Write the current frame of every replica."""
        state = self.get_state()
        for r, (fh, fmt) in enumerate(zip(self._files, self._formats)):
            atoms = state.to_atoms(r)
            if fmt == "traj":
                fh.write(atoms)
            else:
                ase_write(fh, atoms, format=fmt)
                fh.flush()
        self.frames += 1

    def close(self) -> None:
        """Close every file."""
        for fh in self._files:
            fh.close()
        self._files = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EnergyLog:
    """Records step, time and per-replica energies each call; `arrays()` stacks them (T, R).

    Keys: step, time (ASE units), energy (potential, eV), kinetic (eV), temperature (K),
    conserved (E_pot + E_kin + thermostat energy, eV), volume (Å³), and pressure (eV/Å³)
    when the state carries stress.
    """

    def __init__(self, get_state: Callable[[], MDState], get_time: Callable[[], float]) -> None:
        self.get_state = get_state
        self.get_time = get_time
        self.rows: dict[str, list[Any]] = {}

    def __call__(self) -> None:
        """Append the current values."""
        s = self.get_state()
        row: dict[str, Any] = {
            "step": s.step,
            "time": self.get_time(),
            "energy": s.energy,
            "kinetic": s.kinetic_energy,
            "temperature": s.temperature,
            "conserved": s.conserved_energy,
            "volume": s.volume,
        }
        if s.stress is not None:
            row["pressure"] = s.pressure
        for key, value in row.items():
            self.rows.setdefault(key, []).append(np.copy(value))

    def arrays(self) -> dict[str, np.ndarray]:
        """Every recorded quantity as an array, time first."""
        return {key: np.array(values) for key, values in self.rows.items()}
