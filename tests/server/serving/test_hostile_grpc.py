"""A hostile corpus against a real server process: every bad request gets its status code and a
message naming the field, on unary calls and on one stream that survives them all; the server
still answers a good request after each, and its memory stays bounded."""

from __future__ import annotations

import queue
import threading

import grpc
import numpy as np
import pytest
from ase.build import bulk

from mlipserve.v1 import potential_pb2 as pb
from mlipserve.wire import SystemArrays, encode_array
from tests.conftest import ServerProcess, free_port

OK, BAD, BIG = (
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)
E, F, S, U = pb.ENERGY, pb.FORCES, pb.STRESS, pb.UNCERTAINTY
LIMITS = {
    "MLIPSERVE_MAX_ATOMS_PER_SYSTEM": "3000",
    "MLIPSERVE_MAX_ATOMS_PER_REQUEST": "6000",
    "MLIPSERVE_MAX_SYSTEMS_PER_REQUEST": "200",
}


def arr(values, dtype="<f8", shape=None, data=None) -> pb.Array:
    a = np.asarray(values)
    msg = encode_array(a, dtype)
    if shape is not None:
        del msg.shape[:]
        msg.shape.extend(shape)
    if data is not None:
        msg.data = data
    return msg


def system(positions=((0.0, 0, 0), (3.8, 0, 0)), numbers=None, cell=None, pbc=(), **fields):
    positions = np.asarray(positions, dtype=float)
    numbers = np.full(len(positions), 18) if numbers is None else numbers
    msg = pb.System(
        positions=fields.pop("positions_msg", arr(positions)),
        numbers=fields.pop("numbers_msg", arr(numbers, "<i4")),
        pbc=list(pbc),
    )
    if cell is not None:
        msg.cell.CopyFrom(fields.pop("cell_msg", arr(cell)))
    for key, value in fields.pop("conditions", {}).items():
        msg.conditions[key].CopyFrom(value)
    for key in fields.pop("drop", ()):
        msg.ClearField(key)
    assert not fields, fields
    return msg


def request(*systems, model="lj", props=(E, F), **kw) -> bytes:
    return pb.EvaluateRequest(
        model=model, systems=list(systems) or [system()], properties=list(props), **kw
    ).SerializeToString()


def many(n: int, one: pb.System) -> bytes:
    """An EvaluateRequest of n copies of one system, built as wire bytes (fast for huge n)."""
    body = one.SerializeToString()
    field = b"\x1a" + _varint(len(body)) + body  # field 3 (systems), length-delimited
    return pb.EvaluateRequest(model="lj", properties=[E]).SerializeToString() + field * n


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


cu = SystemArrays.from_atoms(bulk("Cu", "fcc", a=3.61, cubic=True))
CU = pb.System(
    positions=arr(cu.positions), numbers=arr(cu.numbers, "<i4"), cell=arr(cu.cell), pbc=[True] * 3
)
far_cu = pb.System(
    positions=arr(cu.positions + 1e18),
    numbers=arr(cu.numbers, "<i4"),
    cell=arr(cu.cell),
    pbc=[True] * 3,
)
scalar = arr(np.array(1.0))

