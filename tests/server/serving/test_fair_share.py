"""Fair share end to end: a flooding tenant beside a light one, and tenant limits."""

from __future__ import annotations

import asyncio
import time

import pytest
from ase.build import bulk

from mlipserve.client import Client, ResourceExhausted
from mlipserve.server.config import Settings
from mlipserve.server.serving.batcher import DynamicBatcher
from tests.conftest import ServerThread


@pytest.mark.parametrize("prepare", [None, list], ids=["plain", "pipelined"])
def test_light_tenant_is_not_starved_by_a_flooding_one(prepare):
    """A batch costs a fixed 50 ms (as on a GPU); 200 flood requests queue before the light
    one. Pipelined: the same with a prepare step, batch N+1 taken while N runs."""

    def run(items):
        time.sleep(0.05)
        return items

    async def light_latency(flood: int) -> float:
        batcher = DynamicBatcher(run, max_batch_weight=8, prepare=prepare)
        floods = [asyncio.ensure_future(batcher.submit(i, 4, tenant="flood")) for i in range(flood)]
        await asyncio.sleep(0.005)
        t0 = time.perf_counter()
        await batcher.submit("light", 1, tenant="light")
        latency = time.perf_counter() - t0
        for f in floods:
            f.cancel()
        await batcher.close()
        return latency

    alone = min(asyncio.run(light_latency(0)) for _ in range(3))
    beside = sorted(asyncio.run(light_latency(200)) for _ in range(3))[1]
    assert beside <= 3 * alone, (alone, beside)  # FIFO would wait 100 batches (~5 s)


def test_tenant_queued_atom_limit_is_resource_exhausted():
    srv = ServerThread(Settings(port=0, models=["lj"], tenant_max_queued_atoms=100))
    try:
        big = bulk("Ar", "fcc", a=5.3, cubic=True) * (3, 3, 3)  # 108 atoms > 100
        with pytest.raises(ResourceExhausted, match="limit of 100; retry after"):
            Client(srv.address, "lj").evaluate(big)
        assert Client(srv.address, "lj").evaluate(bulk("Ar", "fcc", a=5.3))["energy"] < 0
    finally:
        srv.stop()


def test_tenant_rate_limit():
    srv = ServerThread(Settings(port=0, models=["lj"], tenant_requests_per_s=2, tenant_burst=3))
    try:
        client = Client(srv.address, "lj")
        atoms = bulk("Ar", "fcc", a=5.3)
        outcomes = []
        for _ in range(6):
            try:
                client.evaluate(atoms)
                outcomes.append("ok")
            except ResourceExhausted as err:
                outcomes.append("limited")
                assert "requests/s" in err.details
        assert outcomes[:3] == ["ok"] * 3 and "limited" in outcomes[3:]
    finally:
        srv.stop()
