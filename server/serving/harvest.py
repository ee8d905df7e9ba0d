"""Harvesting on the server: keep the structures the served model is unsure of, off the hot path.

For a model whose metadata has `harvest.enabled` (an admin's setting, `harvest_pool.py`),
a request that did not say `no_harvest` is marked in `service.prepare`; its batch then also
computes the ensemble spread (`dispatch.run_requests`), and after the results are in, the
service hands the systems whose max force std is above the model's `trust_lo` to
`Harvester.offer`: a `put_nowait` on a queue bounded in atoms. One writer thread drains it:
per-tenant rate (kept per minute) and budget (kept in the pool), de-duplication by
structure hash, the pool on disk, the summary file, and the round trigger (every N new
candidates and/or every T minutes: a `harvest_round` job on the server's queue). Nothing a
request sends names a path: the model name is the served model's, the tenant the key's.
A full queue drops the candidates and a failing writer logs; neither touches a request
(`mlipserve_harvest_total{outcome}` counts both).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from ase import Atoms
from prometheus_client import Counter

from mlipserve.server.models.base import ModelInfo, trust_levels
from mlipserve.server.serving.dispatch import EvalRequest
from mlipserve.server.serving.harvest_pool import HarvestSettings, Pool, settings_of
from mlipserve.wire import SystemArrays

log = logging.getLogger("mlipserve.harvest")
HARVESTED = Counter(
    "mlipserve_harvest_total",
    "Candidate structures offered to the harvester, by outcome "
    "(stored, replaced, duplicate, budget, rate, dropped, failed, conditions)",
    ["outcome"],
)
HARVEST_TENANT = "_harvest"  # owner of the round jobs and of the harvest's datasets


@dataclass
class _Offer:
    model: str
    tenant: str
    systems: list[SystemArrays]
    sigmas: list[float]
    atoms: int


class Harvester:
    """The harvest writer of one server: settings cache, bounded queue, one thread."""

    def __init__(
        self,
        store_root: str | Path,
        queue_url: str = "",
        *,
        max_queued_atoms: int = 200_000,
        refresh_s: float = 1.0,
    ) -> None:
        self.root = Path(store_root)
        self.queue_url = queue_url
        self.max_queued_atoms = max_queued_atoms
        self.refresh_s = refresh_s
        self._settings: dict[str, HarvestSettings] = {}  # enabled models only
        self._queue: queue.SimpleQueue[_Offer | None] = queue.SimpleQueue()
        self._queued_atoms = 0
        self._lock = threading.Lock()
        self._recent: dict[tuple[str, str], deque[float]] = {}
        self._pools: dict[str, Pool] = {}
        self._dirty: set[str] = set()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.idle = threading.Event()  # set while the queue is empty and nothing is in hand
        self.idle.set()

    # -- the hot path: two dict lookups and a put ----------------------------------------
    def wants(self, model: str) -> bool:
        """Whether requests for `model` are harvested now (from the cached settings)."""
        return model in self._settings

    def offer(
        self,
        model: str,
        trust_lo: float,
        tenant: str,
        systems: list[SystemArrays],
        sigmas: list[float | None],
    ) -> None:
        """Queue the systems whose sigma is above `trust_lo`; never blocks, never raises.
        Systems that carry conditions (a field, a charge, μe) are not kept: the labellers of a
        round label at zero field and neutral, so their labels would be wrong."""
        try:
            picked = [
                (s, float(g)) for s, g in zip(systems, sigmas) if g is not None and g > trust_lo
            ]
            conditioned = sum(1 for s, _ in picked if s.conditions)
            if conditioned:
                HARVESTED.labels("conditions").inc(conditioned)
                picked = [(s, g) for s, g in picked if not s.conditions]
            if not picked:
                return
            atoms = sum(len(s.numbers) for s, _ in picked)
            with self._lock:
                if self._queued_atoms + atoms > self.max_queued_atoms:
                    HARVESTED.labels("dropped").inc(len(picked))
                    return
                self._queued_atoms += atoms
                self.idle.clear()
            copies = [  # own arrays: a view would keep the whole request's bytes alive
                SystemArrays(np.array(s.positions), np.array(s.numbers), np.array(s.cell), s.pbc)
                for s, _ in picked
            ]
            self._queue.put(_Offer(model, tenant, copies, [g for _, g in picked], atoms))
        except Exception:  # noqa: BLE001 - harvesting never fails a request
            log.exception("harvest offer failed")
            HARVESTED.labels("failed").inc()

    def mark(self, job: EvalRequest, info: ModelInfo, no_harvest: bool) -> EvalRequest:
        """`job`, marked to compute the ensemble spread when `info`'s model is harvested and
        the caller did not opt out."""
        if not no_harvest and "uncertainty" in info.properties and self.wants(info.name):
            return replace(job, harvest=True)
        return job

    def collect(self, job: EvalRequest, info: ModelInfo, tenant: str, results: list) -> None:
        """For a marked job: pop each result's spread and offer its systems."""
        if job.harvest:
            sigmas = [r.pop("harvest_sigma", None) for r in results]
            self.offer(info.name, trust_levels(info)[0], tenant, job.systems, sigmas)

    # -- the writer thread -----------------------------------------------------------------
    def start(self) -> Harvester:
        """Read the settings once and start the writer thread."""
        try:
            self.refresh()
        except Exception:  # noqa: BLE001 - an unreadable store: harvesting stays off
            log.exception("harvest settings could not be read")
        self._thread = threading.Thread(target=self._run, name="mlipserve-harvest", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued (up to `timeout` s) and stop the thread."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def refresh(self) -> None:
        """Re-read every stored model's harvest settings (its default version's metadata)."""
        from mlipserve.server.store import ModelStore, StoreError

        store, found = ModelStore(self.root), {}
        for name in store.names():
            try:
                settings = settings_of(store.metadata(name))
            except (StoreError, ValueError, OSError) as err:
                log.warning("harvest settings of %s unreadable: %s", name, err)
                continue
            if settings.enabled:
                found[name] = settings
        for name in set(self._settings) - set(found):  # turned off: the summary says so
            self._dirty.add(name)
        self._settings = found

    def _run(self) -> None:
        last_refresh = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self.refresh_s)
            except queue.Empty:
                item = None
            if item is None and self._stopping.is_set() and self._queue.empty():
                self._housekeeping()
                return
            try:
                if item is not None:
                    self._store(item)
                if time.monotonic() - last_refresh >= self.refresh_s:
                    last_refresh = time.monotonic()
                    self.refresh()
                if self._queue.empty():
                    self._housekeeping()
            except Exception:  # noqa: BLE001 - a broken disk must not stop the thread
                log.exception("harvest writer failed")
                HARVESTED.labels("failed").inc(len(item.systems) if item is not None else 1)
            finally:
                if item is not None:
                    with self._lock:
                        self._queued_atoms -= item.atoms
                if self._queue.empty():
                    with self._lock:
                        if self._queued_atoms == 0:
                            self.idle.set()

    def pool(self, model: str) -> Pool:
        """The (cached) pool of `model`."""
        if model not in self._pools:
            self._pools[model] = Pool(self.root, model)
        return self._pools[model]

    def _store(self, item: _Offer) -> None:
        settings = self._settings.get(item.model)
        if settings is None:  # turned off since the request was marked
            return
        window = self._recent.setdefault((item.model, item.tenant), deque())
        now = time.monotonic()
        while window and now - window[0] > 60.0:
            window.popleft()
        pool, new = self.pool(item.model), 0
        for system, sigma in zip(item.systems, item.sigmas):
            if len(window) >= settings.rate_per_minute:
                HARVESTED.labels("rate").inc()
                continue
            atoms = Atoms(system.numbers, system.positions, cell=system.cell, pbc=system.pbc)
            outcome = pool.add(atoms, item.tenant, sigma, settings.budget_per_tenant)
            HARVESTED.labels(outcome).inc()
            if outcome in ("stored", "replaced"):
                window.append(now)
                new += 1
        if new:
            self._dirty.add(item.model)
            with pool.locked():
                state = pool.state()
                state["since_round"] = state.get("since_round", 0) + new
                pool.save_state(state)

    def _housekeeping(self) -> None:
        """Summaries of changed models; start the rounds that are due."""
        for model, settings in list(self._settings.items()):
            try:
                self._maybe_start_round(model, settings)
            except Exception:  # noqa: BLE001
                log.exception("harvest round trigger of %s failed", model)
        for model in list(self._dirty):
            self._dirty.discard(model)
            self.pool(model).write_summary(model in self._settings)

    def _maybe_start_round(self, model: str, settings: HarvestSettings) -> str | None:
        """Submit a `harvest_round` job when the trigger says so and none is under way."""
        if not self.queue_url or (
            settings.round_every_candidates is None and settings.round_every_minutes is None
        ):
            return None
        pool = self.pool(model)
        state = pool.state()
        due = (
            settings.round_every_candidates is not None
            and state.get("since_round", 0) >= settings.round_every_candidates
        ) or (
            settings.round_every_minutes is not None
            and time.time() - state.get("last_round_at", time.time())
            >= settings.round_every_minutes * 60
            and state.get("since_round", 0) > 0
        )
        if not due:
            return None
        from mlipserve.server.queue.jobstore import FINAL, JobStore

        jobs = JobStore(self.queue_url)
        with pool.locked():
            state = pool.state()
            running = state.get("job_id")
            if running:
                try:
                    if jobs.get(running).state not in FINAL:
                        return None  # one round at a time
                except KeyError:
                    pass
            record = jobs.submit(
                "harvest_round",
                {"model": model},
                owner=HARVEST_TENANT,
                role="admin",
                time_limit_s=3600.0,
            )
            pool.save_state({"since_round": 0, "last_round_at": time.time(), "job_id": record.id})
        log.info("harvest: round job %s submitted for %s", record.id, model)
        return record.id
