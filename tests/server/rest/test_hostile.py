"""Hostile REST requests: the key is checked before the body is read, bodies are capped, and
every malformed value is a 4xx naming its field (never a 500); the server answers after each."""

from __future__ import annotations

import json
import socket
import time

import httpx
import msgpack
import pytest

from mlipserve.server.auth import KeyStore
from mlipserve.server.config import Settings
from tests.conftest import ServerThread

MB = 1 << 20
LIMITS = {"max_atoms_per_request": 1_000, "max_systems_per_request": 10}  # a ~1.1 MB body cap
SYSTEM = {"positions": [[0, 0, 0], [3.8, 0, 0]], "numbers": [18, 18]}
GOOD = {"systems": [SYSTEM], "properties": ["energy"]}


def early_answer(
    port: int,
    path: str,
    declared: int,
    headers: dict[str, str] | None = None,
    sent: int = 64 * 1024,
    method: str = "POST",
) -> tuple[int, dict, float]:
    """Declare a body of `declared` bytes, send only `sent` of them, and read the answer the
    server gives without the rest: (status, JSON body, seconds). A server that waits for the
    whole body never answers, and the read times out."""
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: test",
        f"Content-Length: {declared}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        start_of_body = PART if "multipart" in str(headers) else b""  # a well-formed start
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + start_of_body + b"\0" * sent)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(
            next(
                l.split(b":")[1]
                for l in head.split(b"\r\n")
                if l.lower().startswith(b"content-length")
            )
        )
        while len(body) < length:
            body += sock.recv(65536)
    status = int(head.split(b" ")[1])
    return status, json.loads(body), time.perf_counter() - start


def still_serves(srv: ServerThread, key: str | None = None) -> None:
    """A good evaluation still answers 200 after a hostile request."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    reply = httpx.post(f"{srv.rest_url}/v1/models/lj/evaluate", json=GOOD, headers=headers)
    assert reply.status_code == 200, reply.text


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A server with auth on, small request limits and a 1 MiB upload limit; a user key."""
    data = tmp_path_factory.mktemp("hostile-auth")
    srv = ServerThread(
        Settings(port=0, models=["lj"], auth=True, data_dir=data, max_upload_mb=1, **LIMITS)
    )
    _, user = KeyStore(srv.settings.key_db_url).create("user", "lab-h")
    yield srv, user
    srv.stop()


MULTIPART = {"content-type": "multipart/form-data; boundary=b0undary"}
PART = (
    b'--b0undary\r\nContent-Disposition: form-data; name="artifact"; filename="m.safetensors"'
    b"\r\nContent-Type: application/octet-stream\r\n\r\n"
)
NO_KEY = [  # route, headers: every one answers 401 before a byte of its 300 MB body is read
    ("/v1/models/cu/versions", MULTIPART),
    ("/v1/models/lj/evaluate", {"content-type": "application/msgpack"}),
    ("/v1/jobs", {"content-type": "application/json"}),
    ("/v1/models/lj/versions/v1/load", {}),
]


@pytest.mark.parametrize("path,headers", NO_KEY, ids=[p for p, _ in NO_KEY])
@pytest.mark.parametrize(
    "key", [None, "Bearer mls_nope_nope", "Basic abc"], ids=["no-key", "unknown-key", "not-bearer"]
)
def test_a_large_body_without_a_valid_key_is_401_before_it_is_read(secured, path, headers, key):
    srv, user = secured
    headers = {**headers, **({"authorization": key} if key else {})}
    status, body, seconds = early_answer(srv.running.rest_port, path, 300 * MB, headers)
    assert status == 401, body
    assert "key" in body["detail"] or "authorization" in body["detail"]
    assert seconds < 5
    still_serves(srv, user)


def test_jobs_without_a_key_is_401_not_422(secured):
    srv, user = secured
    for body in ("{not json", "[" * 100_000, "{}", '{"kind": "nope"}', '{"kind": "label"}'):
        reply = httpx.post(
            f"{srv.rest_url}/v1/jobs", content=body, headers={"content-type": "application/json"}
        )
        assert reply.status_code == 401, reply.text
        assert reply.headers["www-authenticate"] == "Bearer"
    still_serves(srv, user)


@pytest.mark.parametrize(
    "path,headers,declared",
    [
        ("/v1/models/lj/evaluate", {"content-type": "application/msgpack"}, 400 * MB),
        ("/v1/jobs", {"content-type": "application/json"}, 2 * MB),
        ("/v1/models/cu/versions", MULTIPART, 3 * MB),  # the upload cap: 1 MiB + framing
    ],
    ids=["evaluate", "jobs", "upload"],
)
def test_a_content_length_over_the_cap_is_413_before_the_body_is_read(
    secured, path, headers, declared
):
    srv, user = secured
    headers = {**headers, "authorization": f"Bearer {user}"}
    status, body, seconds = early_answer(srv.running.rest_port, path, declared, headers)
    assert status == 413, body
    assert "exceeds this route's limit" in body["detail"] and seconds < 5
    still_serves(srv, user)


def test_a_chunked_body_over_the_cap_is_cut_with_413(secured):
    srv, user = secured
    sent = []

    def chunks():
        for _ in range(200):  # 200 MB if nobody stops it; the cap is ~1.1 MB
            sent.append(MB)
            yield b"\x91" + b"\0" * (MB - 1)

    try:
        reply = httpx.post(
            f"{srv.rest_url}/v1/models/lj/evaluate",
            content=chunks(),
            timeout=30,
            headers={"content-type": "application/msgpack", "authorization": f"Bearer {user}"},
        )
        assert reply.status_code == 413, reply.text
        assert "exceeds this route's limit" in reply.json()["detail"]
    except httpx.WriteError:
        pass  # the server answered 413 and closed the connection while the client still sent
    assert len(sent) < 200
    still_serves(srv, user)