CASES = [  # (name, request bytes, code, words the message must hold)
    ("coincident atoms", request(system(((0, 0, 0), (0, 0, 0)))), BAD, "NaN or inf"),
    ("1e6 Å apart, no pbc", request(system(((0, 0, 0), (1e6, 0, 0)))), BAD, "systems[0]"),
    (
        "1e18 Å with pbc",
        request(system(((1e18, 0, 0), (1e18 + 3, 0, 0)), cell=np.eye(3) * 10, pbc=[True] * 3)),
        BAD,
        "systems[0].positions",
    ),
    ("emt Cu shifted 1e18 Å", request(far_cu, model="emt"), BAD, "systems[0].positions"),
    ("flat 10,000 Å sheet", request(system(((0, 0, 0), (1e4, 1e4, 0)))), BAD, "elongated"),
    (
        "2 atoms far apart in a tiny cell",
        request(system(((0, 0, 0), (1e5, 0, 0)), cell=np.eye(3) * 0.05, pbc=[True] * 3)),
        BAD,
        "cells away",
    ),
    (
        "Cu cell in nm",
        request(
            system(
                np.random.default_rng(0).random((32, 3)) * 0.72,
                np.full(32, 29),
                cell=np.eye(3) * 0.72,
                pbc=[True] * 3,
            )
        ),
        BAD,
        "neighbours per atom",
    ),
    ("garbage bytes", b"\xff\xff\xff\xff garbage", BAD, "not a valid EvaluateRequest"),
    ("truncated message", request()[:-7], BAD, "not a valid EvaluateRequest"),
    (
        "condition of 70 dimensions",
        request(system(conditions={"x": arr(np.zeros(1), shape=[1] * 70)})),
        BAD,
        "conditions['x']: 70 dimensions",
    ),
    (
        "21 conditions",
        request(system(conditions={f"c{i}": scalar for i in range(21)})),
        BAD,
        "conditions",
    ),
    (
        "condition name of 100 characters",
        request(system(conditions={"c" * 100: scalar})),
        BAD,
        "conditions",
    ),
    (
        "conditions of different shapes (unused)",
        request(
            system(numbers=[29, 29], conditions={"charge": scalar}),
            system(numbers=[29, 29], conditions={"charge": arr(np.zeros(2))}),
            model="emt",
        ),
        OK,
        "",
    ),
    (
        "big-endian positions",
        request(system(positions_msg=arr(np.zeros((2, 3)), ">f8"))),
        BAD,
        "systems[0].positions: unsupported dtype",
    ),
    (
        "negative dimension",
        request(system(positions_msg=arr(np.zeros(6), shape=[-2, 3]))),
        BAD,
        "negative dimension",
    ),
    (
        "huge shape, no data",
        request(system(positions_msg=arr(np.zeros(0), shape=[2**40, 3]))),
        BAD,
        "bytes do not hold",
    ),
    (
        "byte count off",
        request(system(positions_msg=arr(np.zeros((2, 3)), data=b"\0" * 47))),
        BAD,
        "bytes do not hold",
    ),
    (
        "positions (N, 2)",
        request(system(positions_msg=arr(np.zeros((2, 2))))),
        BAD,
        "systems[0].positions: shape",
    ),
    (
        "positions of rank 5",
        request(system(positions_msg=arr(np.zeros((2, 3, 1, 1, 1))))),
        BAD,
        "dimensions",
    ),
    ("float numbers", request(system(numbers_msg=arr([18.0, 18.0]))), BAD, "must be integers"),
    ("bool numbers", request(system(numbers_msg=arr([1, 1], "|b1"))), BAD, "must be integers"),
    ("atomic number 0", request(system(numbers=[0, 18])), BAD, "outside 1..118"),
    ("atomic number 300", request(system(numbers=[300, 18])), BAD, "outside 1..118"),
    ("element emt lacks", request(system(numbers=[92, 92]), model="emt"), BAD, "elements"),
    ("rows and numbers disagree", request(system(numbers=[18, 18, 18])), BAD, "rows"),
    ("NaN position", request(system(((np.nan, 0, 0), (1, 0, 0)))), BAD, "NaN or inf"),
    ("inf cell", request(system(cell=np.full((3, 3), np.inf), pbc=[True] * 3)), BAD, "cell"),
    (
        "cell (3, 2)",
        request(system(cell=np.zeros((3, 3)), cell_msg=arr(np.zeros((3, 2))))),
        BAD,
        "systems[0].cell",
    ),
    (
        "singular periodic cell",
        request(system(cell=np.diag([5.0, 5.0, 0.0]), pbc=[True] * 3)),
        BAD,
        "singular",
    ),
    ("stress without a volume", request(system(), props=(E, S)), BAD, "stress needs a cell"),
    ("4 pbc flags", request(system(pbc=[True] * 4)), BAD, "pbc"),
    ("no positions", request(system(drop=["positions"])), BAD, "positions: missing"),
    ("no numbers", request(system(drop=["numbers"])), BAD, "numbers: missing"),
    (
        "no systems",
        pb.EvaluateRequest(model="lj", properties=[E]).SerializeToString(),
        BAD,
        "holds no system",
    ),
    ("empty system", request(system(np.zeros((0, 3)), np.zeros(0, int))), BAD, "empty system"),
    (
        "too many atoms in a system",
        request(system(np.random.default_rng(1).random((3001, 3)) * 60, np.full(3001, 18))),
        BAD,
        "3001 atoms exceed",
    ),
    (
        "too many atoms in the request",
        request(*[system(np.random.default_rng(2).random((2500, 3)) * 60, np.full(2500, 18))] * 3),
        BAD,
        "7500 atoms exceed",
    ),
    ("201 systems", many(201, system()), BAD, "201 systems exceed"),
    ("100,000 one-atom systems", many(100_000, system(((0, 0, 0),), [18])), BIG, ""),
    ("unknown model, 4 KB name", request(model="m" * 4096), BAD, "unknown model"),
    ("unknown version", request(version="v9"), BAD, "no version"),
    ("no properties", request(props=()), BAD, "properties: none requested"),
    ("property 99", request(props=(99,)), BAD, "properties: unknown property value 99"),
    ("uncertainty on a single model", request(props=(E, U)), BAD, "not an ensemble"),
    ("ok: priority out of range", request(priority=7), OK, ""),
    (
        "ok: a slab with 10^5 Å of vacuum",
        request(
            system(((0, 0, 0), (1, 0, 1e5)), cell=np.diag([10.0, 10, 0]), pbc=[True, True, False])
        ),
        OK,
        "",
    ),
]


