"""/v1/jobs over real HTTP with auth on: tenants see their own jobs, admin kinds, validation.

Also: only operator-enabled labellers and bounded settings, dataset names that are never
paths, per-tenant datasets that only an admin shares; jobs then run on a real worker.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones

from mlipserve.server.auth import KeyStore
from mlipserve.server.config import Settings
from mlipserve.server.dataset import Dataset
from mlipserve.server.queue.worker import Worker
from tests.cli.test_cli import cli
from tests.conftest import ServerThread

CU = {
    "numbers": [29],
    "positions": [[0.0, 0.0, 0.0]],
    "cell": [[0, 1.8, 1.8], [1.8, 0, 1.8], [1.8, 1.8, 0]],
    "pbc": [True, True, True],
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    data = tmp_path_factory.mktemp("jobs")
    srv = ServerThread(Settings(port=0, models=["lj"], auth=True, data_dir=data))
    keys = KeyStore(srv.settings.key_db_url)
    keys_by_role = {
        "a": keys.create("user", "lab-a")[1],
        "b": keys.create("user", "lab-b")[1],
        "admin": keys.create("admin", "ops")[1],
    }
    clients = {
        who: httpx.Client(
            base_url=srv.rest_url, headers={"authorization": f"Bearer {key}"}, timeout=30
        )
        for who, key in keys_by_role.items()
    }
    yield clients
    for c in clients.values():
        c.close()
    srv.stop()


def test_user_submits_and_sees_only_own_jobs(lab):
    reply = lab["a"].post(
        "/v1/jobs",
        json={"kind": "label", "params": {"structures": [CU], "dataset": "cu", "labeller": "emt"}},
    )
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
    reply = lab["admin"].post(
        "/v1/jobs", json={"kind": "retrain", "params": {"model": "x", "dataset": "cu"}}
    )
    assert reply.status_code == 201, reply.text


@pytest.mark.parametrize(
    "params, message",
    [
        ({"dataset": "cu"}, "params.structures must be a non-empty list"),
        ({"structures": [CU]}, "params.dataset"),
        ({"structures": ["x"], "dataset": "cu"}, "params.structures[0] must be an object"),
        (
            {"structures": [{"numbers": [29], "positions": [[0, 0]]}], "dataset": "cu"},
            "params.structures[0]: malformed structure",
        ),
        ({"structures": [{**CU, "positions": [[float("nan"), 0, 0]]}], "dataset": "cu"}, None),
    ],
)
def test_bad_label_jobs_are_refused_with_a_reason(lab, params, message):
    body = json.dumps({"kind": "label", "params": params})  # NaN as JSON's NaN literal
    reply = lab["a"].post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert reply.status_code in (400, 422), reply.text
    if message:
        assert message in str(reply.json()["detail"])


def test_unknown_kind_and_limits(lab):
    assert lab["a"].post("/v1/jobs", json={"kind": "rm -rf", "params": {}}).status_code == 422
    assert (
        lab["a"]
        .post("/v1/jobs", json={"kind": "label", "max_attempts": 0, "params": {}})
        .status_code
        == 422
    )
    assert lab["a"].get("/v1/jobs/unknown").status_code == 404


LJ = "ase:ase.calculators.lj.LennardJones"


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    """A server whose operator enabled LJ (rc fixed, sigma settable) with the CLI; tenants
    lab-a and lab-b, an admin; `worker()` runs the next queued job on a real worker."""
    data = tmp_path_factory.mktemp("ops")
    enabled = cli(
        "labellers",
        "enable",
        LJ,
        "--store",
        str(data / "models"),
        "--fixed",
        '{"rc": 5.0}',
        "--user",
        '{"sigma": {"type": "float", "min": 1.5, "max": 3.0}}',
    )
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    srv = ServerThread(Settings(port=0, models=["lj"], auth=True, data_dir=data, workers=0))
    keys = KeyStore(srv.settings.key_db_url)
    clients = {
        who: httpx.Client(
            base_url=srv.rest_url,
            timeout=30,
            headers={"authorization": f"Bearer {keys.create(role, tenant)[1]}"},
        )
        for who, role, tenant in (
            ("a", "user", "lab-a"),
            ("b", "user", "lab-b"),
            ("admin", "admin", "ops"),
        )
    }
    worker = Worker(srv.settings.worker_config())

    def run_until_final(job_id: str) -> dict:
        for _ in range(20):  # items of earlier (cancelled) jobs come first
            worker.run(max_jobs=1)
            job = clients["admin"].get(f"/v1/jobs/{job_id}").json()
            if job["state"] in ("done", "failed", "cancelled"):
                return job
        raise AssertionError(f"job {job_id} never ran")

    clients["run"] = run_until_final
    clients["data"] = data
    yield clients
    for who in ("a", "b", "admin"):
        clients[who].close()
    srv.stop()


def label(client, dataset, labeller="emt", settings=None, structures=None):
    params = {"structures": structures or [CU], "dataset": dataset, "labeller": labeller}
    if settings is not None:
        params["settings"] = settings
    return client.post("/v1/jobs", json={"kind": "label", "params": params})


@pytest.mark.parametrize("who", ["a", "admin"])
def test_no_key_can_run_an_import_path_labeller(ops, tmp_path, who):
    marker = tmp_path / "pwned"
    reply = label(ops[who], "x", "ase:subprocess.Popen", {"args": ["touch", str(marker)]})
    assert reply.status_code == 403, reply.text
    assert "params.labeller 'ase:subprocess.Popen' is not enabled" in reply.json()["detail"]
    assert ops[who].get("/v1/jobs", params={"state": "queued"}).json() == []
    assert not marker.exists()


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"rc": 50.0}, "params.settings.rc is set by the server's operator"),
        ({"sigma": 9.0}, "params.settings.sigma must be in [1.5, 3]"),
        ({"epsilon": 1.0}, "params.settings.epsilon is not a setting jobs may choose"),
        ({"directory": "/tmp"}, "params.settings.directory is not a setting"),
    ],
)
def test_enabled_import_path_refuses_settings_the_operator_did_not_allow(ops, settings, message):
    reply = label(ops["a"], "lj", LJ, settings)
    assert reply.status_code == 422 and message in reply.json()["detail"], reply.text


def test_enabled_import_path_labels_with_allowed_settings(ops):
    dimer = {"numbers": [18, 18], "positions": [[0, 0, 0], [0, 0, 3.0]]}
    reply = label(ops["a"], "lj", LJ, {"sigma": 2.5}, [dimer])
    assert reply.status_code == 201, reply.text
    job = ops["run"](reply.json()["id"])
    assert job["state"] == "done", job
    with Dataset(ops["data"] / "datasets" / "lab-a" / "lj.db") as data:
        (row,) = data.rows()
    atoms = Atoms("Ar2", positions=dimer["positions"])
    atoms.calc = LennardJones(sigma=2.5, rc=5.0)
    assert np.isclose(row.get_potential_energy(), atoms.get_potential_energy(), rtol=1e-12)


@pytest.mark.parametrize(
    "dataset",
    [
        "/tmp/x.db",
        "../x",
        "a/b",
        "%2e%2e",
        "..",
        "x/../y",
        "postgresql://db.example/x",
        "sqlite:///tmp/x.db",
        "X",
        "a" * 65,
        "",
    ],
)
def test_dataset_names_are_never_paths(ops, dataset):
    reply = label(ops["a"], dataset)
    assert reply.status_code == 422, reply.text
    assert "params.dataset" in reply.json()["detail"]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"structures": [CU] * 1001, "dataset": "cu"}, "at most 1000 per label job"),
        (
            {
                "structures": [{"numbers": [29] * 20001, "positions": [[0, 0, 0]] * 20001}],
                "dataset": "cu",
            },
            "1 to 20000 per structure",
        ),
        ({"structures": [{**CU, "numbers": [0]}], "dataset": "cu"}, "atomic numbers must be in"),
        (
            {
                "structures": [CU],
                "dataset": "cu",
                "labeller": "pyscf",
                "settings": {"basis": "/etc/basis.nw"},
            },
            "params.settings.basis must be one of",
        ),
        ({"structures": [CU], "dataset": "cu", "extra": 1}, "params.extra"),
    ],
)
def test_label_sizes_and_builtin_settings_are_bounded(ops, params, message):
    reply = ops["a"].post("/v1/jobs", json={"kind": "label", "params": params})
    assert reply.status_code == 422 and message in reply.json()["detail"], reply.text


def test_admin_retrain_params_are_checked(ops):
    for params, message in (
        ({"model": "../x", "dataset": "cu"}, "params.model"),
        ({"model": "cu", "dataset": "/srv/x.db"}, "params.dataset"),
        ({"model": "cu", "dataset": "cu", "epochs": 10**8}, "params.epochs"),
        ({"model": "cu", "dataset": "cu", "lr": float("inf")}, "params.lr"),
    ):
        reply = ops["admin"].post(
            "/v1/jobs",
            content=json.dumps({"kind": "retrain", "params": params}),
            headers={"content-type": "application/json"},
        )
        assert reply.status_code == 422 and message in reply.json()["detail"], reply.text
    reply = ops["admin"].post(
        "/v1/jobs",
        json={
            "kind": "promote",
            "params": {"model": "cu", "candidate": "v2", "holdout": "lab-a:held"},
        },
    )
    assert reply.status_code == 201  # admins may use any tenant's dataset
    ops["admin"].post(f"/v1/jobs/{reply.json()['id']}/cancel")


def test_tenants_use_only_their_own_datasets_until_an_admin_shares(ops):
    first = label(ops["a"], "shared-cu")
    assert first.status_code == 201 and ops["run"](first.json()["id"])["state"] == "done"
    for kind, params in (
        ("label", {"structures": [CU], "dataset": "lab-a:shared-cu"}),
        ("retrain", {"model": "cu", "dataset": "lab-a:shared-cu"}),
        ("evaluate", {"model": "cu", "candidate": "v2", "holdout": "lab-a:shared-cu"}),
    ):
        reply = ops["b"].post("/v1/jobs", json={"kind": kind, "params": params})
        assert reply.status_code == 403, reply.text
    reply = label(ops["b"], "lab-a:shared-cu")
    assert (
        "dataset 'shared-cu' of tenant 'lab-a' is not shared with tenant 'lab-b'"
        in reply.json()["detail"]
    )
    path = "/v1/datasets/shares/lab-a/shared-cu"
    assert ops["a"].put(path, json={"tenants": ["lab-a", "lab-b"]}).status_code == 403
    assert ops["b"].get("/v1/datasets/shares").json() == []
    assert ops["admin"].put("/v1/datasets/shares/lab-a/%2e%2e", json={}).status_code == 422
    shared = ops["admin"].put(path, json={"tenants": ["lab-b"]})
    assert shared.status_code == 200 and shared.json()["shared_with"] == ["lab-b"]
    assert [s["dataset"] for s in ops["b"].get("/v1/datasets/shares").json()] == ["lab-a:shared-cu"]
    other = {**CU, "positions": [[0.1, 0.0, 0.0]]}
    reply = label(ops["b"], "lab-a:shared-cu", structures=[other])
    assert reply.status_code == 201, reply.text
    assert ops["run"](reply.json()["id"])["state"] == "done"
    with Dataset(ops["data"] / "datasets" / "lab-a" / "shared-cu.db") as data:
        assert data.count() == 2
    assert not (ops["data"] / "datasets" / "lab-b" / "shared-cu.db").exists()
    assert ops["admin"].put(path, json={"tenants": []}).json()["shared_with"] == []
    assert label(ops["b"], "lab-a:shared-cu").status_code == 403
