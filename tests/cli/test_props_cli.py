"""`mlipserve props ...` against a real server: JSON and PNG written, numbers as the library."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from typer.testing import CliRunner

from mlipserve.cli import app
from mlipserve.simulation.properties.elastic import elastic_tensor
from mlipserve.simulation.properties.surface import surface_energies
from tests.cli.said import said

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def run(server, *args: str):
    result = runner.invoke(app, ["props", *args, "--target", server.address, "--model", "emt"])
    return result


def test_elastic_command_writes_json_and_png(server, emt, tmp_path):
    out = tmp_path / "cu" / "elastic.json"
    result = run(server, "elastic", "--symbol", "Cu", "--output", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert out.with_suffix(".png").read_bytes().startswith(PNG)
    from mlipserve.simulation.properties.bulk import relaxed_fcc

    a = relaxed_fcc(emt, ["Cu"])["Cu"].a
    ref = elastic_tensor(emt, bulk("Cu", "fcc", a=a, cubic=True))
    assert np.allclose(data["C_GPa"], ref.C, atol=1e-6)
    assert data["born_stable"] and all(data["cubic_criteria"].values())


def test_stress_surface_vacancy_gb_commands(server, emt, tmp_path):
    cell = bulk("Cu", "fcc", a=3.6, cubic=True)
    cell.rattle(0.05, seed=1)
    ase.io.write(tmp_path / "cell.extxyz", cell)
    result = run(
        server, "stress", str(tmp_path / "cell.extxyz"), "--output", str(tmp_path / "s.json")
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["max_difference"] < 1e-7 and data["asymmetry"] == 0.0

    result = run(
        server, "surface", "--facets", "111", "--no-relax", "--output", str(tmp_path / "surf.json")
    )
    assert result.exit_code == 0, result.output
    gamma = json.loads((tmp_path / "surf.json").read_text())["111"]["gamma_eV_A2"]
    assert gamma == pytest.approx(
        surface_energies(emt, "Cu", ["111"], relax=False)["111"].gamma, abs=1e-9
    )
    assert (tmp_path / "surf.png").read_bytes().startswith(PNG)

    result = run(
        server,
        "vacancy",
        "--elements",
        "Cu,Ni",
        "--size",
        "1,1,1",
        "--sample",
        "2",
        "--output",
        str(tmp_path / "vac.json"),
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "vac.json").read_text())
    assert len(data["relaxed_eV"]) == 2 and set(data["mu_eV"]) == {"Cu", "Ni"}
    assert (tmp_path / "vac.png").read_bytes().startswith(PNG)

    result = run(
        server, "gb", "--periods", "1", "--z-repeat", "1", "--output", str(tmp_path / "gb.json")
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "gb.json").read_text())
    assert data["solute"] == "Ag" and len(data["segregation_eV"]) == len(data["distance_A"]) > 3
    assert (tmp_path / "gb.png").read_bytes().startswith(PNG)


def test_bad_input_exits_with_a_message(server):
    result = run(server, "elastic", "--strains", "0.5")
    assert result.exit_code == 2 and "bad input" in said(result)
    result = run(server, "gb", "--plane", "1,3,0")
    assert result.exit_code == 2 and "plane" in said(result)


def test_elastic_of_a_stressed_file_relaxes_it_first_or_warns(server, emt, tmp_path):
    from PIL import Image

    path = tmp_path / "cu_strained.extxyz"
    ase.io.write(path, bulk("Cu", "fcc", a=3.70, cubic=True))  # EMT's a is 3.59 Å
    out = tmp_path / "relaxed.json"
    done = run(server, "elastic", str(path), "--output", str(out))
    assert done.exit_code == 0, done.output
    data = json.loads(out.read_text())
    assert data["relaxed_first"] and data["residual_stress_GPa"] > 1.0
    assert data["stress_after_relaxation_GPa"] < 0.01
    assert data["provenance"]["model"] == "emt" and len(data["provenance"]["model_sha256"]) == 64
    assert data["trust"] == {"ensemble": False}
    from mlipserve.simulation.properties.bulk import relaxed_fcc

    a = relaxed_fcc(emt, ["Cu"])["Cu"].a
    ref = elastic_tensor(emt, bulk("Cu", "fcc", a=a, cubic=True))
    assert np.allclose(data["C_GPa"], ref.C, atol=0.5)  # same tensor as at the EMT lattice
    png = Image.open(out.with_suffix(".png"))
    assert "emt" in json.loads(png.text["Description"])["model"]
    warned = run(server, "elastic", str(path), "--no-relax", "--output", str(tmp_path / "w.json"))
    assert warned.exit_code == 0 and "warning:" in said(warned) and "GPa of stress" in said(warned)
    assert not json.loads((tmp_path / "w.json").read_text())["relaxed_first"]


def test_stress_says_which_frame_it_used(server, tmp_path):
    frames = [bulk("Cu", "fcc", a=a, cubic=True) for a in (3.55, 3.60, 3.65)]
    path = tmp_path / "three.extxyz"
    ase.io.write(path, frames)
    out = tmp_path / "s.json"
    done = run(server, "stress", str(path), "--index", "1", "--output", str(out))
    assert done.exit_code == 0 and "frame 1 of 3" in said(done)
    assert json.loads(out.read_text())["frame"] == 1
    last = run(server, "stress", str(path))
    assert "frame 2 of 3" in said(last)
    missing = run(server, "stress", str(path), "--index", "5")
    assert missing.exit_code == 2 and "there is no frame 5" in said(missing)


def test_props_show_the_ensembles_uncertainty_and_warnings(server, tmp_path):
    path = tmp_path / "cu.extxyz"
    ase.io.write(path, bulk("Cu", "fcc", a=3.61, cubic=True))
    out = tmp_path / "s.json"
    result = runner.invoke(
        app,
        [
            "props",
            "stress",
            str(path),
            "--target",
            server.address,
            "--model",
            "lj-ensemble",
            "--output",
            str(out),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "ensemble std: energy" in said(result) and "warning:" in said(result)
    trust = json.loads(out.read_text())["trust"]
    assert trust["ensemble"] and trust["energy_std_eV_per_atom"] > 0.05 and trust["warnings"]