@pytest.fixture(scope="module")
def hostile_server():
    srv = ServerProcess(free_port(), "--models", "lj,emt,lj-ensemble", env=LIMITS)
    yield srv
    srv.terminate()
    srv.proc.wait(20)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        line = next(l for l in fh if l.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def unary(channel, data: bytes):
    call = channel.unary_unary(
        "/mlipserve.v1.Potential/Evaluate", response_deserializer=pb.EvaluateResponse.FromString
    )
    try:
        return OK, "", call(data, timeout=60)
    except grpc.RpcError as err:
        return err.code(), err.details() or "", None


def good(channel) -> None:
    code, details, reply = unary(channel, request(system(), props=(E, F)))
    assert code == OK, details
    assert np.isfinite(reply.results[0].energy)


def test_hostile_corpus_unary_and_one_stream(hostile_server):
    assert len(CASES) * 2 >= 60
    failures = []
    with grpc.insecure_channel(
        hostile_server.address, options=[("grpc.max_send_message_length", 1 << 30)]
    ) as channel:
        for _ in range(3):
            good(channel)
        start_mb = rss_mb(hostile_server.proc.pid)
        for name, data, code, words in CASES:  # unary
            got, details, reply = unary(channel, data)
            if (
                got != code
                or words not in details
                or (reply and not all(np.isfinite(r.energy) for r in reply.results))
            ):
                failures.append(("unary", name, got, details[:200]))
            if details:
                assert len(details) < 600, (name, len(details))  # names are cut
            good(channel)
            assert hostile_server.proc.poll() is None, f"server died on {name}"
        sent: queue.Queue = queue.Queue()
        stream = channel.stream_stream(
            "/mlipserve.v1.Potential/EvaluateStream",
            response_deserializer=pb.EvaluateResponse.FromString,
        )
        replies = stream(iter(sent.get, None), timeout=300)
        for name, data, code, words in CASES:
            if code == BIG:
                continue  # gRPC itself refuses an oversized message (and ends that stream)
            sent.put(data)
            reply = next(replies)
            got = (
                grpc.StatusCode.OK
                if not reply.HasField("error")
                else next(c for c in grpc.StatusCode if c.value[0] == reply.error.code)
            )
            if got != code or words not in reply.error.message:
                failures.append(("stream", name, got, reply.error.message[:200]))
        sent.put(request())
        assert not next(replies).HasField("error")  # the stream survived every bad message
        sent.put(None)
        growth = rss_mb(hostile_server.proc.pid) - start_mb
    assert not failures, "\n".join(map(str, failures))
    assert growth < 200, f"RSS grew {growth:.0f} MB over the corpus"


def test_batch_mates_with_odd_conditions_do_not_fail_each_other(hostile_server):
    """A per-atom `charge` array beside scalar ones: every request of the batch still answers."""
    charges = [scalar, arr(np.zeros(4)), arr(np.zeros((2, 2)))]
    results: list = []

    def client(i: int) -> None:
        with grpc.insecure_channel(hostile_server.address) as channel:
            for _ in range(5):
                results.append(
                    unary(
                        channel,
                        request(
                            pb.System(
                                positions=CU.positions,
                                numbers=CU.numbers,
                                cell=CU.cell,
                                pbc=CU.pbc,
                                conditions={"charge": charges[i % 3]},
                            ),
                            model="emt",
                        ),
                    )[0]
                )

    threads = [threading.Thread(target=client, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [OK] * 45
