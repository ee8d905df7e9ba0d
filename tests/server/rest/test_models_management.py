"""Model management over REST: upload, hot swap under load, load/unload, delete, download."""

from __future__ import annotations

import io
import json
import pickle
import threading
import time

import httpx
import pytest
import torch
from ase.build import bulk
from safetensors.torch import save

from mlipserve.client import Client
from mlipserve.server.config import Settings
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from tests.conftest import ServerThread

CFG = PaiNNConfig(cutoff=4.0, features=8, radial=6, layers=1, members=2, max_z=30)
META = {
    "family": "painn",
    "config": CFG.to_dict(),
    "cutoff": 4.0,
    "elements": [29],
    "ensemble_size": 2,
    "dtype": "float64",
}


def artifact(seed: int) -> bytes:
    torch.manual_seed(seed)
    return save({k: v.contiguous() for k, v in PaiNN(CFG).state_dict().items()})


def upload(http: httpx.Client, data: bytes, meta=META) -> httpx.Response:
    return http.post(
        "/v1/models/cu/versions",
        files={"artifact": ("m.safetensors", data)},
        data={"metadata": json.dumps(meta)},
    )


@pytest.fixture
def managed(tmp_path):
    srv = ServerThread(Settings(port=0, models=["lj"], data_dir=tmp_path))
    yield srv, httpx.Client(base_url=srv.rest_url, timeout=60)
    srv.stop()


def test_upload_refuses_pickles_and_wrong_shapes(managed):
    _, http = managed
    buf = io.BytesIO()
    torch.save(PaiNN(CFG).state_dict(), buf)
    reply = upload(http, buf.getvalue())
    assert reply.status_code == 422 and "refused" in reply.json()["detail"]
    reply = upload(http, pickle.dumps({"a": 1}))
    assert reply.status_code == 422 and "pickle" in reply.json()["detail"]
    wrong = {**META, "config": {**CFG.to_dict(), "features": 16}}
    reply = upload(http, artifact(0), wrong)
    assert reply.status_code == 422 and "does not fit" in reply.json()["detail"]
    assert upload(http, artifact(0), {"family": "painn"}).status_code == 422


def test_hot_swap_under_load_fails_no_request(managed):
    srv, http = managed
    versions = [upload(http, artifact(seed)).json()["version"] for seed in range(4)]
    assert versions == ["v1", "v2", "v3", "v4"]
    assert http.put("/v1/models/cu/default", json={"version": "v1"}).status_code == 200
    atoms = bulk("Cu", cubic=True)
    stop = threading.Event()
    seen, failures = [], []

    def client_loop():
        client = Client(srv.address, "cu")
        with client.stream() as session:
            while not stop.is_set():
                try:
                    seen.append(session.evaluate(atoms)["model_version"])
                except Exception as err:  # any failure is a test failure
                    failures.append(err)

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for t in threads:
        t.start()
    for version in versions[1:]:
        time.sleep(0.3)
        assert http.put("/v1/models/cu/default", json={"version": version}).status_code == 200
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(30)
    assert failures == []
    assert set(seen) == set(versions) and seen[-1] == "v4"
    listed = {m["version"]: m for m in http.get("/v1/models/cu").json()["versions"]}
    assert listed["v4"]["is_default"] and listed["v1"]["loaded"]


def test_load_unload_delete_download(managed):
    _, http = managed
    data = artifact(1)
    upload(http, data)
    upload(http, artifact(2))
    assert http.post("/v1/models/cu/versions/v2/load").json()["loaded"] is True
    assert http.delete("/v1/models/cu/versions/v2").status_code == 409  # loaded
    assert http.post("/v1/models/cu/versions/v2/unload").json()["loaded"] is False
    assert http.delete("/v1/models/cu/versions/v1").status_code == 409  # the default
    assert http.delete("/v1/models/cu/versions/v2").json()["deleted"] is True
    assert http.get("/v1/models/cu/versions/v1/download").content == data
    assert http.get("/v1/models/cu/versions/v9/download").status_code == 404
    assert http.put("/v1/models/cu/default", json={"version": "v9"}).status_code == 404
