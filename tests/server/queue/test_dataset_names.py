"""Dataset names, tenant folders, the resolved location and shares (real files, no server)."""

from __future__ import annotations

import pytest

from mlipserve.server.queue.datasets import (
    DatasetError,
    DatasetForbidden,
    DatasetRef,
    ShareBook,
    authorize,
    dataset_location,
    parse_ref,
    tenant_dir,
)
from mlipserve.server.queue.worker import WorkerConfig


@pytest.mark.parametrize(
    "ref",
    [
        "/abs/x.db",
        "../x",
        "a/b",
        "a\\b",
        "%2e%2e",
        "..",
        "x..y",
        ".hidden",
        "-x",
        "X",
        "x y",
        "x\x00",
        "a" * 65,
        "",
        "postgresql://h/d",
        "alice:../x",
        ":x",
    ],
)
def test_bad_references_are_refused_naming_the_parameter(ref):
    with pytest.raises(DatasetError, match="params.dataset"):
        parse_ref(ref, "bob")


def test_references_resolve_to_a_tenant_and_a_name():
    assert parse_ref("cu-al.v2", "bob") == DatasetRef("bob", "cu-al.v2")
    assert parse_ref("lab:a:cu", "bob") == DatasetRef("lab:a", "cu")


@pytest.mark.parametrize("tenant", ["../../etc", "Alice", "a/b", "lab a", "_x", ".", "a" * 64])
def test_tenant_folders_are_always_one_safe_component(tenant, tmp_path):
    folder = tenant_dir(tenant)
    assert "/" not in folder and ".." not in folder and folder not in (".", "")
    path = dataset_location(tmp_path, DatasetRef(tenant, "cu"))
    assert path == str((tmp_path / "datasets" / folder / "cu.db").resolve())
    assert tenant_dir("alice") == "alice" and tenant_dir("Alice") != tenant_dir("alice")


def test_a_link_out_of_the_datasets_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "data" / "datasets").mkdir(parents=True)
    (tmp_path / "data" / "datasets" / "eve").symlink_to(outside)
    with pytest.raises(DatasetError, match="resolves outside"):
        dataset_location(tmp_path / "data", DatasetRef("eve", "cu"))
    (tmp_path / "data" / "datasets" / "bob").mkdir()
    (tmp_path / "data" / "datasets" / "bob" / "cu.db").symlink_to(outside / "cu.db")
    with pytest.raises(DatasetError, match="resolves outside"):
        dataset_location(tmp_path / "data", DatasetRef("bob", "cu"))


def test_postgres_template_is_the_operators():
    url = dataset_location(
        "/unused", DatasetRef("Lab A", "cu"), "postgresql://db/ds_{tenant}_{name}"
    )
    assert url == f"postgresql://db/ds_{tenant_dir('Lab A')}_cu"
    with pytest.raises(ValueError, match="dataset_db must be a postgresql"):
        WorkerConfig(queue_url="sqlite:///q.db", data_dir="/d", dataset_db="/tmp/{name}.db")


def test_shares_grant_exactly_the_named_tenants(tmp_path):
    book = ShareBook(tmp_path)
    ref = DatasetRef("alice", "cu")
    with pytest.raises(DatasetForbidden, match="not shared with tenant 'bob'"):
        authorize("alice:cu", "bob", "user", book)
    assert book.set(ref, ["carol", "bob", "alice", "bob"]) == ["bob", "carol"]
    assert authorize("alice:cu", "bob", "user", book) == ref
    assert authorize("alice:cu", "ops", "admin", book) == ref
    assert [s["dataset"] for s in book.visible("bob")] == ["alice:cu"]
    assert book.visible("dave") == []
    with pytest.raises(DatasetForbidden):
        authorize("alice:other", "bob", "user", book)
    book.set(ref, [])
    assert book.visible(None) == []
    with pytest.raises(DatasetForbidden):
        authorize("alice:cu", "bob", "user", book)
