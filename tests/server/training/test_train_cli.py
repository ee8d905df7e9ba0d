"""`mlipserve data` and `mlipserve train` end to end on a tiny configuration."""

from __future__ import annotations

import json
import subprocess

import ase.io
import numpy as np
from ase.calculators.emt import EMT

from tests.cli.test_cli import cli as run_cli


def cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=300)  # training takes longer than the other commands


def test_data_then_train_into_a_store(tmp_path):
    data = tmp_path / "train.extxyz"
    done = cli("data", str(data), "--seed", "5")
    assert done.returncode == 0, done.stderr
    frames = ase.io.read(data, index=":")
    assert len(frames) == 54 and {"Cu", "Al", "Pt"} <= set(
        sum((a.get_chemical_symbols() for a in frames), [])
    )
    sample = frames[7].copy()
    sample.calc = EMT()
    assert np.allclose(frames[7].get_forces(), sample.get_forces(), atol=1e-5)  # labels are EMT's
    store = tmp_path / "store"
    done = cli(
        "train",
        str(data),
        "--store",
        str(store),
        "--report",
        str(tmp_path / "report"),
        "--epochs",
        "2",
        "--members",
        "2",
        "--features",
        "8",
        "--cutoff",
        "4.0",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    meta = json.loads((store / "default" / "v1" / "metadata.json").read_text())
    assert meta["ensemble_size"] == 2 and meta["elements"] == [13, 28, 29, 46, 47, 78, 79]
    assert meta["metrics"]["test_split"]["force_mae_mev_per_A"] > 0
    assert (tmp_path / "report" / "parity_forces.png").exists()
    assert "default@v1" in done.stdout
