"""A client that gives up: its unstarted work is dropped and its error says what happened."""

from __future__ import annotations

import threading
import time

import pytest
from ase.build import bulk

from mlipserve.client import Client
from mlipserve.client.errors import DeadlineExceeded
from mlipserve.server.config import Settings
from tests.conftest import ServerThread


@pytest.fixture()
def emt_server():
    srv = ServerThread(Settings(port=0, models=["emt"]))
    yield srv
    srv.stop()


def _batcher(srv: ServerThread):
    ((loaded, _),) = srv.registry.entries()
    return loaded.batcher


def _busy(srv: ServerThread, client: Client) -> threading.Thread:
    """Start a long computation (EMT on 4,000 atoms, ~1 s here) and return once it runs."""
    big = bulk("Cu", cubic=True).repeat((10, 10, 10))
    worker = threading.Thread(target=client.evaluate, args=(big,), daemon=True)
    worker.start()
    batcher = _batcher(srv)
    end = time.monotonic() + 30
    while not batcher._running and time.monotonic() < end:
        time.sleep(0.005)
    assert batcher._running, "the long computation never started"
    return worker


@pytest.mark.parametrize("mode", ["unary", "stream"])
def test_work_a_client_gave_up_on_is_dropped_unstarted(emt_server, mode):
    batcher = _batcher(emt_server)
    with (
        Client(emt_server.address, "emt", timeout=60) as busy,
        Client(emt_server.address, "emt", timeout=0.2) as hasty,
    ):
        worker = _busy(emt_server, busy)
        small = bulk("Cu", cubic=True).repeat((2, 2, 2))
        with pytest.raises(DeadlineExceeded) as info:
            if mode == "unary":
                hasty.evaluate(small)
            else:
                with hasty.stream() as session:
                    session.evaluate(small)
        message = info.value.details
        assert "deadline of 0.2 s exceeded for 1 system of 32 atoms" in message
        assert "'emt'" in message and "drops work that has not started" in message
        worker.join(60)
        assert not worker.is_alive()
        time.sleep(0.3)  # the batcher would have taken the abandoned request by now
        assert batcher.batches_run == 1, "the abandoned request was computed"
        assert batcher.queued == 0
        assert hasty.evaluate(small, timeout=30)["energy"] == pytest.approx(
            busy.evaluate(small)["energy"]
        )
        assert batcher.batches_run == 3
