"""The REST API beside gRPC: health, readiness, metrics, models, msgpack/JSON evaluate."""

from __future__ import annotations

import httpx
import msgpack
import numpy as np
import pytest
from ase.build import bulk

from mlipserve.client import Client
from mlipserve.server.models.builtin import lennard_jones
from mlipserve.server.serving.local import LocalProvider


def argon():
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True)
    atoms.rattle(0.05, seed=2)
    return atoms


def test_health_ready_and_models(server):
    with httpx.Client(base_url=server.rest_url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        models = {m["name"]: m for m in http.get("/v1/models").json()}
        assert models["lj-ensemble"]["ensemble_size"] == 4
        assert http.get("/v1/models/lj").json()["versions"][0]["version"] == "builtin-1"
        assert http.get("/v1/models/nope").status_code == 404
        assert "/v1/models/{name}/evaluate" in http.get("/openapi.json").json()["paths"]


def test_metrics_count_requests_and_batches(server):
    Client(server.address, "morse").evaluate(bulk("Cu", cubic=True))
    with httpx.Client(base_url=server.rest_url) as http:
        text = http.get("/metrics").text
    assert 'mlipserve_requests_total{method="Evaluate",model="morse",status="OK"}' in text
    assert 'mlipserve_batch_atoms_count{model="morse"}' in text
    assert "mlipserve_loaded_models" in text


@pytest.mark.parametrize("binary", [True, False])
def test_evaluate_msgpack_and_json_match_grpc(server, binary):
    atoms = argon()
    if binary:

        def arr(a, dtype):
            a = np.ascontiguousarray(a, dtype=dtype)
            return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}

        system = {
            "positions": arr(atoms.positions, "<f8"),
            "numbers": arr(atoms.numbers, "<i4"),
            "cell": arr(atoms.cell.array, "<f8"),
            "pbc": [True] * 3,
        }
        body = msgpack.packb({"systems": [system], "properties": ["energy", "forces"]})
        headers = {"content-type": "application/msgpack"}
    else:
        system = {
            "positions": atoms.positions.tolist(),
            "numbers": atoms.numbers.tolist(),
            "cell": atoms.cell.array.tolist(),
            "pbc": [True] * 3,
        }
        body = __import__("json").dumps({"systems": [system], "properties": ["energy", "forces"]})
        headers = {"content-type": "application/json"}
    reply = httpx.post(f"{server.rest_url}/v1/models/lj/evaluate", content=body, headers=headers)
    assert reply.status_code == 200, reply.text
    data = msgpack.unpackb(reply.content) if binary else reply.json()
    res = data["results"][0]
    forces = (
        np.frombuffer(res["forces"]["data"]).reshape(res["forces"]["shape"])
        if binary
        else np.array(res["forces"])
    )
    ref = LocalProvider(lennard_jones()).evaluate([atoms])[0]
    assert res["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    assert np.allclose(forces, ref["forces"], atol=1e-12)
    assert data["model_version"] == "builtin-1"


@pytest.mark.parametrize(
    "body,fragment",
    [
        (
            {"systems": [{"positions": [[0, 0, 0]], "numbers": [0]}], "properties": ["energy"]},
            "atomic number 0",
        ),
        (
            {"systems": [{"positions": [[0, 0]], "numbers": [18]}], "properties": ["energy"]},
            "positions: shape (1, 2)",
        ),
        (
            {"systems": [{"positions": [[0, 0, "x"]], "numbers": [18]}], "properties": ["energy"]},
            "not a numeric array",
        ),
        ({"systems": [], "properties": ["energy"]}, "no system"),
        (
            {"systems": [{"positions": [[0, 0, 0]], "numbers": [18]}], "properties": []},
            "none requested",
        ),
        ([1, 2, 3], "an object"),
    ],
)
def test_rest_bad_input_is_a_4xx_naming_the_field(server, body, fragment):
    reply = httpx.post(f"{server.rest_url}/v1/models/lj/evaluate", json=body)
    assert reply.status_code == 422
    assert fragment in reply.json()["detail"]


def test_rest_undecodable_body_is_400(server):
    reply = httpx.post(
        f"{server.rest_url}/v1/models/lj/evaluate",
        content=b"\xc1\xff",
        headers={"content-type": "application/msgpack"},
    )
    assert reply.status_code == 400
