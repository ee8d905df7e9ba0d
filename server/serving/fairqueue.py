"""The batcher's waiting room: per-tenant queues served round-robin, priority within a tenant.

Pure Python (no asyncio, no models): which requests form the next batch. A tenant with a
thousand queued systems takes one turn per round like a tenant with one, so it cannot starve
it; within a tenant, priority 0 (interactive) goes before 1 (bulk), then arrival order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any


class FairQueue:
    """Entries with a `weight`, grouped by tenant and priority."""

    def __init__(self, is_dead: Callable[[Any], bool] = lambda entry: False) -> None:
        self._is_dead = is_dead
        self._tenants: dict[str, list[deque]] = {}
        self._turns: deque[str] = deque()  # tenants with entries, in turn order
        self._weights: dict[str, int] = {}
        self.weight = 0
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def push(self, entry: Any, tenant: str = "default", priority: int = 0) -> None:
        """Queue an entry (`entry.weight` atoms) for a tenant at a priority (0 first)."""
        queues = self._tenants.get(tenant)
        if queues is None:
            queues = self._tenants[tenant] = [deque(), deque()]
            self._turns.append(tenant)
        queues[min(max(priority, 0), 1)].append(entry)
        self._weights[tenant] = self._weights.get(tenant, 0) + entry.weight
        self.weight += entry.weight
        self.count += 1

    def tenant_weight(self, tenant: str) -> int:
        """Atoms a tenant has waiting."""
        return self._weights.get(tenant, 0)

    def _remove(self, tenant: str, queue: deque) -> Any:
        entry = queue.popleft()
        self._weights[tenant] -= entry.weight
        self.weight -= entry.weight
        self.count -= 1
        return entry

    def _head(self, tenant: str) -> tuple[deque, Any] | None:
        for queue in self._tenants[tenant]:
            while queue and self._is_dead(queue[0]):
                self._remove(tenant, queue)
            if queue:
                return queue, queue[0]
        return None

    def heads(self) -> list[Any]:
        """The next live entry of each tenant."""
        out = []
        for tenant in list(self._turns):
            head = self._head(tenant)
            if head is not None:
                out.append(head[1])
        return out

    def pop_batch(self, max_weight: int, max_items: int | None = None) -> list[Any]:
        """Take one entry per tenant per round while they fit (the first one always fits)."""
        batch: list[Any] = []
        weight = 0
        while self._turns:
            progressed = False
            for _ in range(len(self._turns)):
                if max_items is not None and len(batch) >= max_items:
                    return batch
                tenant = self._turns[0]
                head = self._head(tenant)
                if head is None:
                    self._turns.popleft()
                    del self._tenants[tenant]
                    continue
                self._turns.rotate(-1)
                queue, entry = head
                if batch and weight + entry.weight > max_weight:
                    continue
                batch.append(self._remove(tenant, queue))
                weight += entry.weight
                progressed = True
            if not progressed:
                break
        return batch

    def drain(self) -> list[Any]:
        """Remove and return everything."""
        out = [e for queues in self._tenants.values() for q in queues for e in q]
        self._tenants.clear()
        self._turns.clear()
        self._weights.clear()
        self.weight = self.count = 0
        return out
