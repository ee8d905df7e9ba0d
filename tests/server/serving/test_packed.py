"""The packed wire on a real server: the same numbers as per-system requests, bit for bit,
and malformed packed input refused with INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from hypothesis import given, settings
from hypothesis import strategies as st

from mlipserve.client import Client
from mlipserve.client.core import build_request
from mlipserve.packed import pack_systems, unpack_results, unpack_systems
from mlipserve.server.config import Settings
from mlipserve.v1 import potential_pb2 as pb
from mlipserve.v1 import potential_pb2_grpc as pb_grpc
from mlipserve.wire import SystemArrays, WireError, encode_array
from tests.conftest import ServerThread
from tests.server.serving.test_batch_checks import refusal
from tests.server.serving.test_batch_checks import systems as check_systems_strategy

PROPERTIES = ["energy", "forces", "stress", "energies"]


def argon(n_rep: int, seed: int, pbc: bool = True) -> Atoms:
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True) * (n_rep, 1, 1)
    atoms.rattle(0.05, seed=seed)
    atoms.pbc = pbc
    return atoms


def mixed() -> list[Atoms]:
    """Systems of different sizes, periodic, partly periodic and not, with conditions."""
    cluster = argon(1, 5, pbc=False)
    cluster.info["charge"] = 0.0
    slab = argon(2, 6)
    slab.pbc = (True, True, False)
    slab.info["spin"] = 1.0
    return [argon(1, 1), argon(3, 2), cluster, slab, argon(2, 4)]


def same(a: dict, b: dict) -> None:
    """Every result key of a equals b's bit for bit (model, batch and replica aside)."""
    keys = set(a) - {"batch", "model", "replica", "model_version"}
    assert keys == set(b) - {"batch", "model", "replica", "model_version"}
    for key in keys:
        if isinstance(a[key], np.ndarray):
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            assert a[key].tobytes() == b[key].tobytes(), key
        else:
            assert a[key] == b[key] and type(a[key]) is type(b[key]), key


@pytest.mark.parametrize(
    ("model", "properties"),
    [("lj", PROPERTIES), ("lj-ensemble", ["energy", "forces", "uncertainty"])],
)
def test_packed_results_are_bit_identical_to_per_system_results(server, model, properties):
    systems = mixed() if model == "lj" else mixed()[:2] + mixed()[4:]
    if "stress" in properties:  # stress needs a volume: only the fully periodic systems
        systems = [s for s in systems if s.pbc.all()]
    with Client(server.address, model, packed=False) as old, Client(server.address, model) as new:
        assert new.packed and not old.packed
        before = old.evaluate(systems, properties)
        after = new.evaluate(systems, properties)
        one_by_one = [new.evaluate(s, properties) for s in systems]
    assert len(after) == len(systems)
    for a, b, c in zip(before, after, one_by_one):
        same(a, b)
        same(b, c)
    assert after[0]["forces"].flags.writeable  # results are the caller's to change


def test_mixed_geometries_and_conditions_are_bit_identical(server):
    systems = mixed()
    with Client(server.address, "lj", packed=False) as old, Client(server.address, "lj") as new:
        for a, b in zip(old.evaluate(systems, ["energy", "forces"]), new.evaluate(systems)):
            same(a, b)


def test_a_packed_request_gets_a_packed_response(server):
    request = build_request(mixed(), ["energy", "forces"], "lj", packed=True)
    assert request.HasField("packed") and not request.systems
    with grpc.insecure_channel(server.address) as channel:
        reply = pb_grpc.PotentialStub(channel).Evaluate(request, timeout=30)
    assert reply.HasField("packed") and not reply.results
    results = unpack_results(reply.packed)
    counts = [len(s) for s in mixed()]
    assert [len(r["forces"]) for r in results] == counts
    assert list(reply.packed.counts.shape) == [5]
    assert reply.packed.forces.shape == [sum(counts), 3]


def test_a_per_system_request_still_gets_per_system_results(server):
    request = build_request(mixed(), ["energy"], "lj", packed=False)
    with grpc.insecure_channel(server.address) as channel:
        reply = pb_grpc.PotentialStub(channel).Evaluate(request, timeout=30)
    assert not reply.HasField("packed") and len(reply.results) == 5


