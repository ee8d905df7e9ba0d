"""`mlipserve eval` shows the ensemble's uncertainty and every trust warning."""

from __future__ import annotations

import ase.io
from ase.build import bulk
from typer.testing import CliRunner

from mlipserve.cli import app
from tests.cli.said import said

runner = CliRunner()


def test_eval_shows_uncertainty_and_warnings_of_a_wrong_model(server, tmp_path):
    # Cu on the argon LJ ensemble: a symmetric cell (zero forces) far outside what it knows
    path = tmp_path / "cu.extxyz"
    ase.io.write(path, [bulk("Cu", cubic=True) * 2])
    out = tmp_path / "out.extxyz"
    args = ["eval", str(path), "--target", server.address, "--model", "lj-ensemble"]
    result = runner.invoke(app, [*args, "--output", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "E std (eV/atom)" in said(result) and "max F std (eV/Å)" in said(result)
    assert "frame 0:" in said(result) and "energy std" in said(result)
    (frame,) = ase.io.read(out, index=":")
    assert frame.info["energy_std"] / len(frame) > 0.05  # the per-atom trust_hi it breaks
    assert frame.info["provenance_model"] == "lj-ensemble"


def test_eval_of_an_unreadable_file_is_one_line(server, tmp_path):
    path = tmp_path / "nope.xyz"
    path.write_text("not a structure\n")
    result = runner.invoke(app, ["eval", str(path), "--target", server.address])
    assert result.exit_code == 2
    assert "cannot read" in said(result) and "Traceback" not in result.output
