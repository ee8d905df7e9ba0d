"""`mlipserve md|pimd|relax|neb|umbrella|metad` against a real server: files, numbers, provenance.

Each command runs a tiny system on a served model and is checked against the library driver
run in process on the same inputs (same seeds: the same numbers), or against physics (NVE
conserves energy, a relaxation ends below its force threshold).
"""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import add_adsorbate, bulk, fcc100
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.optimize import QuasiNewton
from PIL import Image
from typer.testing import CliRunner

from mlipserve.cli import app
from tests.cli.said import said

runner = CliRunner()


def run(server, model: str, *args: str):
    result = runner.invoke(
        app, [*args, "--target", server.address, "--model", model], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    return result


def provenance_checks(prefix, server, model: str) -> dict:
    """JSON, PNG and trajectory all name the served model; returns the JSON."""
    data = json.loads(prefix.with_suffix(".json").read_text())
    prov = data["provenance"]
    assert prov["model"] == model and prov["server"] == server.address
    assert len(prov["model_sha256"]) == 64
    png = Image.open(prefix.with_suffix(".png"))
    assert json.loads(png.text["Description"])["model_sha256"] == prov["model_sha256"]
    for frame in ase.io.read(prefix.with_suffix(".extxyz"), index=":"):
        assert frame.info["provenance_model"] == model
        assert frame.info["provenance_model_sha256"] == prov["model_sha256"]
    return data


def test_md_nve_conserves_energy_and_writes_stamped_frames(server, tmp_path):
    path = tmp_path / "cu.extxyz"
    ase.io.write(path, bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 1, 1))
    prefix = tmp_path / "out" / "cu-md"
    args = ["md", str(path), "--thermostat", "nve", "--steps", "40", "--interval", "10"]
    run(server, "emt", *args, "--temperature", "300", "--timestep", "1", "--output", str(prefix))
    data = provenance_checks(prefix, server, "emt")
    assert abs(data["conserved_change_eV_per_atom"]) < 1e-4
    assert len(ase.io.read(prefix.with_suffix(".extxyz"), index=":")) == 5  # steps 0..40
    assert 50 < data["mean_temperature_K"] < 400  # half the start's 300 K goes potential


def test_md_npt_runs_stochastic_cell_rescaling(server, tmp_path):
    path = tmp_path / "cu.extxyz"
    ase.io.write(path, bulk("Cu", "fcc", a=3.61, cubic=True))
    prefix = tmp_path / "npt"
    run(
        server,
        "emt",
        "md",
        str(path),
        "--steps",
        "30",
        "--pressure",
        "1.0",
        "--output",
        str(prefix),
    )
    frames = ase.io.read(prefix.with_suffix(".extxyz"), index=":")
    assert frames[-1].get_volume() != pytest.approx(frames[0].get_volume(), rel=1e-9)
    assert json.loads(prefix.with_suffix(".json").read_text())["settings"]["pressure_GPa"] == 1.0


def test_relax_ends_below_its_force_threshold(server, tmp_path):
    frames = []
    for seed in (1, 2):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 1, 1)
        atoms.rattle(0.05, seed=seed)
        frames.append(atoms)
    path = tmp_path / "rattled.extxyz"
    ase.io.write(path, frames)
    prefix = tmp_path / "relaxed"
    run(server, "emt", "relax", str(path), "--fmax", "0.01", "--output", str(prefix))
    data = provenance_checks(prefix, server, "emt")
    for row, start in zip(data["frames"], ase.io.read(path, index=":")):  # as written
        assert row["converged"] and row["fmax_eV_per_A"] < 0.01 and row["energy_change_eV"] < 0
        start.calc = EMT()
        assert row["energy_eV"] - row["energy_change_eV"] == pytest.approx(
            start.get_potential_energy(), abs=1e-9
        )


def test_neb_barrier_equals_the_library_on_the_same_band(server, emt, tmp_path):
    from mlipserve.simulation.neb import make_band, run_neb

    slab = fcc100("Al", size=(2, 2, 3))
    add_adsorbate(slab, "Au", 1.7, "hollow")
    slab.center(axis=2, vacuum=4.0)
    slab.set_constraint(FixAtoms(mask=[tag > 1 for tag in slab.get_tags()]))
    final = slab.copy()
    final[-1].x += slab.cell[0, 0] / 2
    ends = []
    for atoms in (slab, final):
        atoms.calc = EMT()
        QuasiNewton(atoms, logfile=None).run(fmax=0.05)
        atoms.calc = None
        ends.append(atoms)
    paths = [tmp_path / "initial.traj", tmp_path / "final.traj"]  # .traj keeps FixAtoms
    for p, atoms in zip(paths, ends):
        ase.io.write(p, atoms)
    prefix = tmp_path / "hop"
    cmd = ["neb", *map(str, paths), "--images", "3", "--interpolation", "linear"]
    run(server, "emt", *cmd, "--output", str(prefix))
    data = provenance_checks(prefix, server, "emt")
    ref = run_neb(emt, make_band(*ends, 3), progress=False)
    assert data["barrier_eV"] == pytest.approx(ref.barrier, abs=1e-6)
    assert data["converged"] and 0.2 < data["barrier_eV"] < 0.6  # ASE tutorial: ~0.37 eV
    same = runner.invoke(app, ["neb", str(paths[0]), str(paths[0]), "--target", server.address])
    assert same.exit_code == 2 and "same structure" in said(same)


