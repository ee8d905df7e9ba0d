"""Three replica processes sharing a store and Redis, 16 clients running MD over them: one
replica SIGKILLed mid-run and a promotion during the run. No client fails, no step is lost,
every trajectory equals the uninterrupted in-process run, every response names its version
and replica, and the promotion reaches every replica within 2 s."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
from ase import units
from ase.build import bulk

from mlipserve.server import store_events
from mlipserve.server.store import ModelStore
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import velocity_verlet
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.provider import RemoteProvider
from tests.conftest import ServerProcess, free_port
from tests.server.serving.test_push_promotion import REDIS, tiny_store

CLIENTS, STEPS, KILL_AT, PROMOTE_AT = 16, 60, 15, 30


class Recorder:
    """A provider that keeps the version and replica of every response."""

    def __init__(self, inner) -> None:
        self.inner, self.seen = inner, []

    def evaluate(self, systems, properties=("energy", "forces")):
        results = self.inner.evaluate(systems, properties)
        self.seen.append((time.monotonic(), results[0]["model_version"], results[0]["replica"]))
        return results


def crystal(k: int):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.05, seed=k)
    return atoms


def run_md(provider, k: int, steps: int, on_step=None) -> np.ndarray:
    state = MDState.from_atoms([crystal(k)], temperature_K=300, seeds=[k])
    md = MolecularDynamics(provider, state, velocity_verlet(2 * units.fs))
    for step in range(steps):
        md.step()
        if on_step is not None:
            on_step(step)
    return md.state.positions.copy()


def test_sigkill_a_replica_and_promote_during_16_md_clients(tmp_path):
    from mlipserve.server.serving.local import LocalProvider

    store = tiny_store(tmp_path)
    store.save(
        "cu",
        store.load_module("cu", "v1")[0],
        store.metadata("cu", "v1"),
        version="v3",
        make_default=False,
    )  # fmt: skip  (v1's weights, a new version)
    reference = LocalProvider(ModelStore(tmp_path).load("cu", "v1", dtype="float64", device="cpu"))
    expected = [run_md(reference, k, STEPS) for k in range(CLIENTS)]
    env = {"MLIPSERVE_STORE_DIR": str(tmp_path), "MLIPSERVE_DATA_DIR": str(tmp_path),
           "MLIPSERVE_WATCH_STORE_S": "60", "MLIPSERVE_REDIS_URL": REDIS,
           "MLIPSERVE_WORKERS": "0", "OMP_NUM_THREADS": "1"}  # fmt: skip
    replicas = [
        ServerProcess(
            free_port(), "--models", "store:cu", env={**env, "MLIPSERVE_REPLICA_NAME": f"r{i}"}
        )
        for i in range(3)
    ]
    targets = [r.address for r in replicas]
    kill, promote = threading.Barrier(CLIENTS + 1), threading.Barrier(CLIENTS + 1)
    finals, recorders, errors = [None] * CLIENTS, [None] * CLIENTS, []

    def client(k: int) -> None:
        try:
            recorder = Recorder(RemoteProvider(targets, "cu", balance=True))
            recorders[k] = recorder

            def on_step(step: int) -> None:
                if step == KILL_AT:
                    kill.wait(60)
                if step == PROMOTE_AT:
                    promote.wait(60)
                    time.sleep(2.0)  # every replica has switched by now (asserted below)

            finals[k] = run_md(recorder, k, STEPS, on_step)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            errors.append(err)
            kill.abort()
            promote.abort()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        kill.wait(120)
        os.kill(replicas[0].proc.pid, signal.SIGKILL)  # mid-run: calls in flight are lost
        killed_at = time.monotonic()
        promote.wait(120)
        store_events.configure(REDIS)
        store.set_default("cu", "v3")
        promoted_at = time.monotonic()
        for t in threads:
            t.join(180)
    finally:
        store_events.configure(None)
        for r in replicas:
            r.proc.kill()
    assert not errors, errors
    for k in range(CLIENTS):
        assert np.allclose(finals[k], expected[k], atol=1e-9), k  # no step lost or repeated
        seen = recorders[k].seen
        assert len(seen) == STEPS + 1  # one response per force call
        assert not [s for s in seen if s[0] > killed_at + 1.0 and s[2] == "r0"]
        late = [s for s in seen if s[0] > promoted_at + 2.0]
        assert late and all(version == "v3" for _, version, _ in late), late[:3]
        assert all(version in ("v1", "v3") for _, version, _ in seen)
    replicas_seen = {s[2] for rec in recorders for s in rec.seen}
    assert replicas_seen == {"r0", "r1", "r2"}
