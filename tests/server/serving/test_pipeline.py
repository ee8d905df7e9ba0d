"""The pipelined batcher: batch N+1 is prepared while batch N runs, results unchanged."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from ase.build import bulk

from mlipserve.server.models.builtin import lennard_jones, lj_ensemble
from mlipserve.server.serving.batcher import BatchFailed, DynamicBatcher
from mlipserve.server.serving.checks import Limits
from mlipserve.server.serving.dispatch import (
    OutOfMemory,
    make_request,
    prepare_requests,
    run_prepared_requests,
    run_requests,
)
from mlipserve.server.serving.metrics import OOM_SPLITS
from mlipserve.server.serving.registry import Registry
from mlipserve.wire import SystemArrays

PROPS = frozenset({"energy", "forces", "stress"})


def argon(n_rep: int, seed: int) -> SystemArrays:
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True) * (n_rep, n_rep, n_rep)
    atoms.rattle(0.05, seed=seed)
    return SystemArrays.from_atoms(atoms)


class Timeline:
    """Wall-clock intervals of the calls it wraps, by name and call number."""

    def __init__(self) -> None:
        self.spans: dict[str, list[tuple[float, float]]] = {}
        self.lock = threading.Lock()

    def wrap(self, name: str, fn):
        def timed(arg):
            start = time.perf_counter()
            try:
                return fn(arg)
            finally:
                with self.lock:
                    self.spans.setdefault(name, []).append((start, time.perf_counter()))

        return timed


def test_next_batch_is_prepared_while_the_previous_one_runs_on_a_real_model():
    """A real 8-member LJ ensemble on 500-atom systems, one request per batch: batch 2's
    neighbour list and tensors are built while batch 1's forces compute (the run thread
    does not wait for the host), and the results are those of each request alone."""
    model = lj_ensemble(k=8)
    registry = Registry(batching=False, pipeline=True)
    loaded = registry.add(model)
    timeline = Timeline()
    batcher = loaded.batcher
    batcher._prepare = timeline.wrap("prepare", batcher._prepare)
    batcher._run = timeline.wrap("run", batcher._run)
    jobs = [make_request([argon(5, seed=i)], PROPS, model.info, Limits()) for i in range(3)]

    async def main():
        out = await asyncio.gather(*(batcher.submit(job, job.n_atoms) for job in jobs))
        await registry.close()
        return out

    results = asyncio.run(main())
    prepare, run = timeline.spans["prepare"], timeline.spans["run"]
    assert len(prepare) == len(run) == 3 and batcher.overlapped >= 1
    assert prepare[1][1] < run[0][1]  # batch 2 was ready before batch 1's run ended
    for n in (1, 2):  # one run at a time, each after its own preparation
        assert prepare[n][1] <= run[n][0] and run[n - 1][1] <= run[n][0]
    for job, (result, stats) in zip(jobs, results):
        (alone,) = run_requests(model, [job])
        assert stats.requests == 1 and stats.compute_s > 0 and stats.queue_wait_s >= 0
        for key in ("energy", "forces", "stress"):
            assert np.array_equal(result[0][key], alone[0][key]), key


def test_pipelined_batches_keep_their_requests_order_and_results():
    model = lennard_jones()
    systems = [argon(1 + i % 2, seed=i) for i in range(12)]
    jobs = [make_request([s], PROPS, model.info, Limits()) for s in systems]
    registry = Registry(max_batch_atoms=80, pipeline=True)  # 216 atoms: 3 batches or more
    loaded = registry.add(model)

    async def main():
        out = await asyncio.gather(*(loaded.batcher.submit(j, j.n_atoms) for j in jobs))
        await registry.close()
        return out

    results = asyncio.run(main())
    assert loaded.batcher.batches_run >= 3 and loaded.batcher.largest_batch > 1
    reference = run_requests(model, jobs)  # one call of all of them, unpipelined
    for (result, _), ref, system in zip(results, reference, systems):
        assert result[0]["forces"].shape == (len(system.numbers), 3)
        for key in ("energy", "forces", "stress"):
            assert np.array_equal(result[0][key], ref[0][key]), key


def test_a_batch_whose_prepare_raises_fails_only_its_own_requests():
    def prepare(items):
        if -1 in items:
            raise ValueError("no neighbour list for this one")
        return [item + 1 for item in items]

    def run(prepared):
        time.sleep(0.02)
        return [item * 10 for item in prepared]

    async def main():
        batcher = DynamicBatcher(run, max_batch_weight=100, max_batch_items=1, prepare=prepare)
        futures = [asyncio.ensure_future(batcher.submit(i, 1)) for i in (1, 2, -1, 3, 4)]
        out = await asyncio.gather(*futures, return_exceptions=True)
        await batcher.close()
        return out

    one, two, bad, three, four = asyncio.run(main())
    assert [one[0], two[0], three[0], four[0]] == [20, 30, 40, 50]
    assert isinstance(bad, BatchFailed) and "ValueError: no neighbour list" in str(bad)


def test_next_batch_is_held_open_until_its_preparation_is_due():
    """Once run and prepare times are learned, batch N+1 is taken late enough to gather
    the requests that arrive while N runs (not just the first of them)."""
    batches: list[list[int]] = []

    def prepare(items):
        time.sleep(0.005)
        return list(items)

    def run(prepared):
        batches.append(prepared)
        time.sleep(0.3)
        return prepared

    async def main():
        batcher = DynamicBatcher(run, max_batch_weight=100, prepare=prepare)
        await batcher.submit(0, 1)  # learns ~0.3 s per unit of weight
        first = asyncio.ensure_future(batcher.submit(1, 1))
        await asyncio.sleep(0.03)
        second = asyncio.ensure_future(batcher.submit(2, 1))
        await asyncio.sleep(0.1)
        third = asyncio.ensure_future(batcher.submit(3, 1))
        out = await asyncio.gather(first, second, third)
        await batcher.close()
        return [r for r, _ in out]

    assert asyncio.run(main()) == [1, 2, 3]
    assert batches == [[0], [1], [2, 3]]


def test_request_cancelled_while_prepared_is_dropped_and_close_cancels_the_rest():
    gate = threading.Event()
    ran: list[list[int]] = []

    def run(prepared):
        gate.wait(5)
        ran.append(prepared)
        return prepared

    async def main():
        batcher = DynamicBatcher(run, max_batch_weight=100, max_batch_items=1, prepare=list)
        running = asyncio.ensure_future(batcher.submit(0, 1))
        await asyncio.sleep(0.05)
        doomed = asyncio.ensure_future(batcher.submit(1, 1))  # prepared, waits for 0
        await asyncio.sleep(0.05)
        doomed.cancel()
        gate.set()
        first = await running
        gate.clear()
        held = asyncio.ensure_future(batcher.submit(2, 1))
        queued = asyncio.ensure_future(batcher.submit(3, 1))
        await asyncio.sleep(0.05)
        await batcher.close()
        gate.set()
        rest = await asyncio.gather(held, queued, return_exceptions=True)
        return first, rest, doomed.cancelled()

    first, rest, doomed_cancelled = asyncio.run(main())
    assert first[0] == 0 and doomed_cancelled
    assert [1] not in ran  # nobody waited for it any more: never run
    assert all(isinstance(r, asyncio.CancelledError) for r in rest)


@pytest.mark.parametrize("pipeline", [True, False])
def test_prepared_requests_give_the_results_of_run_requests(pipeline):
    model = lennard_jones()
    jobs = [make_request([argon(1, seed=1), argon(2, seed=2)], PROPS, model.info, Limits())]
    jobs.append(make_request([argon(1, seed=9)], frozenset({"energy"}), model.info, Limits()))
    registry = Registry(pipeline=pipeline)
    loaded = registry.add(model)
    batch = loaded.batcher._run
    arg = prepare_requests(model, jobs) if pipeline else jobs
    got, want = batch(arg), run_requests(model, jobs)
    assert set(got[1][0]) == {"energy"} and got[1][0]["energy"] == want[1][0]["energy"]
    for g, w in zip(got[0], want[0]):
        assert set(g) == {"energy", "forces", "stress"}
        assert all(np.array_equal(g[k], w[k]) for k in g)


def test_pipeline_is_on_by_default_for_models_that_split_their_call(monkeypatch):
    from mlipserve.server.models.builtin import emt_model

    monkeypatch.setenv("MLIPSERVE_PIPELINE", "auto")
    split, whole = lennard_jones(), emt_model()
    assert Registry().pipelines(split) and not Registry().pipelines(whole)
    assert not Registry(pipeline=False).pipelines(split)
    assert Registry().add(split).batcher._prepare is not None
    assert Registry().add(whole).batcher._prepare is None
    monkeypatch.setenv("MLIPSERVE_PIPELINE", "0")
    assert not Registry().pipelines(split) and Registry(pipeline=True).pipelines(split)
    monkeypatch.setenv("MLIPSERVE_PIPELINE", "yes")
    with pytest.raises(ValueError, match="MLIPSERVE_PIPELINE must be 1, 0 or auto, not 'yes'"):
        Registry().pipelines(split)


class Bounded:
    """A real LJ model in two halves whose device fits 20 atoms: too big a batch runs out of
    memory in `run` (or, with `in_prepare`, already when its tensors are made)."""

    def __init__(self, in_prepare: bool = False) -> None:
        self.inner = lennard_jones()
        self.info = self.inner.info
        self.in_prepare = in_prepare
        self.calls: list[tuple[str, int]] = []

    def _check(self, step: str, atoms: int) -> None:
        self.calls.append((step, atoms))
        if atoms > 20 and (step == "prepare") == self.in_prepare:
            raise OutOfMemory("CUDA out of memory. Tried to allocate 2.00 GiB")

    def prepare(self, batch):
        self._check("prepare", len(batch.numbers))
        return self.inner.prepare(batch)

    def run(self, prepared, properties):
        self._check("run", len(prepared.batch.numbers))
        return self.inner.run(prepared, properties)

    def compute(self, batch, properties):
        return self.run(self.prepare(batch), properties)


@pytest.mark.parametrize("in_prepare", [False, True])
def test_out_of_memory_in_either_half_splits_the_prepared_batch(in_prepare):
    model = Bounded(in_prepare)
    jobs = [make_request([argon(1, seed=i)], PROPS, model.info, Limits()) for i in range(8)]
    before = OOM_SPLITS._value.get()
    got = run_prepared_requests(model, prepare_requests(model, jobs))  # 32 atoms > 20
    assert OOM_SPLITS._value.get() > before
    runs = [atoms for step, atoms in model.calls if step == "run"]
    assert model.calls[0] == ("prepare", 32) and runs[0] == (16 if in_prepare else 32)
    assert max(runs[1:]) <= 20  # every run after the failed one fits
    for job, result in zip(jobs, got):
        (alone,) = run_requests(lennard_jones(), [job])
        assert all(np.array_equal(result[0][k], alone[0][k]) for k in PROPS)
