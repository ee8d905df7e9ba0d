"""The one input check: a batch is refused exactly when one of its systems is, naming it;
geometries that would crash vesin are refused, and everything else runs in vesin."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlipserve.server.models.neighbors import face_distances, vesin_grid
from mlipserve.server.serving.checks import InvalidInput, Limits, check_systems
from mlipserve.wire import SystemArrays

LIMITS = Limits(max_atoms_per_system=6)
values = st.sampled_from([0.0, 1.0, -2.5, 3.7, 1e-12, np.nan, np.inf, 2e6])


@st.composite
def systems(draw):
    n = draw(st.integers(0, 7))
    rows = n if draw(st.integers(0, 9)) else n + 1
    positions = np.array(
        draw(st.lists(st.tuples(values, values, values), min_size=rows, max_size=rows)), dtype=float
    ).reshape(rows, 3)
    numbers = np.array(draw(st.lists(st.integers(-1, 120), min_size=n, max_size=n)), dtype=int)
    scale = draw(st.sampled_from([0.0, 1e-6, 5.0]))
    cell = np.eye(3) * scale
    if draw(st.booleans()):
        cell[0, 1] = draw(values)
    pbc = np.array(draw(st.lists(st.booleans(), min_size=3, max_size=3)))
    return SystemArrays(positions=positions, numbers=numbers, cell=cell, pbc=pbc)


def refusal(batch, **kw) -> str | None:
    try:
        check_systems(batch, LIMITS, **kw)
    except InvalidInput as err:
        return str(err)
    return None


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(systems(), min_size=1, max_size=4), st.booleans(), st.booleans())
def test_a_batch_is_refused_exactly_when_a_system_is(batch, need_volume, restrict):
    kw = dict(
        elements=frozenset({1, 29}) if restrict else frozenset(),
        need_volume=need_volume,
        cutoffs=(3.0,),
    )
    alone = [refusal([s], **kw) for s in batch]
    together = refusal(batch, **kw)
    if all(r is None for r in alone):
        assert together is None
    else:  # the system it names is refused alone, for the same reason
        assert together is not None
        named = int(together.split("[", 1)[1].split("]", 1)[0])
        assert alone[named] is not None
        assert together.replace(f"systems[{named}]", "S") == alone[named].replace("systems[0]", "S")


def test_ordinary_batches_pass():
    from ase.build import bulk, molecule

    batch = [
        SystemArrays.from_atoms(bulk("Cu", cubic=True)),
        SystemArrays.from_atoms(molecule("H2O")),
    ]
    assert refusal(batch, elements=frozenset({1, 8, 29}), cutoffs=(5.0,)) is None
    assert "stress needs a cell" in refusal(batch, need_volume=True)


def test_conditions_the_model_does_not_use_are_dropped_and_shapes_checked():
    a = SystemArrays(
        np.zeros((1, 3)),
        np.array([1]),
        np.zeros((3, 3)),
        np.zeros(3, bool),
        {"charge": np.array(0.0), "junk": np.zeros(5)},
    )
    (kept,) = check_systems([a], Limits())
    assert kept.conditions == {}
    (kept,) = check_systems([a], Limits(), condition_shapes={"charge": ()})
    assert list(kept.conditions) == ["charge"]
    with pytest.raises(InvalidInput, match=r"systems\[0\].conditions\['junk'\]: shape \(5,\)"):
        check_systems([a], Limits(), condition_shapes={"junk": (3,)})
    with pytest.raises(InvalidInput, match=r"systems\[0\].conditions: the model needs 'spin'"):
        check_systems([a], Limits(), needed=("spin",))


CASES = (
    [  # (positions, cell, pbc): every kind of box vesin bins atoms in
        ([[0, 0, 0], [x, 0, 0]], np.zeros((3, 3)), [False] * 3) for x in (3e5, 4.9e5, 5.1e5, 1e6)
    ]
    + [([[0, 0, 0], [x, x, 0]], np.zeros((3, 3)), [False] * 3) for x in (1.5e3, 2e3, 1e4)]
    + [
        ([[0, 0, 0], [1, 0, z]], np.diag([10.0, 10.0, 0.0]), [True, True, False])
        for z in (1e4, 1e6)
    ]
    + [
        ([[0, 0, 0], [1, 0, 0]], np.diag(d), [True] * 3)
        for d in ([1e6, 10, 10], [10, 10, 1e6], [2e3, 2e3, 3], [1e3, 1e3, 3])
    ]
    + [([[0, 0, 0], [1, 1, 1], [x, 1, 0]], np.zeros((3, 3)), [False] * 3) for x in (7e3, 2e5)]
)


def _run_vesin(cases, seconds: float = 20.0) -> int:
    """Run the server's neighbour list on each case in a child process (a crash is its rc)."""
    code = textwrap.dedent(f"""
        import numpy as np
        from mlipserve.server.models.batch import SystemBatch
        from mlipserve.server.models.neighbors import batch_neighbors
        from mlipserve.wire import SystemArrays
        for p, c, pbc in {[(p, np.asarray(c).tolist(), b) for p, c, b in cases]!r}:
            system = SystemArrays(np.array(p, float), np.ones(len(p), int), np.array(c),
                                  np.array(pbc))
            batch_neighbors(SystemBatch.single(system), 5.0)
    """)
    try:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=seconds
        ).returncode
    except subprocess.TimeoutExpired:
        return -999