def test_conditions_with_per_system_presence_round_trip():
    systems = [SystemArrays.from_atoms(a) for a in mixed()]
    systems[0].conditions["external_field"] = np.array([0.0, 0.0, 0.1])
    systems[4].conditions["external_field"] = np.array([0.0, 0.2, 0.0])
    msg = pack_systems(systems)
    assert msg is not None
    assert list(msg.conditions["external_field"].values.shape) == [2, 3]
    back = unpack_systems(pb.PackedSystems.FromString(msg.SerializeToString()), 10)
    for a, b in zip(systems, back):
        assert a.positions.tobytes() == b.positions.tobytes()
        assert np.array_equal(a.numbers, b.numbers) and np.array_equal(a.pbc, b.pbc)
        assert a.cell.tobytes() == b.cell.tobytes()
        assert sorted(a.conditions) == sorted(b.conditions)
        for key in a.conditions:
            assert np.array_equal(a.conditions[key], b.conditions[key])
            assert isinstance(b.conditions[key], np.ndarray)  # 0-d for a scalar, as per system
            assert b.conditions[key].shape == np.shape(a.conditions[key])
    assert back.offsets.tolist() == [0, 4, 16, 20, 28, 36]
    assert np.shares_memory(back[1].positions, back.positions)  # views, not copies


def test_conditions_whose_shapes_differ_are_sent_per_system(server):
    systems = [argon(1, 0), argon(1, 1)]
    systems[0].info["conditions"] = {"x": [1.0]}
    systems[1].info["conditions"] = {"x": [1.0, 2.0]}
    assert pack_systems([SystemArrays.from_atoms(a) for a in systems]) is None
    request = build_request(systems, ["energy"], "lj", packed=True)
    assert not request.HasField("packed") and len(request.systems) == 2


def good() -> pb.EvaluateRequest:
    return build_request([argon(1, 0), argon(2, 1)], ["energy", "forces"], "lj", packed=True)


def with_field(name: str, value: pb.Array) -> pb.EvaluateRequest:
    request = good()
    getattr(request.packed, name).CopyFrom(value)
    return request


def with_condition(values: pb.Array, present: pb.Array | None = None) -> pb.EvaluateRequest:
    request = good()
    request.packed.conditions["charge"].values.CopyFrom(values)
    if present is not None:
        request.packed.conditions["charge"].present.CopyFrom(present)
    return request


def both() -> pb.EvaluateRequest:
    request = good()
    request.systems.append(SystemArrays.from_atoms(argon(1, 0)).to_proto())
    return request


def without(name: str) -> pb.EvaluateRequest:
    request = good()
    request.packed.ClearField(name)
    return request


