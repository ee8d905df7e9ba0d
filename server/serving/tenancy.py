"""Per-tenant admission: queued-atom limits and a request rate (token bucket)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


class Throttled(Exception):
    """A tenant limit was hit; `retry_after_s` says when to come back."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class TenantLimits:
    """Limits every tenant gets (0 means unlimited)."""

    max_queued_atoms: int = 0
    requests_per_s: float = 0.0
    burst: int = 0
    max_streams: int = 0
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def admit(self, tenant: str, atoms: int, queued_atoms: int) -> None:
        """Raise Throttled when `tenant` may not queue `atoms` more now."""
        if self.max_queued_atoms and queued_atoms + atoms > self.max_queued_atoms:
            raise Throttled(
                f"tenant {tenant!r} has {queued_atoms} atoms queued; {atoms} more would pass its "
                f"limit of {self.max_queued_atoms}",
                retry_after_s=0.1,
            )
        if self.requests_per_s > 0:
            capacity = max(self.burst, 1)
            tokens, stamp = self._buckets.get(tenant, (float(capacity), time.monotonic()))
            now = time.monotonic()
            tokens = min(capacity, tokens + (now - stamp) * self.requests_per_s)
            if tokens < 1:
                wait = (1 - tokens) / self.requests_per_s
                self._buckets[tenant] = (tokens, now)
                raise Throttled(
                    f"tenant {tenant!r} exceeds {self.requests_per_s:g} requests/s",
                    retry_after_s=wait,
                )
            self._buckets[tenant] = (tokens - 1, now)
