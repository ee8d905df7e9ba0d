"""/v1/jobs over real HTTP with auth on: tenants see their own jobs, admin kinds, validation."""

from __future__ import annotations

import json

import httpx
import pytest
from mlipserve.server.auth import KeyStore
from mlipserve.server.config import Settings

from tests.conftest import ServerThread

CU = {"numbers": [29], "positions": [[0.0, 0.0, 0.0]], "cell": [[0, 1.8, 1.8], [1.8, 0, 1.8],
                                                                  [1.8, 1.8, 0]],
      "pbc": [True, True, True]}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    data = tmp_path_factory.mktemp("jobs")
    srv = ServerThread(Settings(port=0, models=["lj"], auth=True, data_dir=data))
    keys = KeyStore(srv.settings.key_db_url)
    keys_by_role = {"a": keys.create("user", "lab-a")[1], "b": keys.create("user", "lab-b")[1],
                    "admin": keys.create("admin", "ops")[1]}
    clients = {who: httpx.Client(base_url=srv.rest_url,
                                 headers={"authorization": f"Bearer {key}"}, timeout=30)
               for who, key in keys_by_role.items()}
    yield clients
    for c in clients.values():
        c.close()
    srv.stop()


def test_user_submits_and_sees_only_own_jobs(lab):
    reply = lab["a"].post("/v1/jobs", json={"kind": "label", "params": {
        "structures": [CU], "dataset": "cu", "labeller": "emt"}})
    assert reply.status_code == 201, reply.text
    job = reply.json()
    assert job["owner"] == "lab-a" and job["state"] == "queued" and "params" not in job
    assert lab["a"].get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]
    shown = lab["a"].get(f"/v1/jobs/{job['id']}", params={"params": True}).json()
    assert shown["params"]["structures"][0]["numbers"] == [29]
    assert job["id"] in [j["id"] for j in lab["a"].get("/v1/jobs").json()]
    assert job["id"] not in [j["id"] for j in lab["b"].get("/v1/jobs").json()]
    assert lab["b"].get(f"/v1/jobs/{job['id']}").status_code == 404
    assert lab["b"].post(f"/v1/jobs/{job['id']}/cancel").status_code == 404
    assert job["id"] in [j["id"] for j in lab["admin"].get("/v1/jobs").json()]
    assert lab["a"].post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
    assert lab["a"].get("/v1/jobs", params={"state": "cancelled"}).json()[0]["id"] == job["id"]


def test_model_changing_jobs_need_admin(lab):
    for kind in ("retrain", "evaluate", "promote"):
        reply = lab["a"].post("/v1/jobs", json={"kind": kind, "params": {"model": "x"}})
        assert reply.status_code == 403 and kind in reply.json()["detail"]
    reply = lab["admin"].post("/v1/jobs", json={"kind": "retrain", "params": {"model": "x"}})
    assert reply.status_code == 201


@pytest.mark.parametrize("params, message", [
    ({"dataset": "cu"}, "params.structures must be a non-empty list"),
    ({"structures": [CU]}, "params.dataset"),
    ({"structures": ["x"], "dataset": "cu"}, "params.structures[0] must be an object"),
    ({"structures": [{"numbers": [29], "positions": [[0, 0]]}], "dataset": "cu"},
     "params.structures[0]: malformed structure"),
    ({"structures": [{**CU, "positions": [[float("nan"), 0, 0]]}], "dataset": "cu"}, None),
])
def test_bad_label_jobs_are_refused_with_a_reason(lab, params, message):
    body = json.dumps({"kind": "label", "params": params})  # NaN as JSON's NaN literal
    reply = lab["a"].post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert reply.status_code in (400, 422), reply.text
    if message:
        assert message in str(reply.json()["detail"])


def test_unknown_kind_and_limits(lab):
    assert lab["a"].post("/v1/jobs", json={"kind": "rm -rf", "params": {}}).status_code == 422
    assert lab["a"].post("/v1/jobs", json={"kind": "label", "max_attempts": 0,
                                           "params": {}}).status_code == 422
    assert lab["a"].get("/v1/jobs/unknown").status_code == 404
