"""ASE's own tests, from the installed ASE, with EMT replaced by RemoteCalculator on `emt`.

A child pytest runs the selection below with `tests.client.ase_remote_plugin`, which makes
ASE's `EMT(...)` (and the `asap3` EMT that ASE's MTK NPT tests ask for) a RemoteCalculator
on this session's server. Every selected test must pass, and the plugin's counts prove the
calculations went to the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import ase

ASE_TESTS = Path(ase.__file__).parent / "test"
SELECTION = [
    "optimize/test_optimizers.py",  # every ASE optimizer on EMT Cu
    "neb/test_neb.py",
    "neb/test_shared_calculator_neb.py",  # SinglePointCalculator(atoms, **calc.results)
    "md/test_md.py",
    "md/test_nose_hoover_chain.py::test_isotropic_mtk_npt[1-1]",  # MTK NPT (stress each step)
    "md/test_nose_hoover_chain.py::test_anisotropic_npt[1-1]",
    "md/test_nose_hoover_chain.py::test_nose_hoover_chain_nvt[1]",
    "constraints/test_fixbondlength_CO2_Au111.py",
    "constraints/test_hookean.py",
    "filter/test_cellfilter.py",
    "fio/test_extxyz.py::test_basic_functionality",  # per-atom energies in the file
    "test_phonons.py",
    "vibrations/test_vibrations_example.py",
]


def test_ase_own_tests_pass_on_the_remote_calculator(server, tmp_path):
    counts, report = tmp_path / "counts.json", tmp_path / "report.xml"
    env = {**os.environ, "MLIPSERVE_TARGET": server.address, "MLIPSERVE_ASE_COUNTS": str(counts)}
    cmd = [sys.executable, "-m", "pytest", "-p", "tests.client.ase_remote_plugin", "-q"]
    cmd += ["-p", "no:cacheprovider", "--rootdir", str(tmp_path), f"--junitxml={report}"]
    cmd += [str(ASE_TESTS / item) for item in SELECTION]
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=root)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    tests, failures = int(suite.get("tests", 0)), int(suite.get("failures", 0))
    errors, skipped = int(suite.get("errors", 0)), int(suite.get("skipped", 0))
    assert failures == errors == 0 and tests - skipped >= 100, (tests, skipped)  # 104 here
    made = json.loads(counts.read_text())
    assert made["calculators"] >= 20 and made["calculations"] >= 500, made
