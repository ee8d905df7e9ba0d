"""What /v1/status reports, gathered from what the server already has.

Models and their batchers (the registry), totals (the Prometheus registry), the recent window
(`registry.live`), jobs and leases (the job store), promotions (the model store's logs) and
harvesting (`<store>/_harvest/<model>.json`, written by the harvester). A user key sees only
its own tenant's share of compute, jobs, workers and harvested structures; an admin sees all.
Every source that can fail (no queue, Redis down, a corrupt file) reports an `error` string
instead of failing the whole page.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlipserve import __version__
from mlipserve.server.auth import Principal
from mlipserve.server.serving.metrics import BATCH_REQUESTS, REQUESTS

MAX_JOBS = 50  # newest jobs listed
MAX_PROMOTIONS = 50
MAX_ROUNDS = 1_000  # newest harvest rounds kept for the curve
MAX_HARVEST_BYTES = 4 * 1024 * 1024
HARVEST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.json$")


class HarvestRound(BaseModel):
    """One harvesting round: labels so far and the held-out error of the model it trained."""

    model_config = ConfigDict(extra="ignore")
    round: int
    labels_total: int
    heldout_force_mae_meV: float | None = None
    promoted: bool = False
    version: str = ""
    time: str = ""


class HarvestState(BaseModel):
    """The harvester's file of one model (unknown keys ignored, bad rounds dropped)."""

    model_config = ConfigDict(extra="ignore")
    model: str = ""
    enabled: bool = False
    pool_size: int = 0
    per_tenant: dict[str, int] = Field(default_factory=dict)
    rounds: list[Any] = Field(default_factory=list)


def harvest_off() -> dict:
    """What a model without a harvest file shows: harvesting off, an empty pool and curve."""
    return {"enabled": False, "pool_size": 0, "per_tenant": {}, "rounds": [], "error": None}


def read_harvest(path: Path) -> dict:
    """A harvest file as status data; a missing file is harvesting off, a bad one says why."""
    off = harvest_off()
    try:
        if path.stat().st_size > MAX_HARVEST_BYTES:
            return {**off, "error": f"{path.name} is over {MAX_HARVEST_BYTES} bytes"}
        state = HarvestState.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        return off
    except (OSError, ValueError, ValidationError) as err:
        return {**off, "error": f"{path.name} unreadable: {type(err).__name__}"}
    rounds = []
    for item in state.rounds[-MAX_ROUNDS:]:
        try:
            rounds.append(HarvestRound.model_validate(item).model_dump())
        except ValidationError:
            continue
    rounds.sort(key=lambda r: r["labels_total"])
    return {
        "enabled": state.enabled,
        "pool_size": state.pool_size,
        "per_tenant": dict(state.per_tenant),
        "rounds": rounds,
        "error": None,
    }


def harvesting(store_root: Path | None, served: list[str], caller: Principal) -> list[dict]:
    """Harvest state of every served model and every model with a harvest file."""
    folder = None if store_root is None else store_root / "_harvest"
    names = set(served)
    if folder is not None and folder.is_dir():
        names |= {p.name[:-5] for p in folder.iterdir() if HARVEST_NAME.match(p.name)}
    out = []
    for name in sorted(names):
        entry = harvest_off() if folder is None else read_harvest(folder / f"{name}.json")
        if not caller.is_admin:
            entry["per_tenant"] = {
                t: n for t, n in entry["per_tenant"].items() if t == caller.tenant
            }
        out.append({"model": name, **entry})
    return out


def prometheus_totals() -> dict[str, dict]:
    """Per model: requests by status (all methods) and the all-time mean requests per batch."""
    out: dict[str, dict] = {}
    for metric in REQUESTS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                entry = out.setdefault(sample.labels["model"], {"requests": {}})
                status = sample.labels["status"]
                entry["requests"][status] = entry["requests"].get(status, 0) + int(sample.value)
    sums: dict[str, dict[str, float]] = {}
    for metric in BATCH_REQUESTS.collect():
        for sample in metric.samples:
            if sample.name.endswith(("_sum", "_count")):
                kind = "sum" if sample.name.endswith("_sum") else "count"
                sums.setdefault(sample.labels["model"], {})[kind] = sample.value
    for model, s in sums.items():
        entry = out.setdefault(model, {"requests": {}})
        entry["batches"] = int(s.get("count", 0))
        entry["mean_requests_per_batch"] = s["sum"] / s["count"] if s.get("count") else None
    return out