BAD = {
    "systems and packed": (both(), "packed: a request sets either systems or packed"),
    "counts off the total": (
        with_field("counts", encode_array(np.array([4, 9]), "<i8")),
        "packed.counts: counts sum to 13 but positions hold 12 atoms",
    ),
    "negative count": (
        with_field("counts", encode_array(np.array([16, -4]), "<i8")),
        "packed.counts: negative count at system 1",
    ),
    "count beyond the atoms sent": (
        with_field("counts", encode_array(np.array([2**62, 2**62, 2**62, 2**62 + 12]), "<i8")),
        "packed.counts: system 3 counts 4611686018427387916 atoms of 12 sent",
    ),
    "no system": (
        with_field("counts", encode_array(np.zeros(0), "<i8")),
        "packed.counts: the request holds no system",
    ),
    "missing counts": (without("counts"), "packed.counts: missing"),
    "missing positions": (without("positions"), "packed.positions: missing"),
    "float counts": (
        with_field("counts", encode_array(np.array([4.0, 8.0]), "<f8")),
        "packed.counts: must be integers",
    ),
    "float numbers": (
        with_field("numbers", encode_array(np.full(12, 18.0), "<f8")),
        "packed.numbers: must be integers",
    ),
    "integer positions": (
        with_field("positions", encode_array(np.zeros((12, 3)), "<i8")),
        "packed.positions: must be floats",
    ),
    "numbers too short": (
        with_field("numbers", encode_array(np.full(11, 18), "<i4")),
        "packed.numbers: shape (11,)",
    ),
    "positions of rank 1": (
        with_field("positions", encode_array(np.zeros(36))),
        "packed.positions: shape (36,)",
    ),
    "cells for one system": (
        with_field("cells", encode_array(np.zeros((1, 3, 3)))),
        "packed.cells: shape (1, 3, 3)",
    ),
    "pbc of 2": (
        with_field("pbc", encode_array(np.full((2, 3), 2), "|u1")),
        "packed.pbc: booleans must be 0 or 1",
    ),
    "pbc as floats": (
        with_field("pbc", encode_array(np.ones((2, 3)), "<f8")),
        "packed.pbc: must be |u1 booleans",
    ),
    "huge declared positions": (
        with_field("positions", pb.Array(dtype="<f8", shape=[10**15, 3], data=b"\0" * 96)),
        "packed.positions: 96 bytes do not hold shape (1000000000000000, 3)",
    ),
    "huge declared systems": (
        with_field("counts", pb.Array(dtype="<i8", shape=[10**12], data=b"")),
        "packed.counts: 1000000000000 systems exceed the limit",
    ),
    "short bytes": (
        with_field("cells", pb.Array(dtype="<f8", shape=[2, 3, 3], data=b"\0" * 10)),
        "packed.cells: 10 bytes",
    ),
    "condition rows": (
        with_condition(encode_array(np.zeros(3))),
        "packed.conditions['charge'].values: shape (3,)",
    ),
    "condition presence": (
        with_condition(encode_array(np.zeros(1)), encode_array(np.array([1, 1, 0]), "|u1")),
        "packed.conditions['charge'].present: shape (3,)",
    ),
    "nan positions": (
        with_field("positions", encode_array(np.full((12, 3), np.nan))),
        "systems[0].positions: NaN or inf",
    ),
    "unknown element in system 1": (
        with_field("numbers", encode_array(np.array([18] * 11 + [0]), "<i4")),
        "systems[1].numbers: atomic number 0",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_packed_input_is_invalid_argument_naming_the_field(server, case):
    request, expected = BAD[case]
    with grpc.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.PotentialStub(channel).Evaluate(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in info.value.details()


def test_a_stream_answers_a_bad_packed_request_and_goes_on(server):
    bad, _ = BAD["counts off the total"]
    requests = [good(), bad, good()]
    with grpc.insecure_channel(server.address) as channel:
        replies = list(pb_grpc.PotentialStub(channel).EvaluateStream(iter(requests), timeout=30))
    assert [r.HasField("error") for r in replies] == [False, True, False]
    assert "packed.counts" in replies[1].error.message
    assert replies[0].packed.energy.data == replies[2].packed.energy.data


def test_bad_results_are_refused_by_the_decoder():
    results = pb.PackedResults(
        energy=encode_array(np.zeros(2)), forces=encode_array(np.zeros((3, 3)))
    )
    with pytest.raises(WireError, match="packed.counts: missing"):
        unpack_results(results)
    results.counts.CopyFrom(encode_array(np.array([1, 1]), "<i8"))
    with pytest.raises(WireError, match="packed.forces: shape"):
        unpack_results(results)


@pytest.fixture(scope="module")
def rigid_ion():
    srv = ServerThread(Settings(port=0, models=["nacl-rigid-ion"]))
    yield srv
    srv.stop()


def test_a_model_that_uses_a_condition_gets_it_through_the_packed_wire(rigid_ion):
    salt = bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (2, 2, 2)
    salt.rattle(0.03, seed=1)
    charged = salt.copy()
    charged.info["charge"] = 0.0
    water = molecule("NaCl")  # no cell, no condition
    water.center(vacuum=4.0)
    systems = [salt, charged, water]
    with (
        Client(rigid_ion.address, "nacl-rigid-ion", packed=False) as old,
        Client(rigid_ion.address, "nacl-rigid-ion") as new,
    ):
        before = old.evaluate(systems, ["energy", "forces"])
        after = new.evaluate(systems, ["energy", "forces"])
    for a, b in zip(before, after):
        same(a, b)
    assert np.isfinite(after[0]["energy"]) and after[0]["energy"] == after[1]["energy"]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(check_systems_strategy(), min_size=1, max_size=4), st.booleans())
def test_the_packed_check_refuses_exactly_what_the_per_system_check_does(batch, need_volume):
    batch = [s for s in batch if len(s.positions) == len(s.numbers)] or [mixed_system()]
    packed = unpack_systems(pack_systems(batch), 10)
    kw = dict(elements=frozenset({1, 29}), need_volume=need_volume, cutoffs=(3.0,))
    assert refusal(packed, **kw) == refusal(batch, **kw)


def mixed_system() -> SystemArrays:
    return SystemArrays.from_atoms(argon(1, 0))
