"""/v1/status over real HTTP: figures move with real traffic, keys see their own tenant, the
page shell holds no data, and a harvest file is read tolerantly."""

from __future__ import annotations

import json

import httpx
import pytest
from ase.build import bulk

from mlipserve.client import Client
from mlipserve.server.auth import KeyStore
from mlipserve.server.config import Settings
from mlipserve.server.rest.status import ASSETS
from mlipserve.server.rest.status_data import read_harvest
from tests.conftest import ServerThread

CU = {
    "numbers": [29],
    "positions": [[0.0, 0.0, 0.0]],
    "cell": [[0, 1.8, 1.8], [1.8, 0, 1.8], [1.8, 1.8, 0]],
    "pbc": [True, True, True],
}
HARVEST = {
    "model": "lj",
    "enabled": True,
    "pool_size": 42,
    "per_tenant": {"lab-a": 30, "lab-b": 12},
    "rounds": [
        {"round": 2, "labels_total": 200, "heldout_force_mae_meV": 31.5, "promoted": True,
         "version": "v3", "time": "2026-12-03T10:00:00Z"},
        {"round": 1, "labels_total": 100, "heldout_force_mae_meV": 48.0, "promoted": False,
         "version": "v2", "time": "2026-12-03T09:00:00Z"},
        {"round": "not a number", "labels_total": 5},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    data = tmp_path_factory.mktemp("status")
    srv = ServerThread(Settings(port=0, models=["lj"], auth=True, data_dir=data, workers=0))
    keys = KeyStore(srv.settings.key_db_url)
    made = {
        "a": keys.create("user", "lab-a")[1],
        "b": keys.create("user", "lab-b")[1],
        "admin": keys.create("admin", "ops")[1],
    }
    clients = {
        who: httpx.Client(base_url=srv.rest_url, headers={"authorization": f"Bearer {k}"})
        for who, k in made.items()
    }
    yield srv, made, clients
    for c in clients.values():
        c.close()
    srv.stop()


def status(client: httpx.Client, **params) -> dict:
    reply = client.get("/v1/status", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_without_a_key_the_json_is_401_and_the_page_holds_no_data(lab):
    srv, _, _ = lab
    with httpx.Client(base_url=srv.rest_url) as anon:
        assert anon.get("/v1/status").status_code == 401
        page = anon.get("/status")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'id="login"' in page.text and "lj" not in page.text and "lab-a" not in page.text
        for name in ASSETS:
            asset = anon.get(f"/status/{name}")
            assert asset.status_code == 200 and len(asset.content) > 500, name
        assert "v1.6.32" in anon.get("/status/uPlot.iife.min.js").text[:80]
        assert anon.get("/status/../v1/status").status_code == 401  # nothing else is public
        assert anon.get("/status/secret.js").status_code == 401


def test_traffic_moves_the_figures_and_each_user_sees_only_its_tenant(lab):
    srv, keys, http = lab
    before = status(http["admin"])
    lj = next(m for m in before["models"] if m["name"] == "lj")
    assert lj["replica"] == srv.address and lj["default"] and lj["queue_depth"] == 0
    assert lj["window"] == {} and before["tenants"] == {}  # no traffic yet on this server
    ar = bulk("Ar", "fcc", a=5.3, cubic=True)  # 4 atoms
    with Client(srv.address, "lj", api_key=keys["a"]) as client:
        for _ in range(3):
            client.evaluate(ar)
        client.evaluate([ar, ar])  # one request of two systems: one batch of 2 systems, 8 atoms
    with Client(srv.address, "lj", api_key=keys["b"]) as client:
        client.evaluate(ar * (2, 1, 1))
    doc = status(http["admin"])
    lj = next(m for m in doc["models"] if m["name"] == "lj")
    w = lj["window"]
    assert (w["requests"], w["batches"], w["requests_per_batch"]) == (5, 5, 1.0)
    assert w["systems_per_batch"] == pytest.approx(6 / 5)
    assert w["atoms_per_batch"] == pytest.approx((3 * 4 + 8 + 8) / 5)
    assert lj["requests_total"] >= 5 and lj["requests_by_status"]["OK"] >= 5  # process-wide
    assert 0 < w["p50_ms"] <= w["p99_ms"]
    tenants = doc["tenants"]
    assert tenants["lab-a"]["requests"] == 4 and tenants["lab-b"]["requests"] == 1
    assert tenants["lab-a"]["atoms"] == 20 and tenants["lab-b"]["atoms"] == 8
    assert tenants["lab-a"]["share"] + tenants["lab-b"]["share"] == pytest.approx(1.0)
    assert sum(doc["series"]["requests"]) >= 5 and len(doc["series"]["t"]) == 120
    mine = status(http["a"])
    assert set(mine["tenants"]) == {"lab-a"}
    assert mine["caller"] == {"tenant": "lab-a", "role": "user"}
    assert mine["tenants"]["lab-a"]["share"] == pytest.approx(tenants["lab-a"]["share"])


def test_jobs_show_with_their_state_to_their_tenant_and_admins(lab):
    _, _, http = lab
    params = {"structures": [CU], "dataset": "cu", "labeller": "emt"}
    job = http["a"].post("/v1/jobs", json={"kind": "label", "params": params}).json()
    shown = {j["id"]: j for j in status(http["a"])["queue"]["jobs"]}
    assert shown[job["id"]]["state"] == "queued" and shown[job["id"]]["owner"] == "lab-a"
    assert job["id"] not in {j["id"] for j in status(http["b"])["queue"]["jobs"]}
    admin = status(http["admin"])["queue"]
    assert job["id"] in {j["id"] for j in admin["jobs"]} and admin["queue_length"] >= 1
    http["a"].post(f"/v1/jobs/{job['id']}/cancel")
    shown = {j["id"]: j for j in status(http["a"])["queue"]["jobs"]}
    assert shown[job["id"]]["state"] == "cancelled"
    assert status(http["a"])["queue"]["counts"]["label"]["cancelled"] >= 1


def test_harvest_file_shows_pool_and_curve_and_per_tenant_counts_stay_private(lab):
    srv, _, http = lab
    folder = srv.settings.model_store_dir / "_harvest"
    folder.mkdir(parents=True, exist_ok=True)
    assert status(http["admin"])["harvest"] == [
        {"model": "lj", "enabled": False, "pool_size": 0, "per_tenant": {}, "rounds": [],
         "error": None}
    ]  # fmt: skip
    (folder / "lj.json").write_text(json.dumps(HARVEST))
    lj = status(http["admin"])["harvest"][0]
    assert (lj["enabled"], lj["pool_size"], lj["per_tenant"]) == (True, 42, HARVEST["per_tenant"])
    assert [(r["labels_total"], r["heldout_force_mae_meV"]) for r in lj["rounds"]] == [
        (100, 48.0),
        (200, 31.5),
    ]  # sorted by labels; the malformed round dropped
    assert status(http["b"])["harvest"][0]["per_tenant"] == {"lab-b": 12}
    (folder / "other.json").write_text("{not json")
    other = next(h for h in status(http["admin"])["harvest"] if h["model"] == "other")
    assert other["enabled"] is False and "other.json unreadable" in other["error"]


def test_a_bad_window_is_422_naming_it(lab):
    _, _, http = lab
    reply = http["admin"].get("/v1/status", params={"window_s": 0})
    assert reply.status_code == 422 and "window_s" in reply.text


def test_read_harvest_is_tolerant(tmp_path):
    assert read_harvest(tmp_path / "missing.json")["enabled"] is False
    (tmp_path / "list.json").write_text("[1, 2]")
    assert "unreadable" in read_harvest(tmp_path / "list.json")["error"]
    (tmp_path / "partial.json").write_text('{"enabled": true, "pool_size": 7, "extra": 1}')
    partial = read_harvest(tmp_path / "partial.json")
    assert (partial["enabled"], partial["pool_size"], partial["rounds"]) == (True, 7, [])
