"""The dynamic batcher on its own: plain Python batch functions, no model, no gRPC."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mlipserve.server.serving.batcher import BatchFailed, DynamicBatcher


class Recorder:
    """A batch function that records its batches and can be held on a gate."""

    def __init__(self, delay: float = 0.0):
        self.batches: list[list] = []
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, items: list) -> list:
        self.gate.wait(5)
        time.sleep(self.delay)
        self.batches.append(list(items))
        return [item * 10 for item in items]


def run(coro):
    return asyncio.run(coro)


def test_lone_request_on_an_idle_batcher_goes_at_once():
    async def main():
        rec = Recorder()
        batcher = DynamicBatcher(rec, max_batch_weight=10, max_wait_s=0.0)
        t0 = time.perf_counter()
        result, stats = await batcher.submit(3, weight=5)
        elapsed = time.perf_counter() - t0
        await batcher.close()
        return result, stats, elapsed

    result, stats, elapsed = run(main())
    assert result == 30
    assert stats.requests == 1 and stats.atoms == 5 and stats.systems == 1
    assert elapsed < 0.05  # no timer: an idle batcher runs at once


def test_requests_pile_up_while_a_batch_computes():
    async def main():
        rec = Recorder()
        batcher = DynamicBatcher(rec, max_batch_weight=1000)
        rec.gate.clear()  # the first batch blocks until released
        first = asyncio.ensure_future(batcher.submit(1, 1))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit(i, 1)) for i in range(2, 12)]
        await asyncio.sleep(0.05)
        rec.gate.set()
        results = await asyncio.gather(first, *rest)
        await batcher.close()
        return rec.batches, results

    batches, results = run(main())
    assert batches == [[1], list(range(2, 12))]
    assert [r for r, _ in results] == [i * 10 for i in range(1, 12)]
    assert all(stats.requests == 10 for _, stats in results[1:])


def test_weight_limit_splits_batches_and_oversize_runs_alone():
    async def main():
        rec = Recorder()
        batcher = DynamicBatcher(rec, max_batch_weight=10)
        rec.gate.clear()
        blocker = asyncio.ensure_future(batcher.submit(0, 1))
        await asyncio.sleep(0.05)
        futs = [
            asyncio.ensure_future(batcher.submit(i, w))
            for i, w in [(1, 4), (2, 4), (3, 4), (4, 50), (5, 2)]
        ]
        await asyncio.sleep(0.05)
        rec.gate.set()
        await asyncio.gather(blocker, *futs)
        await batcher.close()
        return rec.batches

    assert run(main()) == [[0], [1, 2], [3], [4], [5]]


def test_batching_off_runs_one_request_per_call():
    async def main():
        rec = Recorder()
        batcher = DynamicBatcher(rec, max_batch_weight=1000, max_batch_items=1)
        await asyncio.gather(*(batcher.submit(i, 1) for i in range(6)))
        await batcher.close()
        return rec.batches

    assert run(main()) == [[i] for i in range(6)]


def test_max_wait_gathers_a_fuller_batch():
    async def main():
        rec = Recorder()
        batcher = DynamicBatcher(rec, max_batch_weight=1000, max_wait_s=0.2)
        first = asyncio.ensure_future(batcher.submit(1, 1))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(batcher.submit(2, 1))
        await asyncio.gather(first, second)
        await batcher.close()
        return rec.batches

    assert run(main()) == [[1, 2]]


def test_cancelled_request_leaves_the_queue_before_its_batch_starts():
    async def main():
        rec = Recorder()
        batcher = DynamicBatcher(rec, max_batch_weight=1000)
        rec.gate.clear()
        blocker = asyncio.ensure_future(batcher.submit(0, 1))
        await asyncio.sleep(0.05)
        doomed = asyncio.ensure_future(batcher.submit(1, 1))
        kept = asyncio.ensure_future(batcher.submit(2, 1))
        await asyncio.sleep(0.01)
        doomed.cancel()
        rec.gate.set()
        await asyncio.gather(blocker, kept)
        await batcher.close()
        return rec.batches

    assert run(main()) == [[0], [2]]


def test_exception_fails_that_batch_only():
    def flaky(items):
        if -1 in items:
            raise RuntimeError("boom")
        return items

    async def main():
        batcher = DynamicBatcher(flaky, max_batch_weight=1000)
        with pytest.raises(BatchFailed, match="RuntimeError: boom"):
            await batcher.submit(-1, 1)
        ok, _ = await batcher.submit(5, 1)
        await batcher.close()
        return ok

    assert run(main()) == 5


def test_close_cancels_waiting_requests():
    async def main():
        rec = Recorder()
        batcher = DynamicBatcher(rec, max_batch_weight=1000)
        rec.gate.clear()
        running = asyncio.ensure_future(batcher.submit(0, 1))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(batcher.submit(1, 1))
        await asyncio.sleep(0.01)
        await batcher.close()
        rec.gate.set()
        return await asyncio.gather(running, waiting, return_exceptions=True)

    results = run(main())
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
