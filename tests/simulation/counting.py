"""A real provider wrapper that records the batch size of every call (drivers batch or not)."""

from __future__ import annotations


class CountingProvider:
    """Forwards to `inner` and records every call's batch size in `sizes`."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    def evaluate(self, systems, properties=("energy", "forces")):
        self.sizes.append(len(systems))
        return self.inner.evaluate(systems, properties)
