"""A model call in two halves, prepare (neighbour list, tensors) and run: the same numbers."""

from __future__ import annotations

import threading

import numpy as np
from ase.build import bulk

from mlipserve.server.models.base import prepare_input, run_prepared, splits_call
from mlipserve.server.models.batch import SystemBatch
from mlipserve.server.models.builtin import emt_model, lennard_jones, lj_ensemble
from mlipserve.server.models.torch_potential import PreparedGraph
from mlipserve.wire import SystemArrays

PROPS = frozenset({"energy", "forces", "stress", "energies"})


def systems(n: int, seed: int = 0) -> list[SystemArrays]:
    out = []
    for i in range(n):
        atoms = bulk("Ar", "fcc", a=5.3, cubic=True) * (1 + i % 2, 1, 1)
        atoms.rattle(0.05, seed=seed + i)
        out.append(SystemArrays.from_atoms(atoms))
    return out


def test_run_of_prepare_is_compute_bit_for_bit():
    for model, props in ((lennard_jones(), PROPS), (lj_ensemble(), PROPS | {"uncertainty"})):
        batch = SystemBatch.concat(systems(3))
        prepared = prepare_input(model, batch)
        assert splits_call(model) and isinstance(prepared, PreparedGraph)
        assert prepared.graph["edge_index"].shape[1] > 0
        first, again = run_prepared(model, prepared, props), run_prepared(model, prepared, props)
        want = model.compute(batch, props)
        assert set(first) == set(want) and "forces" in want and "stress" in want
        for key in want:
            assert np.array_equal(first[key], want[key]), key
            assert np.array_equal(again[key], want[key]), key  # a prepared input is reusable


def test_preparing_on_another_thread_while_a_batch_runs_changes_nothing():
    model = lennard_jones()
    big, small = SystemBatch.concat(systems(16, seed=1)), SystemBatch.concat(systems(4, seed=7))
    want = model.compute(small, PROPS)
    prepared: list = []
    worker = threading.Thread(target=lambda: prepared.append(model.prepare(small)))
    worker.start()
    model.compute(big, PROPS)  # runs while `small` is being prepared
    worker.join(30)
    got = model.run(prepared[0], PROPS)
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_a_model_without_halves_is_prepared_as_its_batch():
    model = emt_model()
    copper = [bulk("Cu", "fcc", a=3.61, cubic=True) * (1 + i, 1, 1) for i in range(2)]
    batch = SystemBatch.concat([SystemArrays.from_atoms(a) for a in copper])
    assert not splits_call(model) and prepare_input(model, batch) is batch
    got = run_prepared(model, batch, frozenset({"energy", "forces"}))
    want = model.compute(batch, frozenset({"energy", "forces"}))
    assert np.array_equal(got["energy"], want["energy"]) and got["forces"].shape == (12, 3)
