"""A dynamic batcher: gathers awaiting requests into one call of a batch function.

It knows nothing of models. Each pending entry carries an item, a weight (atoms) and a
count (systems). When the batch function is idle, whatever waits goes at once; requests
pile up only while a batch computes (continuous batching). `max_wait_s` optionally holds
a batch back for fuller batches; `max_batch_items=1` turns batching off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from mlipserve.server.serving.fairqueue import FairQueue

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class BatchStats:
    """Which batch a request rode in and how its time was spent."""

    requests: int
    systems: int
    atoms: int
    queue_wait_s: float
    compute_s: float


@dataclass
class _Pending(Generic[T]):
    item: T
    weight: int
    count: int
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)


class BatchFailed(RuntimeError):
    """The batch function raised; every request of that batch gets this error."""


class DynamicBatcher(Generic[T, R]):
    """Batch awaiting requests into calls of `run(items) -> results` on a worker thread.

    Args:
        run: the batch function; returns one result per item, in order.
        max_batch_weight: a batch stops growing before its weight would exceed this. A
            single item heavier than this runs alone.
        max_wait_s: extra time to hold a batch open for more requests (0: none).
        max_batch_items: most items per batch (None: unbounded; 1: batching off).
    """

    def __init__(
        self,
        run: Callable[[list[T]], list[R]],
        *,
        max_batch_weight: int,
        max_wait_s: float = 0.0,
        max_batch_items: int | None = None,
        name: str = "batcher",
    ) -> None:
        if max_batch_weight < 1:
            raise ValueError("max_batch_weight must be at least 1")
        self._run = run
        self.max_batch_weight = max_batch_weight
        self.max_wait_s = max_wait_s
        self.max_batch_items = max_batch_items
        self.name = name
        self._pending = FairQueue(is_dead=lambda entry: entry.future.done())
        self._wakeup = asyncio.Event()  # replaced by one of the running loop on start
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._running = False
        self.batches_run = 0
        self.largest_batch = 0

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

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.max_wait_s > 0 and not self._is_full():
                heads = self._pending.heads()
                if not heads:
                    continue
                deadline = min(e.arrived for e in heads) + self.max_wait_s
                while not self._is_full() and (left := deadline - time.perf_counter()) > 0:
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), left)
                    except TimeoutError:
                        break
            batch = self._take()
            if not batch:
                continue
            await self._execute(loop, batch)

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending[T]]) -> None:
        start = time.perf_counter()
        self._running = True
        try:
            results = await loop.run_in_executor(
                self._executor, self._run, [entry.item for entry in batch]
            )
            if len(results) != len(batch):
                raise BatchFailed(
                    f"batch function returned {len(results)} results for {len(batch)}"
                )
        except asyncio.CancelledError:
            for entry in batch:
                entry.future.cancel()
            raise
        except Exception as exc:  # one failure fails the batch, never the batcher
            error = (
                exc if isinstance(exc, BatchFailed) else BatchFailed(f"{type(exc).__name__}: {exc}")
            )
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(error)
            return
        finally:
            self._running = False
        compute = time.perf_counter() - start
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        systems = sum(e.count for e in batch)
        atoms = sum(e.weight for e in batch)
        for entry, result in zip(batch, results):
            if not entry.future.done():
                stats = BatchStats(len(batch), systems, atoms, start - entry.arrived, compute)
                entry.future.set_result((result, stats))

    async def drain_and_close(self, poll_s: float = 0.01) -> None:
        """Let queued and running batches finish, then stop."""
        while self._pending or self._running:
            await asyncio.sleep(poll_s)
        await self.close()

    async def close(self) -> None:
        """Stop the loop; waiting requests fail with CancelledError."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for entry in self._pending.drain():
            entry.future.cancel()
        self._executor.shutdown(wait=False)
