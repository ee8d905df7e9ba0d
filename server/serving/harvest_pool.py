"""A model's harvest settings and candidate pool on disk, and the pool's summary file.

Layout under the model store root (names come from the store's model names, never from a
request): `_harvest/<model>/pool.db`, an ase.db of unlabelled structures whose key-value
pairs are `structure_hash`, `tenant`, `sigma` (the max force std the serving model gave)
and `harvest_round` (0 while the structure waits, the round's number once it was picked and
labelled); `_harvest/<model>/rounds.jsonl`, one line per active-learning round;
`_harvest/<model>/state.json`, what the round trigger counts; and the summary the status
page reads, `_harvest/<model>.json`::

    {"model": str, "enabled": bool, "pool_size": int, "per_tenant": {tenant: int},
     "rounds": [{"round": int, "labels_total": int, "heldout_force_mae_meV": float,
                 "promoted": bool, "version": str, "time": str}]}

`pool_size` and `per_tenant` count waiting structures. Writers in several processes (the
server's harvest writer, a queue worker's round) hold one file lock per model.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field

HARVEST_DIR = "_harvest"
HASH_DECIMALS = 3  # positions and cell rounded to 1e-3 Å: MD frames that barely moved are one
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # the store's name rule
ROUND_KEYS = ("round", "labels_total", "heldout_force_mae_meV", "promoted", "version", "time")


class HarvestSettings(BaseModel):
    """The `harvest` block of a model's metadata (off unless an admin turns it on)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(False, description="keep structures whose max force std > trust_lo")
    budget_per_tenant: int = Field(200, ge=1, le=100_000, description="kept per tenant")
    rate_per_minute: int = Field(60, ge=1, le=100_000, description="kept per tenant per minute")
    round_every_candidates: int | None = Field(
        None, ge=1, le=1_000_000, description="start a round after this many new candidates"
    )
    round_every_minutes: float | None = Field(
        None, gt=0, le=7 * 24 * 60, allow_inf_nan=False, description="or after this long"
    )
    labeller: str = Field(
        "emt", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", description="an enabled labeller"
    )
    labels_per_round: int = Field(16, ge=4, le=1000, description="structures labelled per round")
    holdout_fraction: float = Field(
        0.25, gt=0, lt=1, description="of each round's labels, kept out of training"
    )
    epochs: int = Field(30, ge=1, le=100_000, description="of each round's retraining")
    train_dataset: str | None = Field(
        None,
        pattern=r"^([^:]{1,64}:)?[a-z0-9][a-z0-9_.-]{0,63}$",
        description="dataset the training labels join (default: the harvest's own)",
    )


def settings_of(meta: dict) -> HarvestSettings:
    """The harvest settings in a version's metadata (defaults: off)."""
    return HarvestSettings.model_validate(meta.get("harvest") or {})


def _model_dir(root: str | Path, model: str) -> Path:
    if not isinstance(model, str) or not MODEL_NAME.match(model):
        raise ValueError(f"invalid model name {model!r}")
    return Path(root) / HARVEST_DIR / model


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Pool:
    """The candidate pool of one model (see the module docstring for the layout)."""

    def __init__(self, root: str | Path, model: str) -> None:
        self.root, self.model = Path(root), model
        self.dir = _model_dir(root, model)
        self.dir.mkdir(parents=True, exist_ok=True)
        import ase.db

        self.db = ase.db.connect(str(self.dir / "pool.db"), type="db", append=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the model's harvest lock (threads and processes)."""
        with open(self.dir / "pool.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- candidates ---------------------------------------------------------------------
    def add(self, atoms: Atoms, tenant: str, sigma: float, budget: int) -> str:
        """Keep a candidate; returns 'stored', 'duplicate', 'replaced' (the tenant's budget was
        full and its least uncertain waiting structure made room) or 'budget' (not kept)."""
        from mlipserve.server.dataset import structure_hash

        digest = structure_hash(atoms, HASH_DECIMALS)
        with self.locked():
            if self.db.count(structure_hash=digest):
                return "duplicate"
            outcome = "stored"
            if self.db.count(tenant=tenant, harvest_round=0) >= budget:
                weakest = min(
                    self.db.select(tenant=tenant, harvest_round=0),
                    key=lambda row: row.sigma,
                    default=None,
                )
                if weakest is None or weakest.sigma >= sigma:
                    return "budget"
                self.db.delete([weakest.id])
                outcome = "replaced"
            pairs = {
                "structure_hash": digest,
                "tenant": tenant,
                "sigma": float(sigma),
                "harvest_round": 0,
            }
            self.db.write(
                Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc),
                key_value_pairs=pairs,
            )
        return outcome

    def waiting(self) -> list[Atoms]:
        """Structures not yet labelled, with `row_id`, `tenant`, `sigma`, `structure_hash` in
        their info."""
        out = []
        for row in self.db.select(harvest_round=0, sort="id"):
            atoms = row.toatoms()
            atoms.info.update(
                row_id=int(row.id),
                tenant=row.tenant,
                sigma=float(row.sigma),
                structure_hash=row.structure_hash,
            )
            out.append(atoms)
        return out

    def mark(self, row_ids: list[int], round_number: int) -> None:
        """Record that these structures were labelled in round `round_number`."""
        with self.locked():
            for row_id in row_ids:
                self.db.update(int(row_id), harvest_round=int(round_number))

    def counts(self) -> dict[str, int]:
        """Waiting structures per tenant."""
        out: dict[str, int] = {}
        for row in self.db.select(harvest_round=0, columns=["key_value_pairs"]):
            out[row.tenant] = out.get(row.tenant, 0) + 1
        return dict(sorted(out.items()))

    def tenants_ever(self) -> set[str]:
        """Every tenant with a structure in the pool, waiting or labelled."""
        return {row.tenant for row in self.db.select(columns=["key_value_pairs"])}

    # -- rounds, trigger state, summary -------------------------------------------------
    def rounds(self) -> list[dict]:
        """Every recorded round, oldest first."""
        path = self.dir / "rounds.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def record_round(self, record: dict) -> None:
        """Append a round (once per round job: a re-run does not add it twice)."""
        with self.locked():
            if any(r.get("job_id") == record.get("job_id") for r in self.rounds()):
                return
            with open(self.dir / "rounds.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def state(self) -> dict:
        """The trigger's state: new candidates since the last round, when it started, its job."""
        try:
            return json.loads((self.dir / "state.json").read_text())
        except (FileNotFoundError, ValueError):
            return {"since_round": 0, "last_round_at": time.time(), "job_id": None}

    def save_state(self, state: dict) -> None:
        """Write the trigger's state."""
        _atomic_write(self.dir / "state.json", json.dumps(state))

    def write_summary(self, enabled: bool) -> dict:
        """Rewrite `<root>/_harvest/<model>.json` from the pool and the rounds; return it."""
        counts = self.counts()
        summary: dict[str, Any] = {
            "model": self.model,
            "enabled": bool(enabled),
            "pool_size": sum(counts.values()),
            "per_tenant": counts,
            "rounds": [{k: r[k] for k in ROUND_KEYS} for r in self.rounds()],
        }
        _atomic_write(self.root / HARVEST_DIR / f"{self.model}.json", json.dumps(summary))
        return summary


def read_summary(root: str | Path, model: str) -> dict | None:
    """The summary of `model`'s harvest, or None when it has none."""
    path = _model_dir(root, model).with_name(f"{model}.json")
    return json.loads(path.read_text()) if path.exists() else None
