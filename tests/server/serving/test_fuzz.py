"""Hypothesis on the evaluate input: odd shapes, dtypes, NaN, huge numbers → OK or a clear
INVALID_ARGUMENT, never INTERNAL, never a crash (bounded run)."""

from __future__ import annotations

import grpc
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlipserve.packed import unpack_results
from mlipserve.v1 import potential_pb2 as pb
from mlipserve.v1 import potential_pb2_grpc as pb_grpc
from mlipserve.wire import encode_array

DTYPES = ["<f8", "<f4", "<i8", "<i4", "|u1", ">f8", "float", ""]
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def arrays(draw, base_shape):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.one_of(st.just(base_shape), st.lists(st.integers(-1, 5), max_size=3)))
    n = int(np.prod([max(d, 0) for d in shape])) if shape else 1
    kind = (
        np.dtype(dtype) if dtype in ("<f8", "<f4", "<i8", "<i4", "|u1", ">f8") else np.dtype("<f8")
    )
    values = draw(
        st.lists(floats if kind.kind == "f" else st.integers(-5, 130), min_size=n, max_size=n)
    )
    data = np.array(values).astype(kind).tobytes()
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return pb.Array(dtype=dtype, shape=shape, data=data)


@st.composite
def requests(draw):
    systems = []
    for _ in range(draw(st.integers(0, 3))):
        n = draw(st.integers(0, 4))
        systems.append(
            pb.System(
                positions=draw(arrays([n, 3])),
                numbers=draw(arrays([n])),
                cell=draw(arrays([3, 3])),
                pbc=draw(st.lists(st.booleans(), max_size=4)),
            )
        )
    props = draw(st.lists(st.integers(0, 7), max_size=4))
    request = pb.EvaluateRequest(
        model=draw(st.sampled_from(["lj", "emt", "", "nope"])), systems=systems, properties=props
    )
    if draw(st.booleans()):  # the packed form, alone or (refused) next to systems
        if draw(st.booleans()):
            del request.systems[:]
        request.packed.CopyFrom(draw(packed_systems()))
    return request


@st.composite
def packed_systems(draw):
    """All fields of PackedSystems, each well formed or not: counts that do not add up,
    negative or huge, odd dtypes and shapes, condition rows and presence masks."""
    counts = draw(st.lists(st.integers(-2, 4), max_size=3))
    n, s = max(sum(counts), 0), len(counts)
    msg = pb.PackedSystems(
        positions=draw(arrays([n, 3])),
        numbers=draw(arrays([n])),
        counts=draw(st.one_of(arrays([s]), st.just(encode_array(np.array(counts), "<i8")))),
    )
    if draw(st.booleans()):
        msg.cells.CopyFrom(draw(arrays([s, 3, 3])))
    if draw(st.booleans()):
        msg.pbc.CopyFrom(draw(arrays([s, 3])))
    if draw(st.booleans()):
        entry = msg.conditions[draw(st.sampled_from(["charge", "spin", "x", ""]))]
        entry.values.CopyFrom(draw(arrays([s])))
        if draw(st.booleans()):
            entry.present.CopyFrom(draw(arrays([s])))
    if draw(st.booleans()):
        msg.counts.shape[:] = [draw(st.sampled_from([10**12, 2**62, 0]))]
    return msg


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests())
def test_fuzzed_requests_never_crash(server, request):
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PotentialStub(channel)
        try:
            reply = stub.Evaluate(request, timeout=20)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
            assert err.details()
        else:
            if request.HasField("packed"):
                energies = unpack_results(reply.packed)
                assert len(energies) == len(request.packed.counts.data) // 8
                assert all(np.isfinite(r["energy"]) for r in energies)
            else:
                assert len(reply.results) == len(request.systems)
                assert all(np.isfinite(r.energy) for r in reply.results)
