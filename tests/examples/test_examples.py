"""Every script in examples/ runs against a real server (its --small sizes) and says something
that could be wrong: each is checked against physics or a reference value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.examples.conftest import EXAMPLES, run


def test_every_driver_and_chemistry_check_has_an_example_and_a_test():
    names = {p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_")}
    drivers = {"md", "relax", "neb", "pimd", "blending", "umbrella", "metadynamics"}
    chemistry = {"molecular_neb", "water_md", "water_pimd", "molecular_blending"}
    assert names == drivers | chemistry | {"active_learning", "properties"}
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    assert set(re.findall(r"def test_(\w+)_example\(", tests)) == names


def test_md_example(lab, tmp_path):
    s = run(lab, tmp_path, "md")
    assert 200 < s["mean_temperature_K"] < 700  # started at 600 K, half goes to the potential
    assert 11.0 < s["volume_per_atom_A3"] < 12.6  # Cu: 11.8 Å³
    assert s["provenance"]["model"] == "default"


def test_relax_example(lab, tmp_path):
    s = run(lab, tmp_path, "relax")
    assert s["converged"] and all(abs(a - 3.59) < 0.03 for a in s["lattice_constant_A"])
    assert all(e < 0 for e in s["relaxation_energy_eV"])


def test_neb_example(lab, tmp_path):
    s = run(lab, tmp_path, "neb", "--model", "emt")
    assert s["converged"] and s["barrier_eV"] == pytest.approx(0.37, abs=0.03)  # ASE tutorial


def test_pimd_example(lab, tmp_path):
    s = run(lab, tmp_path, "pimd")
    assert (
        0.5 * s["classical_eV_per_atom"] < s["kinetic_eV_per_atom"] < 5 * s["classical_eV_per_atom"]
    )


def test_blending_example(lab, tmp_path):
    s = run(lab, tmp_path, "blending", "--model", "morse")
    assert s["force_x"] == pytest.approx(s["fd_force_x"], abs=1e-5)


def test_umbrella_example(lab, tmp_path):
    s = run(lab, tmp_path, "umbrella", "--model", "lj")
    assert s["max_deviation_eV"] < 0.05  # MBAR vs U(r) − 2kT ln r; a wrong bias is ~0.5 eV


def test_metadynamics_example(lab, tmp_path):
    s = run(lab, tmp_path, "metadynamics", "--model", "lj")
    assert abs(s["F_stretched_minus_well_eV"] - s["exact_eV"]) < 0.05


def test_active_learning_example(lab, tmp_path):
    s = run(lab, tmp_path, "active_learning")
    assert s["candidates"] >= 1 and s["labelled"] >= 1


def test_properties_example(lab, tmp_path):
    s = run(lab, tmp_path, "properties")
    c11, c12, c44 = s["C11_C12_C44_GPa"]
    assert c11 > c12 > 0 and c44 > 0 and 120 < (c11 + 2 * c12) / 3 < 160  # EMT Cu: B ≈ 134
