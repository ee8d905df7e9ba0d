"""The vectorised fast path of input checks never lets through what the per-system check refuses."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from mlipserve.server.batch import InvalidInput, Limits, check_system, systems_look_valid
from mlipserve.wire import SystemArrays

LIMITS = Limits(max_atoms_per_system=6)
values = st.sampled_from([0.0, 1.0, -2.5, 3.7, 1e-12, np.nan, np.inf])


@st.composite
def systems(draw):
    n = draw(st.integers(0, 7))
    rows = n if draw(st.integers(0, 9)) else n + 1
    positions = np.array(draw(st.lists(st.tuples(values, values, values), min_size=rows,
                                       max_size=rows)), dtype=float).reshape(rows, 3)
    numbers = np.array(draw(st.lists(st.integers(-1, 120), min_size=n, max_size=n)), dtype=int)
    scale = draw(st.sampled_from([0.0, 1e-6, 5.0]))
    cell = np.eye(3) * scale
    if draw(st.booleans()):
        cell[0, 1] = draw(values)
    pbc = np.array(draw(st.lists(st.booleans(), min_size=3, max_size=3)))
    return SystemArrays(positions=positions, numbers=numbers, cell=cell, pbc=pbc)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(systems(), min_size=1, max_size=4), st.booleans(), st.booleans())
def test_fast_path_agrees_with_per_system_check(batch, need_volume, restrict):
    elements = frozenset({1, 29}) if restrict else frozenset()
    fast = systems_look_valid(batch, LIMITS, elements, (), need_volume)
    refused = False
    for i, system in enumerate(batch):
        try:
            check_system(system, f"systems[{i}]", LIMITS, elements, (), need_volume)
        except InvalidInput:
            refused = True
    if fast:
        assert not refused  # the fast path may only say yes when every system is valid


def test_fast_path_accepts_ordinary_batches():
    from ase.build import bulk, molecule

    batch = [SystemArrays.from_atoms(bulk("Cu", cubic=True)), SystemArrays.from_atoms(
        molecule("H2O"))]
    assert systems_look_valid(batch, Limits(), frozenset({1, 8, 29}), (), need_volume=False)
    assert not systems_look_valid(batch, Limits(), frozenset({1, 8, 29}), (), need_volume=True)
