"""Auth on every gRPC method and REST route; key stores on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import grpc
import httpx
import pytest
import sqlalchemy as sa
from ase.build import bulk

from mlipserve.client import Client, MLIPServeError
from mlipserve.server.auth import AuthError, KeyStore
from mlipserve.server.config import Settings
from mlipserve.server.rest import health, status
from mlipserve.v1 import potential_pb2 as pb
from mlipserve.v1 import potential_pb2_grpc as pb_grpc
from tests.conftest import ServerThread

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    data = tmp_path_factory.mktemp("auth")
    srv = ServerThread(Settings(port=0, models=["lj"], auth=True, data_dir=data))
    keys = KeyStore(srv.settings.key_db_url)
    _, user = keys.create("user", "lab-a")
    _, admin = keys.create("admin", "lab-a")
    yield srv, user, admin
    srv.stop()


class Route:
    def __init__(self, path: str, methods: set[str]):
        self.path, self.methods = path, methods


def routes(srv) -> list[Route]:
    """Every route of the app, from its OpenAPI document (plus the document itself)."""
    app = srv.running.rest.config.app
    out = [Route(path, {m.upper() for m in ops}) for path, ops in app.openapi()["paths"].items()]
    return out + [Route("/openapi.json", {"GET"})]


PUBLIC = health.PUBLIC | status.PUBLIC  # /healthz, /status and its static files


def fill(path: str) -> str:
    return path.replace("{name}", "lj").replace("{version}", "builtin-1")


def test_every_rest_route_but_healthz_needs_a_key(secured):
    srv, user, admin = secured
    checked = 0
    with httpx.Client(base_url=srv.rest_url) as http:
        for route in routes(srv):
            for method in route.methods - {"HEAD"}:
                reply = http.request(method, fill(route.path))
                if route.path in PUBLIC:  # probes, and the status page's data-free shell
                    assert reply.status_code == 200
                    assert "lab-a" not in reply.text and "builtin-1" not in reply.text
                    continue
                assert reply.status_code == 401, (method, route.path, reply.status_code)
                bad = http.request(
                    method, fill(route.path), headers={"authorization": "Bearer mls_x_y"}
                )
                assert bad.status_code == 401
                checked += 1
    assert checked >= 10
    assert PUBLIC | {"/v1/status"} <= {route.path for route in routes(srv)}


def test_admin_routes_refuse_a_user_key(secured):
    srv, user, admin = secured
    admin_only = {
        ("POST", "/v1/models/{name}/versions"),
        ("PUT", "/v1/models/{name}/default"),
        ("POST", "/v1/models/{name}/versions/{version}/load"),
        ("POST", "/v1/models/{name}/versions/{version}/unload"),
        ("DELETE", "/v1/models/{name}/versions/{version}"),
        ("PUT", "/v1/datasets/shares/{owner}/{name}"),
        ("GET", "/v1/models/{name}/harvest"),
        ("PUT", "/v1/models/{name}/harvest"),
    }
    found = set()
    with httpx.Client(base_url=srv.rest_url, headers={"authorization": f"Bearer {user}"}) as http:
        for route in routes(srv):
            for method in route.methods - {"HEAD"}:
                reply = http.request(method, fill(route.path))
                if (method, route.path) in admin_only:
                    assert reply.status_code == 403, (method, route.path)
                    found.add((method, route.path))
                else:
                    assert reply.status_code not in (401, 403), (method, route.path)
    assert found == admin_only
    with httpx.Client(base_url=srv.rest_url, headers={"authorization": f"Bearer {admin}"}) as http:
        assert http.put("/v1/models/lj/default", json={"version": "builtin-1"}).status_code != 403


def test_every_grpc_method_needs_a_key(secured):
    srv, user, _ = secured
    service = pb.DESCRIPTOR.services_by_name["Potential"]
    atoms = bulk("Ar", "fcc", a=5.3)
    with grpc.insecure_channel(srv.address) as channel:
        stub = pb_grpc.PotentialStub(channel)
        calls = {
            "Evaluate": lambda md: stub.Evaluate(pb.EvaluateRequest(), metadata=md, timeout=10),
            "EvaluateStream": lambda md: next(
                stub.EvaluateStream(iter([pb.EvaluateRequest()]), metadata=md, timeout=10)
            ),
            "ListModels": lambda md: stub.ListModels(
                pb.ListModelsRequest(), metadata=md, timeout=10
            ),
        }
        assert set(calls) == {m.name for m in service.methods}  # a new method must be added here
        for name, call in calls.items():
            for md in ((), (("authorization", "Bearer nonsense"),)):
                with pytest.raises(grpc.RpcError) as info:
                    call(md)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
    assert Client(srv.address, "lj", api_key=user).evaluate(atoms)["energy"] < 0
    with pytest.raises(MLIPServeError, match="UNAUTHENTICATED"):
        Client(srv.address, "lj").list_models()


def test_health_service_stays_open_for_probes(secured):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    srv, _, _ = secured
    with grpc.insecure_channel(srv.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_key_store_backends(tmp_path, backend):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'keys.db'}"
    else:
        schema = f"t{uuid.uuid4().hex[:8]}"
        engine = sa.create_engine(PG)
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        url = f"{PG}?options=-csearch_path%3D{schema}"
    store = KeyStore(url)
    key_id, key = store.create("admin", "lab-b")
    principal = store.verify(key)
    assert (principal.tenant, principal.role, principal.key_id) == ("lab-b", "admin", key_id)
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT hash FROM api_keys")).scalar_one()
    assert key not in stored and stored.startswith("$argon2")
    with pytest.raises(AuthError, match="wrong API key"):
        store.verify(key[:-2] + "xx")
    with pytest.raises(ValueError, match="role"):
        store.create("root", "lab-b")
    with pytest.raises(ValueError, match="reserved"):  # `_harvest` owns the harvested labels
        store.create("admin", "_harvest")
    assert store.revoke(key_id)
    with pytest.raises(AuthError, match="revoked"):
        store.verify(key)
    if backend == "postgresql":
        with sa.create_engine(PG).begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


def test_public_bind_with_auth_off_is_refused():
    with pytest.raises(ValueError, match="refusing to serve on 0.0.0.0 with auth off"):
        Settings(host="0.0.0.0").check_exposure()
    Settings(host="0.0.0.0", insecure_public=True).check_exposure()
    Settings(host="0.0.0.0", auth=True).check_exposure()
    for name in ("127.evil.example", "127.0.0.1.nip.io", "localhost.evil.example"):
        with pytest.raises(ValueError, match="refusing to serve"):
            Settings(host=name).check_exposure()
    for loopback in ("127.0.0.1", "127.8.9.10", "::1", "localhost"):
        Settings(host=loopback).check_exposure()


def test_wrong_secrets_for_a_key_id_are_rate_limited_and_a_valid_key_keeps_working(secured):
    import time

    srv, user, _ = secured
    key_id = user.split("_")[1]
    wrong = f"mls_{key_id}_{'x' * 32}"
    codes = []
    with grpc.insecure_channel(srv.address) as channel:
        stub = pb_grpc.PotentialStub(channel)
        for _ in range(7):
            try:
                stub.ListModels(
                    pb.ListModelsRequest(), metadata=(("authorization", f"Bearer {wrong}"),)
                )
            except grpc.RpcError as err:
                codes.append(err.code())
        start = time.perf_counter()
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListModels(
                pb.ListModelsRequest(), metadata=(("authorization", f"Bearer {wrong}"),)
            )
        refused_s = time.perf_counter() - start
        ok = stub.ListModels(
            pb.ListModelsRequest(), metadata=(("authorization", f"Bearer {user}"),)
        )
    assert codes[:5] == [grpc.StatusCode.UNAUTHENTICATED] * 5
    assert codes[5:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "too many failed checks" in refused.value.details()
    assert refused_s < 0.5  # no argon2 for a throttled key id
    assert ok.models


def test_a_key_revoked_from_another_process_stops_working_at_once(secured):
    import time

    srv, _, _ = secured
    cli = KeyStore(srv.settings.key_db_url)  # what `mlipserve keys revoke` opens
    key_id, key = cli.create("user", "lab-b")
    atoms = bulk("Ar", "fcc", a=5.26)
    with Client(srv.address, model="lj", api_key=key) as client:
        client.evaluate([atoms], ["energy"])  # verified and cached by the server
        with client.stream() as stream:
            stream.evaluate(atoms, ["energy"])
            cli.revoke(key_id)
            time.sleep(0.3)
            with pytest.raises(MLIPServeError, match="revoked"):
                stream.evaluate(atoms, ["energy"])
        with pytest.raises(MLIPServeError, match="revoked"):
            client.evaluate([atoms], ["energy"])