def test_pimd_equals_the_library_with_the_same_seed(server, tmp_path):
    from mlipserve.simulation.pimd.driver import PathIntegralMD, PIMDIntegrator
    from mlipserve.simulation.pimd.ring_polymer import RingPolymerState
    from mlipserve.simulation.provider import RemoteProvider

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    path = tmp_path / "cu.extxyz"
    ase.io.write(path, atoms)
    prefix = tmp_path / "pimd"
    cmd = ["pimd", str(path), "--beads", "4", "--steps", "20", "--interval", "5"]
    run(server, "emt", *cmd, "--temperature", "100", "--output", str(prefix))
    data = provenance_checks(prefix, server, "emt")
    remote = RemoteProvider(server.address, "emt")
    try:
        state = RingPolymerState.from_atoms(atoms, 4, 100.0, seeds=0)
        driver = PathIntegralMD(remote, state, PIMDIntegrator(0.5 * units.fs))
        log = driver.log(5)
        driver.run(20)
    finally:
        remote.close()
    assert np.allclose(data["log"]["kinetic_cv"], log.arrays()["kinetic_cv"][:, 0], atol=1e-10)


@pytest.fixture()
def argon_dimer(tmp_path):
    path = tmp_path / "ar2.xyz"
    ase.io.write(path, Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 3.9]]))
    return path


def test_umbrella_profile_equals_the_library(server, argon_dimer, tmp_path):
    from mlipserve.simulation.provider import RemoteProvider
    from mlipserve.simulation.sampling.cvs import Distance
    from mlipserve.simulation.sampling.umbrella import run_umbrella

    prefix = tmp_path / "us"
    cmd = ["umbrella", str(argon_dimer), "--atoms", "0,1", "--windows", "3.6:4.4:3"]
    opts = ["--steps", "300", "--equilibration", "50", "--temperature", "60", "--bins", "8"]
    run(server, "lj", *cmd, *opts, "--output", str(prefix))
    data = json.loads(prefix.with_suffix(".json").read_text())
    assert data["provenance"]["model"] == "lj"
    remote = RemoteProvider(server.address, "lj")
    try:
        ref = run_umbrella(
            remote,
            ase.io.read(argon_dimer),
            Distance(0, 1),
            [3.6, 4.0, 4.4],
            5.0,
            60.0,
            dt=units.fs,
            friction=0.01 / units.fs,
            steps=300,
            equilibration=50,
        )
    finally:
        remote.close()
    expected = ref.profile(8, method="mbar").free_energy
    got = np.array(data["profile"]["free_energy_eV"], dtype=float)
    assert np.allclose(got, expected, atol=1e-10, equal_nan=True)


def test_metad_writes_a_profile_over_the_visited_range(server, argon_dimer, tmp_path):
    prefix = tmp_path / "metad"
    cmd = ["metad", str(argon_dimer), "--atoms", "0,1", "--steps", "200", "--pace", "20"]
    run(server, "lj", *cmd, "--walkers", "2", "--temperature", "60", "--output", str(prefix))
    data = json.loads(prefix.with_suffix(".json").read_text())
    low, high = data["visited_range_A"]
    assert 3.0 < low <= 3.9 < high  # the start is visited first, then the bias pushes on
    free = np.array(data["profile"]["free_energy_eV"], dtype=float)
    assert np.nanmin(free) == 0.0 and np.all(np.isfinite(free))
    assert data["provenance"]["model"] == "lj"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["md", "/nonexistent.xyz"], "does not exist"),
        (["relax", "/nonexistent.xyz"], "does not exist"),
        (["md", "CU", "--thermostat", "nose"], "thermostat must be"),
        (["umbrella", "AR", "--atoms", "0,0", "--windows", "3:4:3"], "two different atoms"),
        (["umbrella", "AR", "--atoms", "0,1", "--windows", "3:4"], "START:STOP:N"),
    ],
)
def test_mistakes_are_one_line_errors(server, argon_dimer, tmp_path, args, message):
    cu = tmp_path / "cu.xyz"
    ase.io.write(cu, bulk("Cu", cubic=True))
    args = [str(cu) if a == "CU" else str(argon_dimer) if a == "AR" else a for a in args]
    result = runner.invoke(app, [*args, "--target", server.address], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in said(result) and "Traceback" not in result.output
