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
    assert result.exit_code == 2 and "bad input" in result.output
    result = run(server, "gb", "--plane", "1,3,0")
    assert result.exit_code == 2 and "plane" in result.output
