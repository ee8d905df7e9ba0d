"""Killed and restarted servers, deadlines: clear errors, no hangs, no lost MD steps."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.md.verlet import VelocityVerlet

from mlipserve.client import (
    Client,
    DeadlineExceeded,
    RemoteCalculator,
    RetryPolicy,
    ServerUnavailable,
)
from mlipserve.server.config import Settings
from tests.conftest import ServerProcess, ServerThread, free_port


def argon():
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=4)
    atoms.set_momenta(np.random.default_rng(1).normal(0, 0.5, (32, 3)))
    return atoms


def test_killed_server_gives_clear_error_after_retries():
    proc = ServerProcess(free_port(), "--models", "lj")
    client = Client(proc.address, "lj", retry=RetryPolicy(total_timeout_s=2.0))
    assert client.evaluate(argon())["energy"] < 0
    proc.kill()
    for call in (lambda: client.evaluate(argon()), lambda: client.stream().evaluate(argon())):
        t0 = time.monotonic()
        with pytest.raises(ServerUnavailable, match="no server answered at .* attempts"):
            call()
        assert time.monotonic() - t0 < 6


def test_no_server_at_all_is_a_clear_error():
    client = Client(f"127.0.0.1:{free_port()}", retry=RetryPolicy(total_timeout_s=1.0))
    with pytest.raises(ServerUnavailable):
        client.list_models()


def test_failover_to_a_second_server():
    live = ServerThread(Settings(port=0, models=["lj"]))
    try:
        dead = f"127.0.0.1:{free_port()}"
        client = Client([dead, live.address], "lj", retry=RetryPolicy(total_timeout_s=5.0))
        assert client.evaluate(argon())["energy"] < 0
    finally:
        live.stop()


def test_sigkill_and_restart_during_md_costs_no_step(tmp_path):
    port = free_port()
    proc = ServerProcess(port, "--models", "lj")
    steps, kill_at = 60, 20
    frames: list[np.ndarray] = []
    killed = threading.Event()

    def restart():
        nonlocal proc
        proc.kill()
        killed.set()
        proc = ServerProcess(port, "--models", "lj")

    try:
        atoms = argon()
        with RemoteCalculator(proc.address, "lj") as calc:
            atoms.calc = calc
            dyn = VelocityVerlet(atoms, timestep=5 * units.fs)

            def observe():
                frames.append(atoms.positions.copy())
                if len(frames) == kill_at:
                    threading.Thread(target=restart).start()
                    killed.wait(10)

            dyn.attach(observe, interval=1)
            dyn.run(steps)
        # the same MD with no interruption, on a server in this process
        ref_server = ServerThread(Settings(port=0, models=["lj"]))
        try:
            ref = argon()
            ref_frames = []
            with RemoteCalculator(ref_server.address, "lj") as calc:
                ref.calc = calc
                dyn = VelocityVerlet(ref, timestep=5 * units.fs)
                dyn.attach(lambda: ref_frames.append(ref.positions.copy()), interval=1)
                dyn.run(steps)
        finally:
            ref_server.stop()
        assert killed.is_set()
        assert len(frames) == steps + 1
        assert np.abs(np.array(frames) - np.array(ref_frames)).max() <= 1e-12
    finally:
        proc.terminate()


def test_deadline_exceeded_unary_and_stream():
    # a batcher holding batches open for 2 s makes every call slower than its deadline
    srv = ServerThread(Settings(port=0, models=["lj"], max_wait_us=2_000_000))
    try:
        client = Client(srv.address, "lj", timeout=0.3)
        with pytest.raises(DeadlineExceeded):
            client.evaluate(argon())
        t0 = time.monotonic()
        with client.stream() as session, pytest.raises(DeadlineExceeded):
            session.evaluate(argon())
        assert time.monotonic() - t0 < 1.5
    finally:
        srv.stop()


def test_sigterm_drains_calls_in_flight_and_exits_zero():
    import signal

    # every batch is held open 3 s, so the call is in flight when SIGTERM arrives
    proc = ServerProcess(free_port(), "--models", "lj", "--max-wait-us", "3000000")
    client = Client(proc.address, "lj", retry=RetryPolicy(total_timeout_s=1.0))
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(client.evaluate(argon())))
    worker.start()
    time.sleep(0.5)
    proc.proc.send_signal(signal.SIGTERM)
    worker.join(20)
    assert result["energy"] < 0
    assert proc.proc.wait(20) == 0
    with pytest.raises(ServerUnavailable):
        client.evaluate(argon())