def test_the_neighbour_grid_guard_refuses_what_crashes_vesin():
    ok, refused = [], []
    for positions, cell, pbc in CASES:
        system = SystemArrays(
            np.array(positions, float),
            np.ones(len(positions), int),
            np.asarray(cell, float),
            np.array(pbc),
        )
        (refused if refusal([system], cutoffs=(5.0,)) else ok).append((positions, cell, pbc))
    # the cases the issue reported are refused (1e6 Å apart; a flat 2,000 Å sheet)
    refused_far = [p[-1] for p, c, b in refused if not any(b)]
    assert [1e6, 0, 0] in refused_far and [2e3, 2e3, 0] in refused_far, refused_far
    assert len(refused) >= 4 and len(ok) >= 6, (refused, ok)
    assert _run_vesin(ok) == 0  # all that pass run without a crash and within 20 s
    assert _run_vesin([refused[0]]) != 0  # and what is refused would have crashed


@pytest.mark.parametrize("pbc", [(True, True, False), (False, False, True), (True, False, True)])
def test_partly_periodic_neighbour_lists_match_ase(pbc):
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    from mlipserve.server.models.batch import SystemBatch
    from mlipserve.server.models.neighbors import batch_neighbors

    rng = np.random.default_rng(1)
    cell = np.array([[6.0, 0.0, 0.0], [1.5, 7.0, 0.0], [0.5, 0.3, 8.0]])
    atoms = Atoms("Cu24", positions=rng.random((24, 3)) @ cell * 1.3 - 1.0, cell=cell, pbc=pbc)
    i, j, shift = neighbor_list("ijS", atoms, 4.0)
    (ei, ej), es = batch_neighbors(SystemBatch.single(SystemArrays.from_atoms(atoms)), 4.0)
    ours = sorted(zip(ei.tolist(), ej.tolist(), map(tuple, es.astype(int).tolist())))
    theirs = sorted(zip(i.tolist(), j.tolist(), map(tuple, shift.tolist())))
    assert ours == theirs and len(ours) > 50


def test_vesin_grid_arithmetic():
    assert (vesin_grid(np.array([[1e6, 1e-12, 1e-12]]), 5.0) < 1).any()
    assert (vesin_grid(np.array([[2e3, 2e3, 3.0]]), 5.0) < 1).any()
    assert (vesin_grid(np.array([[100.0, 100.0, 100.0]]), 5.0) == 20).all()
    np.testing.assert_allclose(face_distances(np.diag([2.0, 3.0, 4.0])[None]), [[2, 3, 4]])


def test_far_images_and_dense_cells_are_refused():
    cu = SystemArrays(
        np.array([[0.0, 0, 0], [1e5, 0, 0]]), np.array([29, 29]), np.eye(3) * 0.05, np.ones(3, bool)
    )
    assert "cells away" in refusal([cu], cutoffs=(5.0,))
    nm = SystemArrays(
        np.random.default_rng(0).random((32, 3)) * 0.72,
        np.full(32, 29),
        np.eye(3) * 0.72,
        np.ones(3, bool),
    )  # a Cu cell written in nm
    assert "neighbours per atom" in check_or(nm)


def check_or(system):
    try:
        check_systems([system], Limits(), cutoffs=(5.0,))
    except InvalidInput as err:
        return str(err)
    return ""