def models(registry, replica: str, live: dict) -> list[dict]:
    """Every loaded version: default or not, device, queue depth, window and total figures."""
    totals = prometheus_totals()
    out = []
    for loaded, is_default in registry.entries():
        info = loaded.model.info
        window = live["models"].get(info.name, {})
        total = totals.get(info.name, {"requests": {}})
        out.append(
            {
                "name": info.name,
                "version": info.version,
                "default": is_default,
                "kind": info.kind,
                "device": info.device,
                "dtype": info.dtype,
                "replica": replica,
                "queue_depth": loaded.batcher.queued,
                "requests_total": sum(total["requests"].values()),
                "requests_by_status": total["requests"],
                "batches_total": total.get("batches", 0),
                "window": window,
            }
        )
    return out


def jobs_and_workers(store, caller: Principal) -> dict:
    """Newest jobs (the caller's tenant unless admin), counts by state, leases of running jobs."""
    if store is None:
        return {"configured": False, "jobs": [], "workers": [], "counts": {}, "error": None}
    try:
        records = store.list(None if caller.is_admin else caller.tenant)
        queue_length = store.queue_length()
        now = time.time()
        workers = []
        for record in records:
            if record.state != "running":
                continue
            lease = store.kv_get(f"lease:{record.id}")
            workers.append(
                {
                    "worker": (lease or {}).get("worker") or record.worker or "?",
                    "job": record.id,
                    "kind": record.kind,
                    "attempt": record.attempts,
                    "lease_expires_in_s": None if lease is None else lease["expires"] - now,
                }
            )
    except Exception as err:  # a broker that is down must not take the page with it
        return {
            "configured": True,
            "jobs": [],
            "workers": [],
            "counts": {},
            "error": f"job store unavailable: {type(err).__name__}: {err}"[:300],
        }
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        by_state = counts.setdefault(record.kind, {})
        by_state[record.state] = by_state.get(record.state, 0) + 1
    jobs = [
        {
            "id": r.id,
            "kind": r.kind,
            "owner": r.owner,
            "state": r.state,
            "progress": r.progress,
            "attempts": r.attempts,
            "max_attempts": r.max_attempts,
            "created": r.created,
            "worker": r.worker,
            "error": (r.error or "")[:200] or None,
        }
        for r in records[:MAX_JOBS]
    ]
    return {
        "configured": True,
        "queue_length": queue_length,
        "jobs": jobs,
        "workers": workers,
        "counts": counts,
        "error": None,
    }


def promotions(model_store) -> dict:
    """The newest promotion decisions of every model in the store, newest first."""
    if model_store is None:
        return {"entries": [], "error": None}
    entries, errors = [], []
    for name in model_store.names():
        try:
            log = model_store.promotions(name)
        except (OSError, ValueError) as err:
            errors.append(f"{name}: {type(err).__name__}")
            continue
        for rec in log:
            entries.append(
                {
                    "model": name,
                    "candidate": rec.get("candidate"),
                    "previous": rec.get("previous"),
                    "promoted": bool(rec.get("promoted")),
                    "candidate_force_mae": rec.get("candidate_force_mae"),
                    "current_force_mae": rec.get("current_force_mae"),
                    "by": rec.get("by"),
                    "at": rec.get("at"),
                }
            )
    entries.sort(key=lambda e: e["at"] or 0, reverse=True)
    return {
        "entries": entries[:MAX_PROMOTIONS],
        "error": "; ".join(errors) or None,
    }


def serving(state, caller: Principal, window_s: float = 60.0) -> dict:
    """The serving half of the status document (registry and windows: read on the loop)."""
    registry = state.registry
    replica = getattr(state, "replica", "")
    live = registry.live.snapshot(window_s)
    if not caller.is_admin:
        live["tenants"] = {t: v for t, v in live["tenants"].items() if t == caller.tenant}
    return {
        "time": time.time(),
        "server_version": __version__,
        "replica": replica,
        "caller": {"tenant": caller.tenant, "role": caller.role},
        "auth": state.keys is not None,
        "default_model": registry.default_model,
        "max_batch_atoms": registry.max_batch_atoms,
        "models": models(registry, replica, live),
        "window_s": live["window_s"],
        "overall": live["overall"],
        "tenants": live["tenants"],
        "series": live["series"],
    }


def stores(model_store, job_store, served: list[str], caller: Principal) -> dict:
    """The stored half (jobs, leases, promotions, harvesting: file and broker reads, run on a
    thread)."""
    root = None if model_store is None else model_store.root
    return {
        "queue": jobs_and_workers(job_store, caller),
        "promotions": promotions(model_store),
        "harvest": harvesting(root, served, caller),
    }
