"""FairQueue on its own: tenants take turns, priority within a tenant, weights respected."""

from __future__ import annotations

from dataclasses import dataclass

from mlipserve.server.serving.fairqueue import FairQueue


@dataclass
class E:
    name: str
    weight: int = 1
    dead: bool = False


def test_flooding_tenant_cannot_starve_a_light_one():
    q = FairQueue()
    for i in range(1000):
        q.push(E(f"flood{i}"), "flood")
    q.push(E("light"), "light")
    batch = q.pop_batch(max_weight=4)
    assert [e.name for e in batch] == ["flood0", "light", "flood1", "flood2"]
    assert q.tenant_weight("flood") == 997 and q.tenant_weight("light") == 0 and len(q) == 997


def test_priority_within_a_tenant_and_turns_across_batches():
    q = FairQueue()
    q.push(E("a-bulk"), "a", priority=1)
    q.push(E("a-md"), "a", priority=0)
    q.push(E("b1"), "b")
    q.push(E("b2"), "b")
    assert [e.name for e in q.pop_batch(max_weight=2)] == ["a-md", "b1"]
    assert [e.name for e in q.pop_batch(max_weight=2)] == ["a-bulk", "b2"]
    assert len(q) == 0 and q.pop_batch(10) == []


def test_weights_dead_entries_and_oversize():
    q = FairQueue(is_dead=lambda e: e.dead)
    q.push(E("big", 50), "a")
    q.push(E("gone", 1, dead=True), "b")
    q.push(E("small", 2), "b")
    assert [e.name for e in q.pop_batch(max_weight=10)] == ["big"]  # alone, never dropped
    assert [e.name for e in q.pop_batch(max_weight=10)] == ["small"]
    assert q.weight == 0 and q.count == 0
