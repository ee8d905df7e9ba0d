"""Hostile model-management requests: bad names, hostile metadata, failed hot swaps and
concurrent writes are 4xx (or succeed) and leave the server and the store as they were."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from mlipserve.server.config import Settings
from tests.conftest import ServerThread
from tests.server.rest.test_models_management import CFG, META, artifact

DEEP = "[" * 30_000 + "]" * 30_000  # within the 64 KiB bound, far past the depth bound


@pytest.fixture(scope="module")
def store_server(tmp_path_factory):
    """A server with a model store holding cu v1 (the default) and v2."""
    srv = ServerThread(Settings(port=0, models=["lj"], data_dir=tmp_path_factory.mktemp("store")))
    http = httpx.Client(base_url=srv.rest_url, timeout=60)
    for seed in (1, 2):
        assert post(http, "cu", artifact(seed)).status_code == 201
    yield srv, http
    http.close()
    srv.stop()


def post(http: httpx.Client, name: str, data: bytes, meta=META) -> httpx.Response:
    text = meta if isinstance(meta, str) else json.dumps(meta)
    return http.post(
        f"/v1/models/{name}/versions",
        files={"artifact": ("m.safetensors", data)},
        data={"metadata": text},
    )


def healthy(http: httpx.Client) -> None:
    """The listing and an evaluation still work after a hostile request."""
    assert http.get("/v1/models").status_code == 200
    reply = http.post(
        "/v1/models/lj/evaluate",
        json={
            "systems": [{"positions": [[0, 0, 0], [3.8, 0, 0]], "numbers": [18, 18]}],
            "properties": ["energy"],
        },
    )
    assert reply.status_code == 200, reply.text


UPLOADS = [  # (id, name in the path, metadata, field the message must name)
    ("name-nul", "%00cu", META, "name"),
    ("name-300", "c" * 300, META, "name"),
    ("name-dotdot", "%2E%2E", META, "name"),
    ("metadata-100k-deep", "cu", "[" * 100_000 + "]" * 100_000, "metadata"),
    ("metadata-30k-deep", "cu", DEEP, "metadata"),
    (
        "metadata-deep-object",
        "cu",
        {**META, "metrics": json.loads('{"a":' * 40 + "1" + "}" * 40)},
        "metadata",
    ),
    ("metadata-not-json", "cu", "{family", "metadata"),
    ("metadata-list", "cu", [META], "metadata"),
    ("family-unknown", "cu", {**META, "family": "pickle"}, "metadata.family"),
    (
        "config-huge",
        "cu",
        {**META, "config": {**CFG.to_dict(), "features": 10**6}},
        "metadata.config.features",
    ),
    (
        "config-fractional",
        "cu",
        {**META, "config": {**CFG.to_dict(), "layers": 1.5}},
        "metadata.config.layers",
    ),
    (
        "config-too-many-parameters",
        "cu",
        {**META, "config": {**CFG.to_dict(), "features": 512}},
        "metadata.config",
    ),
    ("cutoff-string", "cu", {**META, "cutoff": "far"}, "metadata.cutoff"),
    (
        "cutoff-nan",
        "cu",
        json.dumps(META).replace('"cutoff": 4.0', '"cutoff": NaN'),
        "metadata.cutoff",
    ),
    ("created-string", "cu", {**META, "created": "yesterday"}, "metadata.created"),
    ("elements-zero", "cu", {**META, "elements": [0]}, "metadata.elements"),
    ("dtype-unknown", "cu", {**META, "dtype": "float8"}, "metadata.dtype"),
    ("trusted", "cu", {**META, "trusted": True}, "metadata.trusted"),
]


@pytest.mark.parametrize("name,meta,field", [u[1:] for u in UPLOADS], ids=[u[0] for u in UPLOADS])
def test_a_malformed_upload_is_422_naming_the_field(store_server, name, meta, field):
    _, http = store_server
    reply = post(http, name, artifact(3), meta)
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    assert detail.startswith((f"{field}:", f"{field}.")), detail
    assert len(detail) < 400
    healthy(http)
    assert [m["version"] for m in http.get("/v1/models/cu").json()["versions"]] == ["v1", "v2"]


@pytest.mark.parametrize(
    "name,target", [("cu-up", "../" * 12 + "etc/passwd"), ("cu-abs", "/etc/passwd")]
)
def test_metadata_cannot_point_the_download_outside_the_version(store_server, name, target):
    _, http = store_server
    data = artifact(4)
    reply = post(http, name, data, {**META, "artifacts": [target], "sha256": "0" * 64})
    assert reply.status_code == 201, reply.text
    assert http.get(f"/v1/models/{name}/versions/v1/download").content == data
    healthy(http)


@pytest.mark.parametrize(
    "method,path,status",
    [
        ("DELETE", "/v1/models/cu/versions/v99", 404),
        ("DELETE", "/v1/models/cu/versions/%00", 422),
        ("POST", "/v1/models/cu/versions/v99/load", 404),
        ("POST", "/v1/models/cu/versions/" + "v" * 300 + "/load", 422),
        ("POST", "/v1/models/cu/versions/v99/unload", 404),
        ("GET", "/v1/models/cu/versions/v99/download", 404),
        ("GET", "/v1/models/%00/versions/v1/download", 422),
        ("GET", "/v1/models/-x", 422),
    ],
)
def test_a_missing_or_malformed_version_is_a_4xx(store_server, method, path, status):
    _, http = store_server
    reply = http.request(method, path)
    assert reply.status_code == status, reply.text
    if status == 422:
        assert reply.json()["detail"].split(":")[0] in ("name", "version")
    healthy(http)


@pytest.mark.parametrize(
    "body",
    [{"version": ["v1"]}, {"version": "../v1"}, {"version": 3}, {}],
    ids=["list", "path", "number", "missing"],
)
def test_a_malformed_default_version_is_422(store_server, body):
    _, http = store_server
    reply = http.put("/v1/models/cu/default", json=body)
    assert reply.status_code == 422, reply.text
    assert "version" in json.dumps(reply.json()["detail"])
    healthy(http)


def test_concurrent_loads_and_uploads_of_one_model_all_succeed(store_server):
    _, http = store_server
    replies: list[httpx.Response] = []

    def call(fn):
        replies.append(fn())

    jobs = [lambda: http.post("/v1/models/cu/versions/v2/load") for _ in range(3)]
    jobs += [lambda: post(http, "cu-race", artifact(5)) for _ in range(3)]
    threads = [threading.Thread(target=call, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.status_code for r in replies) == [200] * 3 + [201] * 3, [
        r.text for r in replies
    ]
    versions = {r.json()["version"] for r in replies if r.status_code == 201}
    assert versions == {"v1", "v2", "v3"}
    assert http.post("/v1/models/cu/versions/v2/unload").status_code == 200


def test_a_failed_hot_swap_to_a_builtin_version_changes_nothing(tmp_path):
    srv = ServerThread(Settings(port=0, models=["lj"], data_dir=tmp_path))
    try:
        with httpx.Client(base_url=srv.rest_url, timeout=60) as http:
            assert post(http, "lj", artifact(6)).status_code == 201  # a stored lj v1
            assert http.put("/v1/models/lj/default", json={"version": "v1"}).status_code == 200
            reply = http.put("/v1/models/lj/default", json={"version": "builtin-1"})
            assert reply.status_code == 409, reply.text
            assert reply.json()["detail"].startswith("version:")
            assert "built-in" in reply.json()["detail"]
            assert srv.registry.default_version("lj") == "v1"
            assert srv.running.rest.config.app.state.store.default_version("lj") == "v1"
            shown = {
                m["version"]: m["is_default"] for m in http.get("/v1/models/lj").json()["versions"]
            }
            assert shown == {"v1": True, "builtin-1": False}
    finally:
        srv.stop()


def test_a_hot_swap_to_a_builtin_of_a_model_without_a_store_version_is_409(store_server):
    _, http = store_server
    reply = http.put("/v1/models/lj/default", json={"version": "builtin-1"})
    assert reply.status_code == 409 and "built-in" in reply.json()["detail"]
    healthy(http)
