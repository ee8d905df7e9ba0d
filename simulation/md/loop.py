"""The run loop that MD, path-integral MD and active-learning MD share.

A driver subclasses `Driver`, holds a `state` with a `step` counter and defines `step()`,
one time step. `Driver.run` does the rest for all of them: the step count, the observers
(`attach`: called at step 0 and every `interval` steps, ASE's habit), per-replica trajectory
files (`write_trajectory`) and a rich progress bar. Hooks let a driver prepare a run
(`_start_run`), stop early (`_stopped`), finish it (`_finish_run`) and describe its progress
(`_progress_label`, `_progress_info`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from mlipserve.simulation.md.observers import Frames, TrajectoryWriter
from mlipserve.simulation.progress import ProgressBar
from mlipserve.simulation.provenance import provenance

PROGRESS_EVERY = 10  # steps between refreshes of the progress bar's info text


class DriverState(Frames, Protocol):
    """What the loop reads of a state: the completed steps, the replicas, their frames."""

    @property
    def step(self) -> int:
        """Steps completed since step 0."""
        ...

    @property
    def n_replicas(self) -> int:
        """R, the number of replicas."""
        ...


StateT = TypeVar("StateT", bound=DriverState)
Observer = tuple[Callable[..., Any], int, tuple[Any, ...], dict[str, Any]]


class Driver(Generic[StateT]):
    """Observers, trajectory files and the run loop of a driver stepping a batched state.

    Subclasses set `state` and define `step()`. Observers run when the state reaches a step
    that is a multiple of their interval: at step 0 (when a run starts there) and after
    every step that advanced the state (a step an active-learning driver rejects is not
    observed).
    """

    state: StateT

    def __init__(self) -> None:
        self.observers: list[Observer] = []

    def attach(
        self, function: Callable[..., Any], interval: int = 1, *args: Any, **kwargs: Any
    ) -> None:
        """Call `function(*args, **kwargs)` at step 0 and every `interval` steps."""
        if interval < 1:
            raise ValueError(f"interval must be at least 1, got {interval}")
        self.observers.append((function, interval, args, kwargs))

    def write_trajectory(
        self,
        paths: str | Path | Sequence[str | Path],
        interval: int = 1,
        *,
        info: Callable[[Any], Mapping[str, np.ndarray]] | None = None,
        keep_open: bool = True,
    ) -> TrajectoryWriter:
        """Write each replica to its own file (extxyz, .traj, ... by suffix) every interval.

        `info` and `keep_open` are `TrajectoryWriter`'s (extra per-replica values, reopening);
        every frame carries the provenance of the driver's `provider`.
        """
        provider = getattr(self, "provider", None)
        writer = TrajectoryWriter(
            lambda: self.state,
            paths,
            self.state.n_replicas,
            info=info,
            keep_open=keep_open,
            record=None if provider is None else lambda: provenance(provider),
        )
        self.attach(writer, interval)
        return writer

    def step(self) -> StateT:
        """Advance the state by one time step."""
        raise NotImplementedError

    def run(self, steps: int, progress: bool = False) -> StateT:
        """Run `steps` steps, calling observers; `progress` shows a rich progress bar."""
        if steps < 0:
            raise ValueError(f"steps must be non-negative, got {steps}")
        self._start_run()
        if self.state.step == 0:
            self._call_observers()
        with ProgressBar(progress, self._progress_label(), steps) as bar:
            for i in range(steps):
                if self._stopped():
                    break
                before = self.state.step
                self.step()
                if self.state.step != before:
                    self._call_observers()
                if progress:
                    fresh = i % PROGRESS_EVERY == 0 or i == steps - 1
                    bar.update(completed=i + 1, info=self._progress_info() if fresh else None)
        self._finish_run()
        return self.state

    def _call_observers(self) -> None:
        for function, interval, args, kwargs in self.observers:
            if self.state.step % interval == 0:
                function(*args, **kwargs)

    def _start_run(self) -> None:
        """Called when a run starts, before step-0 observers."""

    def _stopped(self) -> bool:
        """True ends the run before the next step."""
        return False

    def _finish_run(self) -> None:
        """Called when a run has taken its steps (or stopped)."""

    def _progress_label(self) -> str:
        """The progress bar's description."""
        return type(self).__name__

    def _progress_info(self) -> str:
        """The progress bar's info text, refreshed every `PROGRESS_EVERY` steps."""
        return ""
