"""Several replicas behind one client: round_robin spreads calls, a dead replica costs nothing."""

from __future__ import annotations

from collections import Counter

import pytest
from ase.build import bulk

from mlipserve.client import Client
from mlipserve.server.config import Settings
from tests.conftest import ServerThread


@pytest.fixture()
def replicas():
    servers = [
        ServerThread(Settings(port=0, models=["lj"], replica_name=name)) for name in ("a", "b")
    ]
    yield servers
    for srv in servers:
        if srv.loop.is_running():  # not already stopped by the test
            srv.stop()


def test_round_robin_spreads_unary_calls_and_survives_a_dead_replica(replicas):
    argon = bulk("Ar", "fcc", a=5.26)
    with Client([s.address for s in replicas], "lj", balance=True) as client:
        first = client.evaluate(argon)
        served = Counter(client.evaluate(argon)["replica"] for _ in range(40))
        assert served == {"a": 20, "b": 20}, served
        replicas[1].stop()
        after = [client.evaluate(argon) for _ in range(20)]
    assert {r["replica"] for r in after} == {"a"}
    assert all(r["energy"] == pytest.approx(first["energy"], abs=1e-12) for r in after)


def test_a_stream_moves_to_a_live_replica_when_its_own_dies(replicas):
    argon = bulk("Ar", "fcc", a=5.26)
    by_name = {"a": replicas[0], "b": replicas[1]}
    with Client([s.address for s in replicas], "lj", balance=True) as client:
        with client.stream() as session:
            before = [session.evaluate(argon) for _ in range(5)]
            (home,) = {r["replica"] for r in before}  # a stream stays on one replica
            by_name[home].stop()
            after = [session.evaluate(argon) for _ in range(5)]
    assert {r["replica"] for r in after} == {"ab".replace(home, "")}
    assert after[0]["energy"] == pytest.approx(before[0]["energy"], abs=1e-12)


def test_a_single_server_names_itself_by_address(server):
    with Client(server.address, "lj") as client:
        assert client.evaluate(bulk("Ar", "fcc", a=5.26))["replica"] == server.address


def test_balancing_over_host_names_asks_for_a_dns_name():
    with pytest.raises(ValueError, match="dns:///"):
        Client(["localhost:1", "localhost:2"], balance=True)
