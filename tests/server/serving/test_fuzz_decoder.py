"""Fuzz the request decoder and the input check directly (no network): any bytes give a
request or a clear InvalidInput, never another exception (bounded run)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlipserve.server.models.builtin import load_builtin
from mlipserve.server.serving.checks import InvalidInput, Limits
from mlipserve.server.serving.registry import Registry
from mlipserve.server.serving.service import PotentialService, tolerant
from mlipserve.v1 import potential_pb2 as pb
from mlipserve.wire import SystemArrays

REGISTRY = Registry()
for _name in ("lj", "emt"):
    REGISTRY.add(load_builtin(_name))
SERVICE = PotentialService(REGISTRY, Limits(max_atoms_per_system=50, max_systems_per_request=8))
VALID = pb.EvaluateRequest(
    model="lj",
    properties=[pb.ENERGY, pb.FORCES],
    systems=[
        SystemArrays(
            np.array([[0.0, 0, 0], [3.8, 0, 0]]),
            np.array([18, 18]),
            np.eye(3) * 10,
            np.array([True, False, True]),
            {"charge": np.array(0.0)},
        ).to_proto()
    ],
).SerializeToString()
parse = tolerant(pb.EvaluateRequest)


def prepared_or_refused(data: bytes) -> None:
    try:
        loaded, job = SERVICE.prepare(parse(data))
    except InvalidInput as err:
        assert str(err)
    else:
        assert job.n_atoms == sum(len(s.numbers) for s in job.systems)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=400))
def test_random_bytes(data):
    prepared_or_refused(data)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=6),
    st.integers(0, len(VALID)),
)
def test_mutated_valid_requests(flips, cut):
    data = bytearray(VALID)
    for at, value in flips:
        data[at] = value
    prepared_or_refused(bytes(data[:cut] if cut else data))
