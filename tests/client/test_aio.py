"""AsyncClient: the same surface as Client, on an asyncio loop."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from ase.build import bulk

from mlipserve.client import AsyncClient, InvalidInput
from mlipserve.server.models.builtin import morse
from mlipserve.server.serving.local import LocalProvider


def copper(seed):
    atoms = bulk("Cu", cubic=True) * (2, 1, 1)
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_async_unary_stream_and_errors(server):
    async def main():
        async with AsyncClient(server.address, "morse") as client:
            many = await asyncio.gather(*(client.evaluate(copper(i)) for i in range(8)))
            async with client.stream() as session:
                streamed = [await session.evaluate(copper(i)) for i in range(3)]
                with pytest.raises(InvalidInput, match="numbers"):
                    await session.evaluate(bulk("X", "fcc", a=3.6))
                after = await session.evaluate(copper(0))
            models = await client.list_models()
        return many, streamed, after, models

    many, streamed, after, models = asyncio.run(main())
    local = LocalProvider(morse())
    for i, res in enumerate(many):
        assert np.allclose(res["forces"], local.evaluate([copper(i)])[0]["forces"], atol=1e-12)
    assert streamed[0]["energy"] == after["energy"] == many[0]["energy"]
    assert any(m["name"] == "morse" for m in models)
