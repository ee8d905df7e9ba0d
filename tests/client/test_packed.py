"""The packed wire from the client's side: sent by default, and a server that predates it
(a real grpc.aio server whose handler drops the field it does not know) is detected and
then sent per-system requests, unary and streamed, sync and async."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import numpy as np
import pytest
from ase.build import bulk

from mlipserve.client import AsyncClient, Client, InvalidInput
from mlipserve.client.core import build_request, unpacked
from mlipserve.server.serving.checks import Limits
from mlipserve.server.serving.service import PotentialService
from mlipserve.v1 import potential_pb2 as pb
from mlipserve.wire import SystemArrays


def argon(n_rep: int, seed: int):
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True) * (n_rep, 1, 1)
    atoms.rattle(0.05, seed=seed)
    return atoms


class OldServer:
    """The Potential service with the pre-packed request parsing, on the given loop."""

    def __init__(self, server, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.seen: list[pb.EvaluateRequest] = []
        self.server = self.call(self._start(server.registry))
        self.address = f"127.0.0.1:{self.port}"

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def parse(self, data: bytes) -> pb.EvaluateRequest:
        request = pb.EvaluateRequest.FromString(data)
        self.seen.append(pb.EvaluateRequest.FromString(data))
        request.ClearField("packed")
        return request

    async def _start(self, registry) -> grpc.aio.Server:
        service = PotentialService(registry, Limits())
        serialize = pb.EvaluateResponse.SerializeToString
        handlers = {
            "Evaluate": grpc.unary_unary_rpc_method_handler(
                service.Evaluate, request_deserializer=self.parse, response_serializer=serialize
            ),
            "EvaluateStream": grpc.stream_stream_rpc_method_handler(
                service.EvaluateStream,
                request_deserializer=self.parse,
                response_serializer=serialize,
            ),
        }
        server = grpc.aio.server()
        name = pb.DESCRIPTOR.services_by_name["Potential"].full_name
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server

    def stop(self) -> None:
        self.call(self.server.stop(0))


@pytest.fixture(scope="module")
def old(server):
    srv = OldServer(server, server.loop)
    yield srv
    srv.stop()


def test_the_client_sends_packed_requests_by_default(server):
    client = Client(server.address, "lj")
    request = client.prepare([argon(1, 0), argon(2, 1)], ["energy"], None).request
    assert request.HasField("packed") and not request.systems
    assert list(request.packed.counts.shape) == [2]
    assert (
        not Client(server.address, "lj", packed=False)
        .prepare([argon(1, 0)], ["energy"], None)
        .request.HasField("packed")
    )


def test_an_old_server_is_detected_and_sent_per_system_requests(server, old):
    systems = [argon(1, 0), argon(2, 1)]
    with Client(server.address, "lj") as new:
        reference = new.evaluate(systems)
    old.seen.clear()
    with Client(old.address, "lj") as client:
        first = client.evaluate(systems)
        assert not client.packed  # remembered: no second try on later calls
        second = client.evaluate(systems[0])
    assert [r.HasField("packed") for r in old.seen] == [True, False, False]
    assert len(old.seen[1].systems) == 2
    for a, b in zip(reference, first):
        assert a["energy"] == b["energy"] and a["forces"].tobytes() == b["forces"].tobytes()
    assert second["energy"] == reference[0]["energy"]


def test_an_old_server_behind_a_stream(server, old):
    with Client(old.address, "lj") as client, client.stream() as session:
        results = [session.evaluate(argon(1, seed)) for seed in range(3)]
        assert not client.packed
    with Client(server.address, "lj") as client, client.stream() as session:
        reference = [session.evaluate(argon(1, seed)) for seed in range(3)]
    assert [r["energy"] for r in results] == [r["energy"] for r in reference]


def test_an_old_server_with_the_async_client(server, old):
    async def main():
        async with AsyncClient(old.address, "lj") as client:
            unary = await client.evaluate([argon(1, 0), argon(1, 1)])
            async with client.stream() as session:
                streamed = await session.evaluate(argon(1, 2))
        async with AsyncClient(old.address, "lj") as client:
            async with client.stream() as session:
                fresh = await session.evaluate(argon(1, 2))  # detected on a stream first
            assert not client.packed
        return unary, streamed, fresh

    unary, streamed, fresh = asyncio.run(main())
    with Client(server.address, "lj") as client:
        reference = client.evaluate([argon(1, 0), argon(1, 1), argon(1, 2)])
    assert [r["energy"] for r in unary] == [r["energy"] for r in reference[:2]]
    assert streamed["energy"] == fresh["energy"] == reference[2]["energy"]


def test_other_errors_are_not_taken_for_an_old_server(server, old):
    with Client(old.address, "nope") as client:
        with pytest.raises(InvalidInput, match="model"):
            client.evaluate(argon(1, 0))
        assert client.packed
    with Client(server.address, "lj") as client:
        with pytest.raises(InvalidInput, match="atomic number 0"):
            atoms = argon(1, 0)
            atoms.numbers[0] = 0
            client.evaluate(atoms)
        assert client.packed


def test_unpacking_a_request_gives_the_per_system_request():
    systems = [argon(1, 0), argon(2, 1)]
    systems[1].info["charge"] = 1.0
    packed = build_request(systems, ["energy", "forces"], "lj", packed=True)
    plain = build_request(systems, ["energy", "forces"], "lj", packed=False)
    back = unpacked(packed)
    assert not back.HasField("packed") and back.request_id == packed.request_id
    back.request_id = plain.request_id
    assert back.SerializeToString() == plain.SerializeToString()
    charge = SystemArrays.from_proto(back.systems[1], "s").conditions["charge"]
    assert charge.shape == () and float(charge) == 1.0
    assert np.array_equal(
        SystemArrays.from_proto(back.systems[0], "s").positions, systems[0].positions
    )
