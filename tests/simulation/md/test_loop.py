"""The run loop MD, PIMD and active-learning MD share: observers, trajectories, progress, stops."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from mlipserve.simulation.md.loop import Driver


@dataclass(frozen=True)
class Walker:
    """Two replicas of one atom moving along x by one Å per accepted step."""

    step: int = 0

    @property
    def n_replicas(self) -> int:
        return 2

    def to_atoms(self, r: int) -> Atoms:
        atoms = Atoms("H", positions=[[float(self.step), float(r), 0.0]])
        atoms.info["step"] = self.step
        return atoms


class WalkerDriver(Driver[Walker]):
    """Rejects every `reject`-th attempt (the state stays), stops after `stop_at` attempts."""

    def __init__(self, reject: int = 0, stop_at: int | None = None) -> None:
        super().__init__()
        self.state, self.attempts, self.reject, self.stop_at = Walker(), 0, reject, stop_at
        self.events: list[str] = []

    def step(self) -> Walker:
        self.attempts += 1
        if not (self.reject and self.attempts % self.reject == 0):
            self.state = replace(self.state, step=self.state.step + 1)
        return self.state

    def _start_run(self) -> None:
        self.events.append("start")

    def _stopped(self) -> bool:
        return self.stop_at is not None and self.attempts >= self.stop_at

    def _finish_run(self) -> None:
        self.events.append("finish")

    def _progress_info(self) -> str:
        return f"{self.attempts} attempts"


def test_observers_run_at_step_zero_and_every_interval_once_per_step(tmp_path):
    driver = WalkerDriver(reject=3)
    seen: list[int] = []
    driver.attach(lambda: seen.append(driver.state.step), 2)
    writer = driver.write_trajectory(tmp_path / "w_{replica}.extxyz", 2)
    driver.run(9, progress=True)
    writer.close()
    assert driver.attempts == 9 and driver.state.step == 6  # attempts 3, 6, 9 rejected
    assert seen == [0, 2, 4, 6]  # a rejected attempt is not observed again
    frames = read(tmp_path / "w_1.extxyz", ":")
    assert [f.info["step"] for f in frames] == [0, 2, 4, 6]
    np.testing.assert_allclose(frames[-1].positions, [[6.0, 1.0, 0.0]])
    assert driver.events == ["start", "finish"]


def test_a_second_run_does_not_repeat_step_zero_and_stops_early(tmp_path):
    driver = WalkerDriver(stop_at=5)
    seen: list[int] = []
    driver.attach(seen.append, 1, "x")
    driver.run(3)
    driver.run(10)
    assert driver.attempts == 5 and len(seen) == 6  # step 0 once, then 5 steps
    paths = driver.write_trajectory(
        tmp_path / "s_{replica}.traj", info=lambda s: {"z": np.array([1.0, 2.0])}, keep_open=False
    ).paths
    driver.stop_at = None
    driver.run(2)
    frames = read(paths[1], ":")
    assert len(frames) == 2 and frames[-1].info["z"] == 2.0


def test_bad_run_arguments_are_refused():
    driver = WalkerDriver()
    with pytest.raises(ValueError, match="non-negative"):
        driver.run(-1)
    with pytest.raises(ValueError, match="interval"):
        driver.attach(print, 0)
    with pytest.raises(ValueError, match="replica"):
        driver.write_trajectory("one.extxyz")
