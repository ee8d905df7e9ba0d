"""Rolling windows of recent batches and requests for the status page (one set per process).

Prometheus keeps totals and fixed buckets; the status page also wants percentiles of the last
minute, each batch's fill and each tenant's share of compute. These small, bounded deques hold
just that: the last `max_events` batches and requests, read over the last `window_s` seconds.
A request's share of compute is its batch's compute time × its fraction of the batch's atoms.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BatchEvent:
    """One batch a model ran."""

    t: float
    model: str
    version: str
    requests: int
    systems: int
    atoms: int
    compute_s: float


@dataclass(frozen=True)
class RequestEvent:
    """One request that got its result."""

    t: float
    model: str
    tenant: str
    atoms: int
    latency_s: float  # queue wait + its batch's compute
    compute_share_s: float


class LiveStats:
    """Bounded deques of recent batches and requests, thread-safe (batches finish on threads)."""

    def __init__(self, max_events: int = 20_000) -> None:
        self.batches: deque[BatchEvent] = deque(maxlen=max_events)
        self.requests: deque[RequestEvent] = deque(maxlen=max_events)
        self._lock = threading.Lock()

    def record_batch(
        self, model: str, version: str, requests: int, systems: int, atoms: int, compute_s: float
    ) -> None:
        """Note one batch of `model`@`version`."""
        event = BatchEvent(time.time(), model, version, requests, systems, atoms, compute_s)
        with self._lock:
            self.batches.append(event)

    def record_request(
        self,
        model: str,
        tenant: str,
        atoms: int,
        queue_wait_s: float,
        compute_s: float,
        batch_atoms: int,
    ) -> None:
        """Note one answered request and its share (by atoms) of its batch's compute."""
        share = compute_s * atoms / batch_atoms if batch_atoms > 0 else compute_s
        event = RequestEvent(time.time(), model, tenant, atoms, queue_wait_s + compute_s, share)
        with self._lock:
            self.requests.append(event)

    def clear(self) -> None:
        """Forget everything (tests, or an operator's reset)."""
        with self._lock:
            self.batches.clear()
            self.requests.clear()

    def recent(self, window_s: float, now: float | None = None):
        """Copies of the batches and requests of the last `window_s` seconds."""
        start = (time.time() if now is None else now) - window_s
        with self._lock:
            batches = [b for b in self.batches if b.t >= start]
            requests = [r for r in self.requests if r.t >= start]
        return batches, requests

    def snapshot(self, window_s: float = 60.0, series_s: int = 120) -> dict:
        """Per-model and per-tenant figures over `window_s`, plus per-second series over the
        last `series_s` seconds (for charts): requests, p50/p99 latency, mean batch fill."""
        now = time.time()
        batches, requests = self.recent(max(window_s, series_s), now)
        cut = now - window_s
        in_window = [r for r in requests if r.t >= cut]
        models: dict[str, dict] = {}
        for name in sorted({b.model for b in batches} | {r.model for r in requests}):
            mb = [b for b in batches if b.model == name and b.t >= cut]
            mr = [r for r in in_window if r.model == name]
            models[name] = {**fill(mb), **latency(mr), "requests": len(mr)}
        total = sum(r.compute_share_s for r in in_window)
        tenants = {}
        for tenant in sorted({r.tenant for r in in_window}):
            tr = [r for r in in_window if r.tenant == tenant]
            compute = sum(r.compute_share_s for r in tr)
            tenants[tenant] = {
                "requests": len(tr),
                "atoms": sum(r.atoms for r in tr),
                "compute_s": compute,
                "share": compute / total if total > 0 else 0.0,
            }
        return {
            "window_s": window_s,
            "overall": {**fill([b for b in batches if b.t >= cut]), **latency(in_window)},
            "models": models,
            "tenants": tenants,
            "series": series(batches, requests, now, series_s),
        }


def percentile_ms(values: list[float], q: float) -> float | None:
    """The `q`-th percentile of seconds, in ms (None for no values)."""
    return float(np.percentile(values, q) * 1e3) if values else None


def latency(requests: list[RequestEvent]) -> dict:
    """p50 and p99 latency (ms) of some requests."""
    values = [r.latency_s for r in requests]
    return {"p50_ms": percentile_ms(values, 50), "p99_ms": percentile_ms(values, 99)}


def fill(batches: list[BatchEvent]) -> dict:
    """Batch count and mean requests, systems and atoms per batch."""
    n = len(batches)
    mean = (lambda key: sum(getattr(b, key) for b in batches) / n) if n else (lambda key: None)
    return {
        "batches": n,
        "requests_per_batch": mean("requests"),
        "systems_per_batch": mean("systems"),
        "atoms_per_batch": mean("atoms"),
        "compute_s": sum(b.compute_s for b in batches),
    }


def series(
    batches: list[BatchEvent], requests: list[RequestEvent], now: float, seconds: int
) -> dict:
    """Per-second columns (uPlot's layout): time, requests, p50/p99 ms, mean batch fill."""
    start = int(now) - seconds + 1
    cols: dict[str, list] = {
        k: [None] * seconds
        for k in ("p50_ms", "p99_ms", "requests_per_batch", "systems_per_batch", "atoms_per_batch")
    }
    t = list(range(start, start + seconds))
    counts = [0] * seconds
    lat: list[list[float]] = [[] for _ in range(seconds)]
    for r in requests:
        i = int(r.t) - start
        if 0 <= i < seconds:
            counts[i] += 1
            lat[i].append(r.latency_s)
    per_batch: list[list[BatchEvent]] = [[] for _ in range(seconds)]
    for b in batches:
        i = int(b.t) - start
        if 0 <= i < seconds:
            per_batch[i].append(b)
    for i in range(seconds):
        cols["p50_ms"][i] = percentile_ms(lat[i], 50)
        cols["p99_ms"][i] = percentile_ms(lat[i], 99)
        f = fill(per_batch[i])
        for key in ("requests_per_batch", "systems_per_batch", "atoms_per_batch"):
            cols[key][i] = f[key]
    return {"t": t, "requests": counts, **cols}
