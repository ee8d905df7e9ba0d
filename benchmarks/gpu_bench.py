"""GPU benchmarks of `make gpu-check`, each on one device and timed with the device synchronised.

Remote vs in-process (`remote_vs_local.compare`) and the throughput of concurrent clients
with batching on and off (`batching_throughput.load`) share two child servers on the device;
the ensemble of 4 against one member (`ensemble_cost.measure`); µs per atom per MD-like step
of the shipped default model (`step_latency.trajectory`/`stepper`). In-process timings wait
for the device before and after each call (`torch.cuda.synchronize`): the numbers are the
whole call, not the launch of its kernels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import torch

from benchmarks import batching_throughput, ensemble_cost, remote_vs_local, step_latency
from benchmarks.common import ChildServer, summarize, timed
from mlipserve.client import Client
from mlipserve.server.models.builtin import SHIPPED, load_builtin
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore


def synchronize(device: str) -> None:
    """Wait for every queued kernel on `device` (nothing to wait for on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def synced(fn: Callable[[], Any], device: str) -> Callable[[], Any]:
    """`fn` with the device synchronised before and after, so a timer sees the whole call."""

    def call() -> Any:
        synchronize(device)
        out = fn()
        synchronize(device)
        return out

    return call


class SyncedProvider:
    """A LocalProvider whose `evaluate` synchronises the device before and after."""

    def __init__(self, provider: LocalProvider, device: str) -> None:
        self.provider, self.device = provider, device

    def evaluate(self, systems: Sequence[Any], properties: Sequence[str] = ("energy", "forces")):
        """The wrapped provider's results, the device idle before and after."""
        return synced(lambda: self.provider.evaluate(systems, properties), self.device)()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.provider, name)


def served(
    device: str,
    remote_models: Sequence[str],
    remote_sizes: dict,
    remote_repeats: int,
    batching_model: str,
    clients: int,
    seconds: float,
    settle: float,
) -> dict:
    """Remote vs in-process rows, and evaluations/s of `clients` with batching on and off
    (the two servers start together; each is measured while the other idles)."""
    models = ",".join(dict.fromkeys([*remote_models, batching_model]))
    out: dict = {"remote_vs_local": [], "batching": {}}
    with ExitStack() as stack:
        with ThreadPoolExecutor(2) as pool:  # leaving it waits for both
            starting = [
                pool.submit(ChildServer, "--models", models, "--device", device, "--batching"),
                pool.submit(
                    ChildServer, "--models", batching_model, "--device", device, "--no-batching"
                ),
            ]
        for future in starting:  # stop whichever started, even if the other did not
            if future.exception() is None:
                stack.callback(future.result().stop)
        on, off = (future.result() for future in starting)
        for model in remote_models:
            local = SyncedProvider(LocalProvider(load_builtin(model, device=device)), device)
            session = Client(on.address, model).stream()
            try:
                out["remote_vs_local"] += remote_vs_local.compare(
                    model, local, session, remote_sizes, remote_repeats
                )
            finally:
                session.close()
        for name, server in (("batching", on), ("no-batching", off)):
            out["batching"][name] = asyncio.run(
                batching_throughput.load(server.address, clients, seconds, batching_model, settle)
            )
    runs = out["batching"]
    runs.update(clients=clients, atoms_per_system=32, model=batching_model, seconds=seconds)
    runs["ratio"] = runs["batching"]["per_s"] / runs["no-batching"]["per_s"]
    print(
        f"batching {clients} clients: {runs['batching']['per_s']:.0f} vs "
        f"{runs['no-batching']['per_s']:.0f} evaluations/s, ratio {runs['ratio']:.2f}"
    )
    return out


def ensemble(device: str, sizes: dict, repeats: int) -> dict:
    """K=4 vs K=1 rows of the default model's PaiNN configuration on `device` (float32)."""
    single = SyncedProvider(ensemble_cost.provider(1, device), device)
    members = SyncedProvider(ensemble_cost.provider(4, device), device)
    rows = ensemble_cost.measure(single, members, sizes, repeats)
    return {"rows": rows, "model_device": members.model.info.device}


def step(device: str, sizes: dict, steps: int) -> dict:
    """µs per atom per step of the shipped default (float32, K=4, energy + forces + stress +
    uncertainty, a fresh neighbour list per step) over MD-like fcc Cu trajectories."""
    model = ModelStore(SHIPPED).load("default", device=device)
    rows = []
    for reps in sizes.values():
        frames = step_latency.trajectory(steps + 2, reps=reps)
        atoms = int(frames[0].numbers.shape[0])
        seconds = timed(synced(step_latency.stepper(model, frames), device), steps, warmup=2)
        row = {"atoms": atoms, "step": summarize(seconds)}
        row["us_per_atom_step"] = row["step"]["median_us"] / atoms
        rows.append(row)
        print(f"default model {atoms:6d} atoms: {row['us_per_atom_step']:.2f} µs/atom/step")
    return {
        "rows": rows,
        "model_device": model.info.device,
        "model_dtype": model.info.dtype,
        "properties": sorted(step_latency.PROPERTIES),
    }
