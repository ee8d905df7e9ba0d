"""`make gpu-check` in its CPU smoke mode: every path but the device string, so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.gpu_check import main
from benchmarks.gpu_conformance import CASES, TOLERANCE, compare

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    """The JSON of one `python -m benchmarks.gpu_check --device cpu --smoke` run."""
    out = tmp_path_factory.mktemp("gpu_check")
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--smoke"]
    proc = subprocess.run(
        [*cmd, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=150
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ok in" in proc.stdout
    return json.loads((out / "gpu_check_cpu.json").read_text())


def test_every_family_conforms_within_its_tolerance(smoke):
    assert smoke["mode"] == "smoke" and smoke["ok"] and smoke["errors"] == {}
    assert smoke["device"] == {**smoke["device"], "device": "cpu", "type": "cpu"}
    families = smoke["conformance"]["families"]
    assert set(families) == set(CASES)
    kinds = {f["family"] for f in families.values()}
    assert {"painn", "painn-coulomb", "painn-field", "pair", "pair+coulomb"} <= kinds
    for name, fam in families.items():
        assert fam["ok"], name
        for dtype in ("float64", "float32"):
            run = fam["dtypes"][dtype]
            assert run["model_device"] == "cpu" and run["model_dtype"] == dtype
            assert run["tolerance"] == TOLERANCE[name][dtype]
            for key, check in run["properties"].items():
                assert check["ok"] and check["relative_error"] <= check["tolerance"], (name, key)
        # same code, same dtype on CPU: bit-identical; float32 really is another precision
        assert fam["dtypes"]["float64"]["worst_relative_error"] == 0.0, name
        assert 0.0 < fam["dtypes"]["float32"]["worst_relative_error"] < 1e-4, name
        assert fam["dtypes"]["float64"]["repeat_max_difference"] == 0.0, name
    props = {name: set(f["dtypes"]["float32"]["properties"]) for name, f in families.items()}
    assert {"forces", "stress", "energy_std", "forces_std"} <= props["painn"]
    assert {"stress", "charges", "energy_std"} <= props["painn-coulomb"]
    assert {"stress", "charges"} <= props["painn-coulomb-pme"]
    assert {"dipole", "born_charges"} <= props["painn-field"]
    assert {"forces", "stress"} <= props["lennard-jones"] & props["nacl-rigid-ion"]


def test_benchmarks_ran_on_the_device_and_goals_are_recorded(smoke):
    bench = smoke["benchmarks"]
    (row,) = bench["served"]["remote_vs_local"]
    assert row["model"] == "lj" and row["atoms"] == 64 and row["remote"]["n"] == 3
    assert row["ratio_median"] == row["remote"]["median_us"] / row["local"]["median_us"]
    runs = bench["served"]["batching"]
    assert runs["clients"] == 4 and runs["ratio"] > 0
    assert runs["batching"]["evaluations"] > 0 and runs["no-batching"]["evaluations"] > 0
    assert runs["no-batching"]["mean_requests_per_batch"] == 1.0
    sizes = [r["atoms"] for r in bench["ensemble"]["rows"]]
    assert sizes == [108, 108] and bench["ensemble"]["model_device"] == "cpu"
    (step,) = bench["step"]["rows"]
    assert step["atoms"] == 108 and step["step"]["n"] == 3
    assert step["us_per_atom_step"] == pytest.approx(step["step"]["median_us"] / 108)
    assert bench["step"]["model_device"] == "cpu"
    goals = {g["name"].split(" ")[0]: g for g in smoke["goals"]}
    assert set(goals) == {"batching", "remote_vs_local", "ensemble"}
    assert not any(g["applies"] for g in goals.values())  # goals of a full GPU run only
    assert goals["batching"]["value"] == runs["ratio"]
    assert set(smoke["seconds"]) == {"conformance", "served", "ensemble", "step", "total"}


def test_a_difference_past_the_tolerance_fails():
    forces = np.array([[0.0, 0.5, -1.0]])
    want = [{"energy": 100.0, "forces": forces, "model": "x"}]
    got = [{"energy": 100.0 + 2e-2, "forces": forces + 1e-5, "model": "x"}]
    checks = compare(got, want, 1e-4)
    assert checks["energy"]["relative_error"] == pytest.approx(2e-4)
    assert set(checks) == {"energy", "forces"}  # names and versions are not compared
    assert not checks["energy"]["ok"] and checks["forces"]["ok"]
    assert checks["forces"]["max_abs_error"] == pytest.approx(1e-5)
    nan = compare([{"energy": float("nan")}], [{"energy": 1.0}], 1.0)
    assert not nan["energy"]["ok"]


@pytest.mark.parametrize("device", ["tpu", "cuda:0"])
def test_a_device_it_cannot_use_is_refused(device, capsys):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as exc:
        main(["--device", device, "--smoke"])
    assert exc.value.code == 2
    assert "--device" in capsys.readouterr().err
