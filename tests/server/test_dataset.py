"""The versioned dataset on SQLite and PostgreSQL: dedup, immutable versions, exact round trip."""

from __future__ import annotations

import uuid

import numpy as np
import psycopg2
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from mlipserve.server.dataset import Dataset, structure_hash
from mlipserve.server.labellers import Label, make_labeller

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin(statement: str) -> None:
    con = psycopg2.connect(PG_ADMIN)
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute(statement)
    finally:
        con.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def dataset(request, tmp_path):
    """A fresh Dataset: a SQLite file, or a throw-away PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        ds = Dataset(tmp_path / "lineage" / "data.db")
        yield ds
        ds.close()
        return
    name = f"mlipserve_ds_{uuid.uuid4().hex[:10]}"
    _admin(f"CREATE DATABASE {name}")
    try:
        ds = Dataset(f"postgresql://postgres@127.0.0.1:5432/{name}")
        yield ds
        ds.close()
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def cu_cells(n: int, seed: int = 0) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    cells = []
    for _ in range(n):
        atoms = bulk("Cu", cubic=True)
        atoms.set_cell(atoms.cell * rng.uniform(0.97, 1.03), scale_atoms=True)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        cells.append(atoms)
    return cells


def test_round_trip_is_exact_and_provenance_is_kept(dataset):
    """Energy, forces, stress, positions, cell come back bit-for-bit; provenance as stored."""
    labels = make_labeller("emt").label(cu_cells(3))
    ids = dataset.add(labels)
    assert len(set(ids)) == 3 and dataset.count() == 3
    rows = dataset.rows()
    assert [a.info["row_id"] for a in rows] == sorted(ids)
    for label, atoms in zip(labels, rows):
        ref = label.atoms
        assert atoms.get_potential_energy() == ref.get_potential_energy()
        np.testing.assert_array_equal(atoms.get_forces(), ref.get_forces())
        np.testing.assert_array_equal(atoms.get_stress(), ref.get_stress())
        np.testing.assert_array_equal(atoms.positions, ref.positions)
        np.testing.assert_array_equal(atoms.cell.array, ref.cell.array)
        np.testing.assert_array_equal(atoms.numbers, ref.numbers)
        assert atoms.info["structure_hash"] == structure_hash(ref)
        assert atoms.info["labeller"] == "emt"
    prov = dataset.provenance(ids[0])
    assert prov["labeller"] == "emt" and prov["wall_time_s"] == labels[0].provenance["wall_time_s"]


def test_duplicates_are_stored_once_and_failed_labels_never(dataset):
    """Re-adding a structure returns its existing id; failed labels give None and no row."""
    cells = cu_cells(2, seed=1)
    first = dataset.add(make_labeller("emt").label(cells))
    again = make_labeller("emt").label([cells[1], cells[0], cells[0]])
    assert dataset.add(again) == [first[1], first[0], first[0]]
    assert dataset.count() == 2 and dataset.has(structure_hash(cells[0]))
    iron = bulk("Fe", cubic=True)
    failed = make_labeller("emt").label([iron])
    assert not failed[0].ok
    assert dataset.add(failed) == [None]
    assert dataset.count() == 2 and not dataset.has(structure_hash(iron))
    faked = Label(atoms=cells[0].copy(), ok=False, error="SCF not converged after 50 cycles")
    assert dataset.add([faked]) == [None]


def test_versions_are_immutable_after_more_rows_arrive(dataset):
    """A version keeps exactly its rows while the dataset grows; tags are unique."""
    labeller = make_labeller("emt")
    dataset.add(labeller.label(cu_cells(2, seed=2)))
    v1 = dataset.snapshot("round-0")
    dataset.add(labeller.label(cu_cells(3, seed=3)))
    v2 = dataset.snapshot()
    assert (v1, v2) == (1, 2)
    assert [(v.version, v.tag, v.n_rows) for v in dataset.versions()] == [
        (1, "round-0", 2),
        (2, "v2", 5),
    ]
    old = dataset.rows("round-0")
    assert [a.info["row_id"] for a in old] == dataset.row_ids(1) == [1, 2]
    assert len(dataset.rows(2)) == 5 == len(dataset.rows())
    dataset.add(labeller.label(cu_cells(1, seed=4)))
    assert [a.info["row_id"] for a in dataset.rows(1)] == [1, 2]
    assert dataset.row_ids("v2") == [1, 2, 3, 4, 5] and dataset.count() == 6
    with pytest.raises(ValueError, match="'round-0' already exists"):
        dataset.snapshot("round-0")
    with pytest.raises(ValueError, match="no version 7"):
        dataset.rows(7)


def test_a_dataset_made_in_one_thread_works_in_another(dataset):
    """Queue workers may hand a Dataset between threads: add and snapshot from a second one."""
    import threading

    out = {}

    def work():
        out["ids"] = dataset.add(make_labeller("emt").label(cu_cells(2, seed=8)))
        out["version"] = dataset.snapshot("from-thread")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    assert out == {"ids": [1, 2], "version": 1} and dataset.row_ids("from-thread") == [1, 2]


def test_export_extxyz_feeds_the_training_reader(dataset, tmp_path):
    """A version exported as extxyz loads through training.data.load_structures (1e-8 eV)."""
    from mlipserve.server.training.data import load_structures

    labels = make_labeller("emt").label(cu_cells(2, seed=5) + [molecule("CO")])
    dataset.add(labels)
    dataset.snapshot("train")
    dataset.add(make_labeller("emt").label(cu_cells(1, seed=6)))
    path = dataset.export_extxyz(tmp_path / "train.extxyz", "train")
    frames = load_structures(path)
    assert len(frames) == 3
    for label, atoms in zip(labels, frames):
        assert atoms.get_potential_energy() == pytest.approx(label.results["energy"], abs=1e-8)
        np.testing.assert_allclose(atoms.get_forces(), label.results["forces"], atol=1e-8)
    assert "stress" in frames[0].calc.results and "stress" not in frames[2].calc.results


def test_structure_hash_sees_what_matters():
    """Same structure → same hash (also after 1e-9 Å noise); any real change → another."""
    base = bulk("Cu", cubic=True)
    noisy = base.copy()
    noisy.positions += 1e-9
    moved = base.copy()
    moved.positions[0, 0] += 1e-3
    slab = base.copy()
    slab.pbc = (True, True, False)
    swapped = base.copy()
    swapped.numbers[0] = 28
    hashes = {structure_hash(a) for a in (moved, slab, swapped)}
    assert structure_hash(base) == structure_hash(noisy)
    assert len(hashes | {structure_hash(base)}) == 4


def test_bad_input_is_a_value_error(tmp_path):
    with Dataset(tmp_path / "x.db") as ds:
        with pytest.raises(ValueError, match="not a Label"):
            ds.add([bulk("Cu")])
        with pytest.raises(ValueError, match="no rows to export"):
            ds.export_extxyz(tmp_path / "empty.extxyz")
        with pytest.raises(ValueError, match="non-empty string"):
            ds.snapshot("  ")


def _add_in_child(url: str, seed: int, barrier) -> None:
    labels = make_labeller("emt").label(cu_cells(30, seed=seed))
    with Dataset(url) as ds:
        barrier.wait(30)
        ds.add(labels)


def test_concurrent_writers_in_two_processes_store_each_structure_once(dataset):
    """Two processes add the same 30 structures at once: 30 rows.

    Without the writer lock duplicates get in (measured 31 rows on SQLite, 51 on PostgreSQL).
    """
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    workers = [ctx.Process(target=_add_in_child, args=(dataset.url, 7, barrier)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert dataset.count() == 30
    assert len({a.info["structure_hash"] for a in dataset.rows()}) == 30
