"""The status page's rolling windows: percentiles, batch fill, compute shares, series, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from mlipserve.server.serving.livestats import LiveStats


def test_window_figures_from_known_events():
    live = LiveStats()
    live.record_batch("lj", "v1", requests=3, systems=4, atoms=40, compute_s=0.02)
    live.record_batch("lj", "v1", requests=1, systems=1, atoms=10, compute_s=0.01)
    # the 3-request batch: tenant a sent 30 of its 40 atoms, b 10
    live.record_request("lj", "a", 20, queue_wait_s=0.001, compute_s=0.02, batch_atoms=40)
    live.record_request("lj", "a", 10, queue_wait_s=0.002, compute_s=0.02, batch_atoms=40)
    live.record_request("lj", "b", 10, queue_wait_s=0.003, compute_s=0.02, batch_atoms=40)
    live.record_request("lj", "b", 10, queue_wait_s=0.0, compute_s=0.01, batch_atoms=10)
    doc = live.snapshot(window_s=60)
    lj = doc["models"]["lj"]
    assert (lj["batches"], lj["requests"]) == (2, 4)
    fill = (lj["requests_per_batch"], lj["systems_per_batch"], lj["atoms_per_batch"])
    assert fill == (2, 2.5, 25)
    latencies = [0.021, 0.022, 0.023, 0.01]
    assert lj["p50_ms"] == pytest.approx(1e3 * np.percentile(latencies, 50))
    assert lj["p99_ms"] == pytest.approx(1e3 * np.percentile(latencies, 99))
    a, b = doc["tenants"]["a"], doc["tenants"]["b"]
    assert a["compute_s"] == pytest.approx(0.015) and b["compute_s"] == pytest.approx(0.015)
    assert a["share"] == pytest.approx(0.5) and a["atoms"] == 30 and b["requests"] == 2
    series = doc["series"]
    assert len(series["t"]) == 120 and sum(series["requests"]) == 4
    assert series["t"][-1] - series["t"][0] == 119


def test_old_events_leave_the_window_and_the_deques_are_bounded():
    live = LiveStats(max_events=5)
    for _ in range(8):
        live.record_request("lj", "a", 1, 0.0, 0.001, 1)
    assert len(live.requests) == 5
    assert live.snapshot(window_s=60)["tenants"]["a"]["requests"] == 5
    batches, requests = live.recent(60, now=live.requests[-1].t + 3600)
    assert batches == [] and requests == []
    empty = LiveStats().snapshot()
    assert empty["overall"]["p50_ms"] is None and empty["overall"]["batches"] == 0
