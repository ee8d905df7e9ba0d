"""The gRPC service end to end on loopback: concurrency, validation, streams, health."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mlipserve.client import Client, InvalidInput, ServerError
from mlipserve.server.config import Settings
from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.batch import SystemBatch
from mlipserve.server.models.builtin import lennard_jones
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.serving.registry import Registry
from mlipserve.v1 import potential_pb2 as pb
from mlipserve.v1 import potential_pb2_grpc as pb_grpc
from mlipserve.wire import SystemArrays, encode_array
from tests.conftest import ServerThread


def argon(n_rep: int, seed: int) -> Atoms:
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True) * (n_rep, 1, 1)
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_32_concurrent_clients_get_their_own_results(server):
    systems = [argon(1 + i % 4, seed=i) for i in range(32)]
    local = LocalProvider(lennard_jones())
    results: dict[int, dict] = {}
    barrier = threading.Barrier(32)

    def worker(i):
        with Client(server.address, "lj") as client:
            barrier.wait()
            results[i] = client.evaluate(systems[i], ["energy", "forces", "stress"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 32
    for i, atoms in enumerate(systems):
        ref = local.evaluate([atoms], ["energy", "forces", "stress"])[0]
        assert results[i]["forces"].shape == (len(atoms), 3)
        assert np.isclose(results[i]["energy"], ref["energy"], rtol=1e-12, atol=0)
        assert np.allclose(results[i]["forces"], ref["forces"], rtol=0, atol=1e-12)
        assert np.allclose(results[i]["stress"], ref["stress"], rtol=0, atol=1e-14)
    assert max(r["batch"]["requests"] for r in results.values()) > 1
    assert server.registry.get("lj").batcher.largest_batch > 1


def test_response_reports_model_version_and_batch(server):
    res = Client(server.address, "lj").evaluate([argon(1, 0), argon(2, 1)])
    assert [r["model"] for r in res] == ["lj", "lj"]
    assert res[0]["model_version"] == "builtin-1"
    assert res[0]["batch"]["systems"] >= 2 and res[0]["batch"]["atoms"] >= 12
    assert res[0]["batch"]["compute_s"] > 0 and res[0]["batch"]["queue_wait_s"] >= 0


def test_energy_only_request_returns_energy_only(server):
    res = Client(server.address, "lj").evaluate(argon(1, 0), ["energy"])
    assert set(res) == {"energy", "model", "model_version", "batch", "replica"}
    assert res["replica"].endswith(server.address.rsplit(":", 1)[1])


def test_ensemble_uncertainty(server):
    res = Client(server.address, "lj-ensemble").evaluate(
        argon(2, 3), ["energy", "forces", "uncertainty"]
    )
    assert res["energy_std"] > 0
    assert res["forces_std"].shape == (8,)
    assert res["max_force_std"] == pytest.approx(res["forces_std"].max())


def test_uncertainty_from_single_model_is_refused(server):
    with pytest.raises(InvalidInput, match="not an ensemble"):
        Client(server.address, "lj").evaluate(argon(1, 0), ["energy", "uncertainty"])


def raw_request(**system_fields) -> pb.EvaluateRequest:
    good = SystemArrays.from_atoms(argon(1, 0)).to_proto()
    for key, value in system_fields.items():
        if key == "pbc":
            del good.pbc[:]
            good.pbc.extend(value)
        else:
            getattr(good, key).CopyFrom(value)
    return pb.EvaluateRequest(model="lj", systems=[good], properties=[pb.ENERGY, pb.FORCES])


BAD = {
    "mismatched lengths": (
        raw_request(numbers=encode_array(np.full(3, 18), "<i4")),
        "systems[0].positions",
    ),
    "nan positions": (
        raw_request(positions=encode_array(np.full((4, 3), np.nan))),
        "systems[0].positions: NaN",
    ),
    "inf positions": (
        raw_request(positions=encode_array(np.full((4, 3), np.inf))),
        "systems[0].positions: NaN or inf",
    ),
    "atomic number 0": (
        raw_request(numbers=encode_array(np.array([18, 0, 18, 18]), "<i4")),
        "systems[0].numbers: atomic number 0",
    ),
    "atomic number 119": (
        raw_request(numbers=encode_array(np.array([18, 119, 18, 18]), "<i4")),
        "systems[0].numbers: atomic number 119",
    ),
    "singular cell": (
        raw_request(cell=encode_array(np.diag([5.0, 5.0, 0.0]))),
        "systems[0].cell: singular",
    ),
    "wrong byte count": (
        raw_request(positions=pb.Array(dtype="<f8", shape=[4, 3], data=b"\0" * 7)),
        "systems[0].positions: 7 bytes",
    ),
    "bad dtype": (
        raw_request(positions=pb.Array(dtype=">f8", shape=[4, 3], data=b"\0" * 96)),
        "systems[0].positions: unsupported dtype",
    ),
    "wrong shape": (
        raw_request(positions=encode_array(np.zeros((4, 2)))),
        "systems[0].positions: shape (4, 2)",
    ),
    "pbc length": (raw_request(pbc=[True]), "systems[0].pbc"),
    "empty system": (
        raw_request(
            positions=encode_array(np.zeros((0, 3))), numbers=encode_array(np.zeros(0), "<i4")
        ),
        "empty system",
    ),
    "unknown model": (
        pb.EvaluateRequest(model="nope", systems=raw_request().systems, properties=[pb.ENERGY]),
        "unknown model 'nope'",
    ),
    "no systems": (pb.EvaluateRequest(model="lj", properties=[pb.ENERGY]), "no system"),
    "no properties": (
        pb.EvaluateRequest(model="lj", systems=raw_request().systems),
        "properties: none requested",
    ),
    "element outside emt": (
        pb.EvaluateRequest(model="emt", systems=raw_request().systems, properties=[pb.ENERGY]),
        "elements Ar are not supported",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_invalid_argument_naming_the_field(server, case):
    request, fragment = BAD[case]
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PotentialStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Evaluate(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in info.value.details()


def test_too_many_atoms_for_the_configured_limit():
    srv = ServerThread(Settings(port=0, models=["lj"], max_atoms_per_system=10))
    try:
        with pytest.raises(InvalidInput, match="12 atoms exceed the limit of 10"):
            Client(srv.address).evaluate(argon(3, 0))
        assert Client(srv.address).evaluate(argon(2, 0))["energy"] < 0
    finally:
        srv.stop()


def test_request_larger_than_a_batch_runs_alone():
    srv = ServerThread(Settings(port=0, models=["lj"], max_batch_atoms=8))
    try:
        big = argon(4, 0)  # 16 atoms > 8 per batch
        res = Client(srv.address).evaluate(big, ["energy", "forces"])
        ref = LocalProvider(lennard_jones()).evaluate([big])[0]
        assert res["energy"] == pytest.approx(ref["energy"], rel=1e-12)
        assert res["batch"]["atoms"] == 16
    finally:
        srv.stop()


def test_stream_survives_a_bad_request(server):
    client = Client(server.address, "lj")
    with client.stream() as session:
        good = session.evaluate(argon(1, 0))
        with pytest.raises(InvalidInput, match="atomic number 0"):
            session.evaluate(Atoms("Ar2X", positions=np.eye(3) * 3))
        again = session.evaluate(argon(1, 0))
    assert again["energy"] == good["energy"]


class Exploding:
    """A model whose forward pass raises on a marker element (fault injection)."""

    def __init__(self):
        self.inner = lennard_jones(name="exploding")
        self.info = ModelInfo(**{**self.inner.info.__dict__, "name": "exploding"})

    def compute(self, batch: SystemBatch, properties):
        if (batch.numbers == 2).any():
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.inner.compute(batch, properties)


def test_exception_in_forward_pass_fails_its_batch_with_internal_and_server_goes_on():
    registry = Registry()
    registry.add(Exploding())
    srv = ServerThread(Settings(port=0), registry=registry)
    try:
        client = Client(srv.address, "exploding")
        with pytest.raises(ServerError, match="illegal memory access") as info:
            client.evaluate(Atoms("He2", positions=[[0, 0, 0], [3, 0, 0]]))
        assert info.value.code == grpc.StatusCode.INTERNAL
        assert client.evaluate(argon(1, 0))["energy"] < 0
    finally:
        srv.stop()


def test_list_models(server):
    models = {m["name"]: m for m in Client(server.address).list_models()}
    assert {"emt", "lj", "morse", "lj-ensemble"} <= set(models)
    assert models["lj-ensemble"]["ensemble_size"] == 4
    assert "uncertainty" in models["lj-ensemble"]["properties"]
    assert models["emt"]["elements"][0] == 1 and 29 in models["emt"]["elements"]
    assert models["lj"]["cutoff"] == 8.5


def test_default_model_when_request_names_none(server):
    res = Client(server.address).evaluate(bulk("Cu", cubic=True))
    assert res["model"] == server.registry.default_model == "emt"


def test_health_and_reflection(server):
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service="mlipserve.v1.Potential"))
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        reply = next(
            refl.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
        )
        names = {s.name for s in reply.list_services_response.service}
        assert "mlipserve.v1.Potential" in names


class MemoryBound:
    """A model that cannot fit more than 20 atoms at once (simulated device memory)."""

    def __init__(self):
        self.inner = lennard_jones(name="bounded")
        self.info = ModelInfo(**{**self.inner.info.__dict__, "name": "bounded"})
        self.calls: list[int] = []

    def compute(self, batch: SystemBatch, properties):
        self.calls.append(len(batch.numbers))
        if len(batch.numbers) > 20:
            from mlipserve.server.serving.dispatch import OutOfMemory

            raise OutOfMemory("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner.compute(batch, properties)


def test_out_of_memory_batch_is_split_and_every_request_succeeds():
    from mlipserve.server.serving.metrics import OOM_SPLITS

    model = MemoryBound()
    registry = Registry()
    registry.add(model)
    srv = ServerThread(Settings(port=0), registry=registry)
    try:
        before = OOM_SPLITS._value.get()
        systems = [argon(1, seed=i) for i in range(8)]  # 8 × 4 atoms = 32 > 20
        res = Client(srv.address, "bounded").evaluate(systems)
        ref = LocalProvider(lennard_jones()).evaluate(systems)
        assert [r["energy"] for r in res] == pytest.approx([r["energy"] for r in ref], rel=1e-12)
        assert OOM_SPLITS._value.get() > before and max(model.calls[1:]) <= 20
    finally:
        srv.stop()


def test_open_streams_per_tenant_are_limited():
    from mlipserve.client import ResourceExhausted

    srv = ServerThread(Settings(port=0, models=["lj"], tenant_max_streams=2))
    try:
        client = Client(srv.address, "lj")
        first, second = client.stream(), client.stream()
        first.evaluate(argon(1, 0))
        second.evaluate(argon(1, 0))
        third = client.stream()
        with pytest.raises(ResourceExhausted, match="2 open streams"):
            third.evaluate(argon(1, 0))
        first.close()
        import time as _time

        _time.sleep(0.3)
        assert client.stream().evaluate(argon(1, 0))["energy"] < 0
        second.close()
    finally:
        srv.stop()


def test_json_log_lines_carry_request_ids(caplog):
    import json as _json
    import logging as _logging

    from mlipserve.server.logs import JsonFormatter

    srv = ServerThread(Settings(port=0, models=["lj"]))
    try:
        with caplog.at_level(_logging.DEBUG, logger="mlipserve"):
            Client(srv.address, "lj").evaluate(argon(1, 0))
        records = [r for r in caplog.records if r.name == "mlipserve.requests"]
        line = _json.loads(JsonFormatter().format(records[-1]))
        assert len(line["request_id"]) == 16 and line["model"] == "lj" and line["atoms"] == 4
        batches = [r for r in caplog.records if r.name == "mlipserve.batches"]
        assert _json.loads(JsonFormatter().format(batches[-1]))["requests"] >= 1
    finally:
        srv.stop()


def test_atoms_closer_than_the_training_data_get_a_warning_not_an_error():
    from dataclasses import replace

    model = lennard_jones(name="lj-seen")
    model.info = replace(model.info, min_distance=3.0)
    registry = Registry()
    registry.add(model)
    srv = ServerThread(Settings(port=0, close_contact_fraction=0.8), registry=registry)
    try:
        client = Client(srv.address, "lj-seen")
        close = Atoms("Ar2", positions=[[0, 0, 0], [2.2, 0, 0]])
        fine = Atoms("Ar2", positions=[[0, 0, 0], [2.5, 0, 0]])
        warned, quiet = client.evaluate([close, fine])
        assert "atoms 2.200 Å apart" in warned["warnings"][0] and "warnings" not in quiet
        assert np.isfinite(warned["energy"])
    finally:
        srv.stop()