def test_an_upload_under_the_cap_with_a_user_key_is_still_refused_by_role(secured):
    srv, user = secured
    reply = httpx.post(
        f"{srv.rest_url}/v1/models/cu/versions",
        files={"artifact": ("m.safetensors", b"\0" * 1000)},
        data={"metadata": "{}"},
        headers={"authorization": f"Bearer {user}"},
    )
    assert reply.status_code == 403


def test_healthz_needs_no_key(secured):
    srv, _ = secured
    assert httpx.get(f"{srv.rest_url}/healthz").status_code == 200
    assert httpx.get(f"{srv.rest_url}/readyz").status_code == 401


def array(dtype: str, shape, data: bytes) -> dict:
    return {"dtype": dtype, "shape": shape, "data": data}


POSITIONS = b"\0" * 48
EVALUATE = [  # (id, body, msgpack?, field the message must name)
    ("version-list", {**GOOD, "version": ["builtin-1"]}, False, "version"),
    ("version-path", {**GOOD, "version": "../../etc"}, False, "version"),
    ("properties-number", {**GOOD, "properties": 5}, False, "properties"),
    ("properties-objects", {**GOOD, "properties": [{"a": 1}]}, False, "properties"),
    ("systems-number", {"systems": 7, "properties": ["energy"]}, False, "systems"),
    (
        "numbers-float",
        {**GOOD, "systems": [{**SYSTEM, "numbers": [29.7, 18]}]},
        False,
        "systems[0].numbers",
    ),
    (
        "numbers-bool",
        {**GOOD, "systems": [{**SYSTEM, "numbers": [True, True]}]},
        False,
        "systems[0].numbers",
    ),
    (
        "positions-strings",
        {**GOOD, "systems": [{**SYSTEM, "positions": [["0", "0", "0"]] * 2}]},
        False,
        "systems[0].positions",
    ),
    (
        "pbc-strings",
        {**GOOD, "systems": [{**SYSTEM, "pbc": ["no", "no", "no"]}]},
        False,
        "systems[0].pbc",
    ),
    ("priority-superscript", {**GOOD, "priority": "²"}, False, "priority"),
    ("priority-list", {**GOOD, "priority": [1]}, False, "priority"),
    (
        "shape-negative",
        {
            **GOOD,
            "systems": [{"positions": array("<f8", [-2, -3], POSITIONS), "numbers": [18, 18]}],
        },
        True,
        "positions.shape",
    ),
    (
        "shape-fractional",
        {
            **GOOD,
            "systems": [{"positions": array("<f8", [1.5, 4], POSITIONS), "numbers": [18, 18]}],
        },
        True,
        "positions.shape",
    ),
    (
        "shape-string",
        {**GOOD, "systems": [{"positions": array("<f8", "23", POSITIONS), "numbers": [18, 18]}]},
        True,
        "positions.shape",
    ),
    (
        "shape-bytes-mismatch",
        {**GOOD, "systems": [{"positions": array("<f8", [3, 3], POSITIONS), "numbers": [18, 18]}]},
        True,
        "positions.data",
    ),
    (
        "dtype-list",
        {
            **GOOD,
            "systems": [{"positions": array(["<f8"], [2, 3], POSITIONS), "numbers": [18, 18]}],
        },
        True,
        "positions.dtype",
    ),
    (
        "numbers-float-array",
        {**GOOD, "systems": [{**SYSTEM, "numbers": array("<f8", [2], b"\0" * 16)}]},
        True,
        "systems[0].numbers",
    ),
]


@pytest.mark.parametrize(
    "body,binary,field", [c[1:] for c in EVALUATE], ids=[c[0] for c in EVALUATE]
)
def test_a_malformed_evaluate_value_is_422_naming_the_field(server, body, binary, field):
    content = msgpack.packb(body) if binary else json.dumps(body)
    kind = "application/msgpack" if binary else "application/json"
    reply = httpx.post(
        f"{server.rest_url}/v1/models/lj/evaluate", content=content, headers={"content-type": kind}
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"].startswith(field) or f"{field}:" in reply.json()["detail"]
    still_serves(server)


@pytest.mark.parametrize(
    "path,status",
    [
        ("/v1/models/%00lj/evaluate", 422),
        ("/v1/models/" + "x" * 300 + "/evaluate", 422),
        ("/v1/models/-lj/evaluate", 422),
        ("/v1/models/nope/evaluate", 404),
    ],
)
def test_a_malformed_model_name_in_the_path_is_a_4xx_naming_it(server, path, status):
    reply = httpx.post(f"{server.rest_url}{path}", json=GOOD)
    assert reply.status_code == status, reply.text
    if status == 422:
        assert reply.json()["detail"].startswith("name:")
        assert len(reply.json()["detail"]) < 300  # a 300-character name is shown cut
    still_serves(server)


def test_a_key_id_that_keeps_failing_gets_429_before_its_body_is_read(secured):
    srv, user = secured
    store = KeyStore(srv.settings.key_db_url)
    if not hasattr(store, "max_failures"):
        pytest.skip("this KeyStore has no rate limit on failed verifications")
    key_id, _ = store.create("user", "lab-guess")
    wrong = {"authorization": f"Bearer mls_{key_id}_not-the-secret"}
    statuses = [
        early_answer(srv.running.rest_port, "/v1/jobs", 300 * MB, wrong)[0]
        for _ in range(store.max_failures)
    ]
    assert statuses == [401] * store.max_failures
    status, body, seconds = early_answer(srv.running.rest_port, "/v1/jobs", 300 * MB, wrong)
    assert status == 429 and "too many failed" in body["detail"] and seconds < 5
    still_serves(srv, user)
