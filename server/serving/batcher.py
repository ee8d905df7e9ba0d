"""A dynamic batcher: gathers awaiting requests into one call of a batch function.

It knows nothing of models. Each pending entry carries an item, a weight (atoms) and a
count (systems). When the batch function is idle, whatever waits goes at once; requests
pile up only while a batch computes (continuous batching). `max_wait_s` optionally holds
a batch back for fuller batches; `max_batch_items=1` turns batching off.

With a `prepare(items) -> prepared` function the batcher pipelines: batch N+1 is prepared
on a thread of its own while `run(prepared)` of batch N computes, at most one batch ahead.
Batch N+1 is taken as late as its preparation allows (its expected preparation time
before 80% of N's expected run, both learned from the batches so far), so it still
gathers what arrives during N.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mlipserve.server.serving.fairqueue import FairQueue

T = TypeVar("T")
R = TypeVar("R")
EMA = 0.3  # weight of the newest batch in the learned seconds per unit of weight
SLACK = 0.2  # batch N+1 is to be ready when 80% of N's expected time has passed


@dataclass(frozen=True)
class BatchStats:
    """Which batch a request rode in and how its time was spent."""

    requests: int
    systems: int
    atoms: int
    queue_wait_s: float
    compute_s: float  # preparation (when pipelined) + the batch function


@dataclass
class _Pending(Generic[T]):
    item: T
    weight: int
    count: int
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)


class BatchFailed(RuntimeError):
    """The batch function raised; every request of that batch gets this error."""


def _failure(exc: BaseException) -> BatchFailed:
    return exc if isinstance(exc, BatchFailed) else BatchFailed(f"{type(exc).__name__}: {exc}")


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    error = _failure(exc)
    for entry in batch:
        if not entry.future.done():
            entry.future.set_exception(error)


_UNPREPARED = object()  # a batch whose prepare step runs on the run thread, just before it


def _learn(estimate: float, measured: float) -> float:
    """A moving average of seconds per unit of weight (the first measurement as it is)."""
    return measured if estimate == 0 else estimate + EMA * (measured - estimate)


def _cancel(batch: list[_Pending]) -> None:
    for entry in batch:
        entry.future.cancel()


class DynamicBatcher(Generic[T, R]):
    """Batch awaiting requests into calls of `run(items) -> results` on a worker thread.

    Args:
        run: the batch function; returns one result per item, in order. With `prepare`
            it receives `prepare(items)` instead of the items.
        max_batch_weight: a batch stops growing before its weight would exceed this. A
            single item heavier than this runs alone.
        max_wait_s: extra time to hold a batch open for more requests (0: none).
        max_batch_items: most items per batch (None: unbounded; 1: batching off).
        prepare: optional host-side step (decode, concatenate, neighbour list) run on its
            own thread while the previous batch's `run` computes; when it raises, only its
            own batch fails.
    """

    def __init__(
        self,
        run: Callable[[Any], list[R]],
        *,
        max_batch_weight: int,
        max_wait_s: float = 0.0,
        max_batch_items: int | None = None,
        name: str = "batcher",
        prepare: Callable[[list[T]], Any] | None = None,
    ) -> None:
        if max_batch_weight < 1:
            raise ValueError("max_batch_weight must be at least 1")
        self._run = run
        self._prepare = prepare
        self.max_batch_weight = max_batch_weight
        self.max_wait_s = max_wait_s
        self.max_batch_items = max_batch_items
        self.name = name
        self._pending = FairQueue(is_dead=lambda entry: entry.future.done())
        self._wakeup = asyncio.Event()  # replaced by one of the running loop on start
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._prep_executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-prepare")
            if prepare is not None
            else None
        )
        self._runs: dict[asyncio.Task, list] = {}  # pipelined runs (computing, queued)
        self._run_due = 0.0  # when the computing batch is expected to end
        self._run_expected = 0.0  # how long it is expected to take
        self._in_hand = 0  # batches taken from the queue and not finished
        self._running = False
        self.run_s_per_weight = 0.0  # learned: seconds of `run` per unit of weight
        self.prepare_s_per_weight = 0.0  # learned: seconds of `prepare` per unit of weight
        self.batches_run = 0
        self.largest_batch = 0
        self.overlapped = 0  # batches prepared while the previous one computed

    def _ensure_started(self) -> None:
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def submit(
        self, item: T, weight: int, count: int = 1, tenant: str = "default", priority: int = 0
    ) -> tuple[R, BatchStats]:
        """Queue `item` for `tenant` (priority 0 before 1) and wait for its result and stats."""
        self._ensure_started()
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.push(_Pending(item, weight, count, future), tenant, priority)
        self._wakeup.set()
        return await future

    def queued_weight(self, tenant: str) -> int:
        """Atoms `tenant` has waiting."""
        return self._pending.tenant_weight(tenant)

    @property
    def queued(self) -> int:
        """Number of requests waiting (cancelled ones included until skipped)."""
        return len(self._pending)

    def _is_full(self) -> bool:
        if self.max_batch_items is not None and len(self._pending) >= self.max_batch_items:
            return True
        return self._pending.weight >= self.max_batch_weight

    def _take(self) -> list[_Pending[T]]:
        """Pop the next batch: tenants in turn, cancelled entries dropped, while they fit."""
        return self._pending.pop_batch(self.max_batch_weight, self.max_batch_items)

    async def _sleep_or_wakeup(self, seconds: float) -> None:
        # a timer, not asyncio.wait_for: 3.11's swallows a cancel that meets a wakeup
        self._wakeup.clear()
        timer = asyncio.get_running_loop().call_later(seconds, self._wakeup.set)
        try:
            await self._wakeup.wait()
        finally:
            timer.cancel()

    async def _hold_open(self) -> None:
        """With `max_wait_s`, wait (up to it since the oldest head arrived) for a full batch."""
        if self.max_wait_s <= 0 or self._is_full():
            return
        heads = self._pending.heads()
        if not heads:
            return
        deadline = min(e.arrived for e in heads) + self.max_wait_s
        while not self._is_full() and (left := deadline - time.perf_counter()) > 0:
            await self._sleep_or_wakeup(left)

    async def _until_prepare_due(self) -> None:
        """While a batch computes, hold the next one open until preparing it would end
        about when the computing one does (at once when the queue is already full); never
        more than one prepared batch waits for the run thread."""
        while len(self._runs) > 1:
            self._wakeup.clear()
            await self._wakeup.wait()
        while self._runs and not self._is_full():
            weight = min(self._pending.weight, self.max_batch_weight)
            due = self._run_due - SLACK * self._run_expected
            left = due - self.prepare_s_per_weight * weight - time.perf_counter()
            if left <= 0:
                return
            await self._sleep_or_wakeup(left)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._hold_open()
            if self._prepare is not None:
                await self._until_prepare_due()
            batch = self._take()
            if not batch:
                continue
            self._in_hand += 1
            if self._prepare is None:
                try:
                    await self._execute(loop, batch, None, time.perf_counter(), 0.0)
                finally:
                    self._in_hand -= 1
            else:
                await self._pipeline(loop, batch)

    async def _pipeline(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending[T]]) -> None:
        """Prepare `batch` on the prepare thread (overlapping the batch computing now) and
        queue its run behind that one's on the run thread, which goes straight from one to
        the next: the loop goes on to the next batch."""
        start = time.perf_counter()
        overlapping = bool(self._runs)
        if not overlapping:  # nothing computes: prepare and run in one thread hop
            self._queue_run(loop, batch, _UNPREPARED, start, 0.0)
            return
        try:
            items = [entry.item for entry in batch]
            prepare = self._prepare
            assert prepare is not None  # only a batcher with a prepare step pipelines
            prepared = await loop.run_in_executor(self._prep_executor, prepare, items)
        except asyncio.CancelledError:
            self._in_hand -= 1
            _cancel(batch)
            raise
        except Exception as exc:  # a failed preparation fails its own batch only
            self._in_hand -= 1
            _fail(batch, exc)
            return
        prepare_s = time.perf_counter() - start
        weight = max(1, sum(e.weight for e in batch))
        self.prepare_s_per_weight = _learn(self.prepare_s_per_weight, prepare_s / weight)
        self.overlapped += 1
        if not self._runs:
            self._run_expected = self.run_s_per_weight * weight
            self._run_due = time.perf_counter() + self._run_expected
        self._queue_run(loop, batch, prepared, start, prepare_s)

    def _queue_run(self, loop, batch: list[_Pending[T]], prepared: Any, start, prepare_s) -> None:
        task = loop.create_task(self._execute(loop, batch, prepared, start, prepare_s))
        self._runs[task] = batch
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        batch = self._runs.pop(task)
        if task.cancelled():  # perhaps before it ever ran
            _cancel(batch)
        self._in_hand -= 1
        self._wakeup.set()  # the loop may be holding the next batch for this one's end

    def _timed_run(self, arg: Any, batch: list[_Pending[T]]) -> tuple[list[R] | None, float, float]:
        """On the run thread: the batch function, when it started and how long an inline
        prepare step took (None: every caller of a prepared batch gave up before it started)."""
        if self._prepare is not None and all(entry.future.done() for entry in batch):
            return None, time.perf_counter(), 0.0
        prepare_s = 0.0
        if arg is _UNPREPARED:
            assert self._prepare is not None
            t0 = time.perf_counter()
            arg = self._prepare([entry.item for entry in batch])
            prepare_s = time.perf_counter() - t0
            weight = max(1, sum(e.weight for e in batch))
            self.prepare_s_per_weight = _learn(self.prepare_s_per_weight, prepare_s / weight)
        start = time.perf_counter()
        self._run_expected = self.run_s_per_weight * max(1, sum(e.weight for e in batch))
        self._run_due = start + self._run_expected
        self._running = True
        try:
            return self._run(arg), start, prepare_s
        finally:
            self._running = False

    async def _execute(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[_Pending[T]],
        prepared: Any,
        start: float,
        prepare_s: float,
    ) -> None:
        arg = [entry.item for entry in batch] if self._prepare is None else prepared
        try:
            results, run_start, inline_prepare_s = await loop.run_in_executor(
                self._executor, self._timed_run, arg, batch
            )
            prepare_s += inline_prepare_s
            if results is None:
                return
            if len(results) != len(batch):
                raise BatchFailed(
                    f"batch function returned {len(results)} results for {len(batch)}"
                )
        except asyncio.CancelledError:
            _cancel(batch)
            raise
        except Exception as exc:  # one failure fails the batch, never the batcher
            _fail(batch, exc)
            return
        run_s = time.perf_counter() - run_start
        weight = max(1, sum(e.weight for e in batch))
        self.run_s_per_weight = _learn(self.run_s_per_weight, run_s / weight)
        compute = prepare_s + run_s
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        systems = sum(e.count for e in batch)
        atoms = sum(e.weight for e in batch)
        for entry, result in zip(batch, results):
            if not entry.future.done():
                wait = max(0.0, run_start - entry.arrived - prepare_s)
                stats = BatchStats(len(batch), systems, atoms, wait, compute)
                entry.future.set_result((result, stats))

    async def drain_and_close(self, poll_s: float = 0.01) -> None:
        """Let queued, preparing and running batches finish, then stop."""
        while self._pending or self._running or self._in_hand:
            await asyncio.sleep(poll_s)
        await self.close()

    async def close(self) -> None:
        """Stop the loop; waiting requests fail with CancelledError."""
        for task in [t for t in (self._task,) if t is not None] + list(self._runs):
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._task = None
        for entry in self._pending.drain():
            entry.future.cancel()
        self._executor.shutdown(wait=False)
        if self._prep_executor is not None:
            self._prep_executor.shutdown(wait=False)
