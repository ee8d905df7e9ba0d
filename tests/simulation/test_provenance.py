"""Provenance: the record names the served model's version and content hash, and survives files."""

from __future__ import annotations

import json

import ase.io
from ase.build import bulk
from PIL import Image

from mlipserve import __version__
from mlipserve.server.models.builtin import SHIPPED, shipped_default
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore
from mlipserve.simulation.plotting import new_figure, save
from mlipserve.simulation.provenance import provenance, read_info, stamp, system_title
from mlipserve.simulation.provider import RemoteProvider


def test_local_record_carries_the_stored_weights_hash():
    record = provenance(LocalProvider(shipped_default()))
    meta = ModelStore(SHIPPED).metadata("default")
    assert record["model"] == "default" and record["model_version"] == meta["version"]
    assert record["model_sha256"] == meta["sha256"] and len(meta["sha256"]) == 64
    assert record["server"] == "in-process" and record["mlipserve_version"] == __version__


def test_remote_record_names_what_served_the_results(server):
    provider = RemoteProvider(server.address, "lj-ensemble")
    try:
        provider.evaluate([bulk("Ar", "fcc", a=5.3)])
        record = provenance(provider)
    finally:
        provider.close()
    (entry,) = [e for e in server.registry.entries() if e[0].model.info.name == "lj-ensemble"]
    info = entry[0].model.info.describe(True)
    assert record["model"] == "lj-ensemble" and record["model_version"] == info["version"]
    assert record["model_sha256"] == info["sha256"] and len(info["sha256"]) == 64
    assert record["server"] == server.address
    # another model has another hash: the record tells them apart
    lj = [e for e in server.registry.entries() if e[0].model.info.name == "lj"][0]
    assert lj[0].model.info.describe(True)["sha256"] != record["model_sha256"]


def test_the_server_default_is_resolved_after_the_first_results(server):
    provider = RemoteProvider(server.address)
    try:
        assert provenance(provider)["model"] == "(server default)"
        (res,) = provider.evaluate([bulk("Cu", cubic=True)])
        assert provenance(provider)["model"] == res["model"] != ""
    finally:
        provider.close()


def test_record_survives_extxyz_and_png(tmp_path):
    record = provenance(LocalProvider("emt"))
    atoms = stamp(bulk("Cu", cubic=True), record)
    ase.io.write(tmp_path / "t.extxyz", [atoms, atoms], format="extxyz")
    back = ase.io.read(tmp_path / "t.extxyz", index=-1)
    got = read_info(back.info)
    assert got["model"] == "emt" and got["model_sha256"] == record["model_sha256"]
    assert got["mlipserve_version"] == __version__
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1])
    title = system_title(atoms, record, "test")
    assert title == "test: Cu4 on emt@ase"
    path = save(fig, tmp_path / "p.png", title, provenance=record)
    text = Image.open(path).text
    assert json.loads(text["Description"])["model_sha256"] == record["model_sha256"]


def test_md_trajectory_frames_carry_the_record(emt, tmp_path):
    from ase import units

    from mlipserve.simulation.md.driver import MolecularDynamics
    from mlipserve.simulation.md.integrators import velocity_verlet
    from mlipserve.simulation.md.state import MDState

    atoms = bulk("Cu", cubic=True)
    md = MolecularDynamics(
        emt, MDState.from_atoms(atoms, temperature_K=300, seeds=1), velocity_verlet(2 * units.fs)
    )
    with md.write_trajectory(tmp_path / "md.traj", 2):
        md.run(4)
    frames = ase.io.read(tmp_path / "md.traj", index=":")
    assert len(frames) == 3
    for frame in frames:
        got = read_info(frame.info)
        assert got["model"] == "emt" and got["server"] == "in-process"
        assert len(got["model_sha256"]) == 64
