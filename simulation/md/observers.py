"""Observers for batched MD: per-replica trajectory files and an energy log (see `loop`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np
from ase import Atoms
from ase.io import Trajectory
from ase.io import write as ase_write
from ase.io.formats import filetype

from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.provenance import stamp


class Frames(Protocol):
    """A state that gives each replica's current frame as ase.Atoms (MD, ring polymers)."""

    def to_atoms(self, r: int) -> Atoms:
        """Replica r's frame."""
        ...


class TrajectoryWriter:
    """Appends every replica's current frame to its own file each time it is called.

    `paths` is one pattern with `{replica}` (e.g. "run_{replica}.extxyz") or one path per
    replica. The format follows the suffix through `ase.io` (.extxyz, .xyz, .traj, ...);
    frames are the state's `to_atoms(r)` (MD: momenta, energy, forces (and stress), and
    `info` holding the step and the thermostat's exchanged energy). `info(state)` may add
    per-replica values (name → (R,) array) to each frame's `info`. Files stay open between
    calls (`close()` or the context manager closes them) unless `keep_open=False`, which
    reopens each file to append every frame. `record()` gives the provenance record
    (`mlipserve.simulation.provenance`) stamped into every frame's `info`; it is asked once,
    at the first frame, when the first results have named the model that served them.
    """

    def __init__(
        self,
        get_state: Callable[[], Frames],
        paths: str | Path | Sequence[str | Path],
        n_replicas: int,
        *,
        info: Callable[[Any], Mapping[str, np.ndarray]] | None = None,
        keep_open: bool = True,
        record: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self._record_source = record
        self.record: Mapping[str, Any] | None = None
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
        self.get_state, self.info, self.keep_open = get_state, info, keep_open
        self.frames = 0
        self._files: list[Any] = []
        self._formats: list[str] = []
        for path in self.paths:
            fmt = "traj" if path.suffix == ".traj" else filetype(path, read=False)
            fmt = "extxyz" if fmt == "xyz" else fmt
            self._formats.append(fmt)
            if not keep_open:
                path.unlink(missing_ok=True)
                continue
            # files stay open across calls; close() (or the context manager) closes them
            handle = Trajectory(path, "w") if fmt == "traj" else open(path, "w")  # noqa: SIM115
            self._files.append(handle)

    def __call__(self) -> None:
        """Write the current frame of every replica."""
        state = self.get_state()
        if self.record is None and self._record_source is not None:
            self.record = self._record_source()
        extra = {} if self.info is None else self.info(state)
        targets = self._files if self.keep_open else self.paths  # no files once closed
        for r, (target, fmt) in enumerate(zip(targets, self._formats)):
            atoms = state.to_atoms(r)
            atoms.info.update({key: float(values[r]) for key, values in extra.items()})
            stamp(atoms, self.record)
            if fmt == "traj" and self.keep_open:
                target.write(atoms)
            elif fmt == "traj":  # reopened: ase.io.write's traj append leaves it unreadable
                with Trajectory(target, "a") as traj:
                    traj.write(atoms)
            elif self.keep_open:
                ase_write(target, atoms, format=fmt)
                target.flush()
            else:
                ase_write(target, atoms, format=fmt, append=True)
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
