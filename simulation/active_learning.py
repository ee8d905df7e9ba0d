"""On-the-fly active learning: Langevin MD on an ensemble that asks for labels when unsure.

Every step asks the provider for "uncertainty" and reads σ = max per-atom force std of each
replica (DP-GEN's model deviation). With thresholds `trust_lo` < `trust_hi` (eV/Å):
σ < lo: accurate, go on; lo ≤ σ < hi: candidate, the frame is queued for a reference label
(at most one frame per replica every `submit_every` steps, duplicates skipped) and MD goes on;
σ ≥ hi: untrusted, MD pauses, pending labels are waited for, a retrain + promote pair is
run (or someone else's promotion is awaited), the driver polls the server until results
come from the promoted version, and MD resumes from the last trusted state.

```python
from mlipserve.client.jobs import JobsClient
from mlipserve.simulation import RemoteProvider, langevin_baoab, MDState
from mlipserve.simulation.active_learning import ActiveLearningConfig, ActiveLearningMD

config = ActiveLearningConfig(model="cu", dataset="cu-al", holdout="cu-holdout",
                              retrain_params={"epochs": 30})
al = ActiveLearningMD(RemoteProvider(address, "cu"), MDState.from_atoms(slab, 900),
                      langevin_baoab(5 * units.fs, 900, 0.02 / units.fs),
                      JobsClient(rest_url), config)
al.run(500)
al.save("al_run")  # al_run.json (trace, events, rates) and al_run.png
```
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlipserve.simulation.active_learning_plot import plot_trace
from mlipserve.simulation.md.integrators import Integrator
from mlipserve.simulation.md.loop import Driver
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.provenance import provenance
from mlipserve.simulation.provider import ForceProvider

if TYPE_CHECKING:  # the client package imports grpc; simulation code only duck-types it
    from mlipserve.client.jobs import JobsClient

EVENT_KINDS = (
    "candidate",
    "labelled",
    "untrusted",
    "retrain",
    "promoted",
    "rejected",
    "resumed",
    "stopped",
)


@dataclass(frozen=True)
class ActiveLearningConfig:
    """What to watch, where labels go and how to retrain.

    Args:
        model: model name on the server (retrained and promoted under this name).
        dataset: dataset the label jobs add to and the retrain job trains on.
        trust_lo, trust_hi: σ thresholds in eV/Å (DP-GEN's 0.05 / 0.15 by default).
        labeller: reference method of the label jobs ("emt", "xtb", ...) and its settings.
        submit_every: at most one frame per replica is selected per this many steps.
        label_batch: selected frames sent per label job (pending ones go at every pause).
        dedup_decimals: positions are rounded to this many decimals (Å) to spot duplicates.
        retrain: "self" submits retrain + promote jobs; "wait" waits for another party's
            promotion (any new version served).
        retrain_params: extra retrain-job parameters (epochs, seed, lr, ...).
        holdout: held-out dataset the promote job compares on (needed for "self").
        tolerance: promote's relative force-MAE tolerance.
        max_retrains: pauses allowed; what an untrusted step does after that is `exhausted`:
            "stop" ends the run, "continue" accepts the step and labels it as a candidate.
        label_untrusted: label the untrusted frame too (DP-GEN drops them: often unphysical).
        job_timeout_s: limit for one job (or, with "wait", for someone else's promotion).
        swap_timeout_s: limit for the server to serve a promoted version.
        poll_s: polling period for jobs and the served version.
    """

    model: str
    dataset: str
    trust_lo: float = 0.05
    trust_hi: float = 0.15
    labeller: str = "emt"
    labeller_settings: dict = field(default_factory=dict)
    submit_every: int = 10
    label_batch: int = 1
    dedup_decimals: int = 2
    retrain: str = "self"
    retrain_params: dict = field(default_factory=dict)
    holdout: str = ""
    tolerance: float = 0.05
    max_retrains: int = 3
    exhausted: str = "stop"
    label_untrusted: bool = False
    job_timeout_s: float = 900.0
    swap_timeout_s: float = 120.0
    poll_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.model or not self.dataset:
            raise ValueError("model and dataset names are required")
        if not 0 < self.trust_lo < self.trust_hi:
            raise ValueError(f"need 0 < trust_lo < trust_hi, got {self.trust_lo}, {self.trust_hi}")
        if self.submit_every < 1 or self.label_batch < 1 or self.max_retrains < 0:
            raise ValueError("submit_every and label_batch must be ≥ 1, max_retrains ≥ 0")
        if self.exhausted not in ("stop", "continue"):
            raise ValueError(f"exhausted must be 'stop' or 'continue', got {self.exhausted!r}")
        if self.retrain not in ("self", "wait"):
            raise ValueError(f"retrain must be 'self' or 'wait', got {self.retrain!r}")
        if self.retrain == "self" and not self.holdout:
            raise ValueError("retrain='self' needs a holdout dataset for the promote job")
        if min(self.job_timeout_s, self.swap_timeout_s, self.poll_s) <= 0:
            raise ValueError("timeouts and poll_s must be positive")


class ActiveLearningMD(Driver[MDState]):
    """Langevin (or any one-force-call) MD with an uncertainty trigger, labelling and hot swap.

    The trace holds, per step taken (`iteration`, rejected steps included), the MD step, the
    served model version and σ per replica; `events` is a list of dicts with `kind`
    (see EVENT_KINDS), `iteration`, `step`, `wall` (seconds since start) and details.
    `run(steps)` takes `steps` MD steps (rejected ones count) and sends pending labels at
    the end; the loop, observers and trajectory files are `md.loop.Driver`'s (a rejected
    step is not observed).
    """

    def __init__(
        self,
        provider: ForceProvider,
        state: MDState,
        integrator: Integrator,
        jobs: JobsClient | str,
        config: ActiveLearningConfig,
    ) -> None:
        super().__init__()
        integrator.check(state)
        if isinstance(jobs, str):
            from mlipserve.client.jobs import JobsClient

            jobs = JobsClient(jobs)
        self.provider, self.integrator, self.jobs, self.config = provider, integrator, jobs, config
        self.properties = ("energy", "forces", "uncertainty")
        self.trace: dict[str, list] = {"iteration": [], "step": [], "version": [], "sigma": []}
        self.events: list[dict[str, Any]] = []
        self.iteration = 0
        self.retrains = 0
        self.stopped: str | None = None
        self._start = time.monotonic()
        self._seen: set[str] = set()
        self._pending: list[tuple[int, Any]] = []  # (iteration, atoms) awaiting a label job
        self._label_jobs: list[str] = []
        self._last_pick = np.full(state.n_replicas, -config.submit_every)
        self.state = self._evaluate(state)
        self.version = self._results[0].get("model_version", "")
        self.last_trusted, self.trusted_sigma = self.state, self.sigma
        self._record(self.state, self.trusted_sigma)

    # -- force calls ------------------------------------------------------------------
    def _evaluate(self, state: MDState) -> MDState:
        results = self.provider.evaluate(state.systems(), self.properties)
        if any("max_force_std" not in r for r in results):
            raise ValueError(
                "the model returned no max_force_std: active learning needs an ensemble model"
            )
        self._results = results
        return state.with_results(results)

    @property
    def sigma(self) -> np.ndarray:
        """σ per replica from the last force call, eV/Å."""
        return np.array([float(r["max_force_std"]) for r in self._results])

    def _record(self, state: MDState, sigma: np.ndarray) -> None:
        self.trace["iteration"].append(self.iteration)
        self.trace["step"].append(state.step)
        self.trace["version"].append(self._results[0].get("model_version", ""))
        self.trace["sigma"].append(sigma.tolist())

    def _event(self, kind: str, **details: Any) -> dict:
        event = {
            "kind": kind,
            "iteration": self.iteration,
            "step": self.state.step,
            "wall": round(time.monotonic() - self._start, 3),
            **details,
        }
        self.events.append(event)
        return event

    # -- the loop ---------------------------------------------------------------------
    def step(self) -> MDState:
        """One MD step, then the trigger: accurate, candidate or untrusted (pause + retrain)."""
        new = self.integrator.step(self.state, self._evaluate)
        self.iteration += 1
        sigma = self.sigma
        worst = int(np.argmax(sigma))
        self._record(new, sigma)
        accept = self.retrains >= self.config.max_retrains and self.config.exhausted == "continue"
        if sigma[worst] >= self.config.trust_hi:
            self._event("untrusted", replica=worst, sigma=float(sigma[worst]), accepted=accept)
        if sigma[worst] >= self.config.trust_hi and not accept:
            if self.config.label_untrusted:
                self._select(new, [worst], sigma, force=True)
            self._pause()
            return self.state
        self.state = self.last_trusted = new
        self.trusted_sigma = sigma
        self._select(new, np.flatnonzero(sigma >= self.config.trust_lo), sigma)
        return self.state

    def _stopped(self) -> bool:
        return bool(self.stopped)

    def _finish_run(self) -> None:
        self._submit_pending()

    def _progress_label(self) -> str:
        return "AL-MD"

    def _progress_info(self) -> str:
        return f"σ {self.sigma.max():.3f} eV/Å on {self.version} ({self.retrains} retrains)"

    # -- labelling --------------------------------------------------------------------
    def _key(self, atoms: Any) -> str:
        d = self.config.dedup_decimals
        h = hashlib.sha1(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
        for arr in (atoms.positions, atoms.cell.array):
            h.update((np.round(np.asarray(arr, dtype=float), d) + 0.0).tobytes())
        return h.hexdigest()

    def _select(
        self, state: MDState, replicas: Any, sigma: np.ndarray, force: bool = False
    ) -> None:
        """Queue these replicas' frames for labelling (rate-limited per replica, de-duplicated)."""
        for r in replicas:
            if not force and self.iteration - self._last_pick[r] < self.config.submit_every:
                continue
            atoms = state.to_atoms(int(r))
            atoms.calc = None
            key = self._key(atoms)
            if key in self._seen:
                continue
            self._seen.add(key)
            self._last_pick[r] = self.iteration
            self._pending.append((self.iteration, atoms))
            self._event("candidate", replica=int(r), sigma=float(sigma[r]))
        if len(self._pending) >= self.config.label_batch:
            self._submit_pending()

    def _submit_pending(self) -> None:
        if not self._pending:
            return
        structures = [atoms for _, atoms in self._pending]
        job = self.jobs.label(
            structures,
            self.config.dataset,
            self.config.labeller,
            self.config.labeller_settings or None,
            time_limit_s=self.config.job_timeout_s,
        )
        self._label_jobs.append(job["id"])
        self._event("labelled", job=job["id"], structures=len(structures))
        self._pending = []

    def wait_for_labels(self) -> list[dict]:
        """Send pending frames and wait until every label job so far has finished."""
        self._submit_pending()
        done = [
            self.jobs.wait(j, self.config.job_timeout_s, self.config.poll_s)
            for j in self._label_jobs
        ]
        self._label_jobs = []
        return done

    # -- pause, retrain, hot swap, resume ---------------------------------------------
    def _pause(self) -> None:
        cfg = self.config
        nearest = np.flatnonzero(self.trusted_sigma >= cfg.trust_lo)
        self._select(self.last_trusted, nearest, self.trusted_sigma, force=True)  # nearest the
        # failure: the last trusted frames that were candidates
        if self.retrains >= cfg.max_retrains:
            self.stopped = f"untrusted after {self.retrains} retrains (max_retrains)"
            self._submit_pending()
            self._event("stopped", reason=self.stopped)
            return
        self.retrains += 1
        labels = self.wait_for_labels()
        old = self.version
        target = None
        if cfg.retrain == "self":
            params = {**cfg.retrain_params, "model": cfg.model, "dataset": cfg.dataset}
            trained = self.jobs.run(
                "retrain", params, cfg.job_timeout_s, cfg.poll_s, time_limit_s=cfg.job_timeout_s
            )
            self._event(
                "retrain",
                candidate=trained["candidate"],
                parent=trained.get("parent"),
                structures=trained.get("n_structures"),
                seconds=trained.get("train_seconds"),
                new_labels=sum(len(r.get("stored", [])) for r in labels),
            )
            decision = self.jobs.run(
                "promote",
                {
                    "model": cfg.model,
                    "candidate": trained["candidate"],
                    "holdout": cfg.holdout,
                    "tolerance": cfg.tolerance,
                },
                cfg.job_timeout_s,
                cfg.poll_s,
                time_limit_s=cfg.job_timeout_s,
            )
            info = {
                k: decision.get(k)
                for k in ("candidate", "candidate_force_mae", "current_force_mae")
            }
            if not decision.get("promoted"):
                self._event("rejected", **info)
            else:
                self._event("promoted", **info)
                target = trained["candidate"]
        resumed = self._await_version(old, target)
        self.state = self.last_trusted = resumed
        self.trusted_sigma = self.sigma
        self.version = self._results[0].get("model_version", "")
        if cfg.retrain == "wait":
            self._event("promoted", candidate=self.version)
        self._event("resumed", version=self.version, sigma=float(self.sigma.max()))

    def _await_version(self, old: str, target: str | None) -> MDState:
        """Re-evaluate the last trusted state until the server serves `target` (or, with
        None, anything but `old` when waiting for someone else; `old` after a rejection)."""
        cfg = self.config
        if target is None and cfg.retrain == "self":  # rejected: carry on with the old model
            return self._evaluate(self.last_trusted)
        limit = cfg.swap_timeout_s if cfg.retrain == "self" else cfg.job_timeout_s
        deadline = time.monotonic() + limit
        while True:
            state = self._evaluate(self.last_trusted)
            version = self._results[0].get("model_version", "")
            if (version == target) if target else (version != old):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the server still serves {cfg.model}@{version} after "
                    f"{limit:g} s (waiting for {target or 'a new version'})"
                )
            time.sleep(cfg.poll_s)

    # -- reporting --------------------------------------------------------------------
    def trigger_rates(self) -> dict[str, dict[str, float]]:
        """Per served version, counted over replica-steps (step 0 excluded): steps,
        candidates (lo ≤ σ < hi), untrusted (σ ≥ hi) and rate = (candidates + untrusted) / steps."""
        out: dict[str, dict[str, float]] = {}
        lo, hi = self.config.trust_lo, self.config.trust_hi
        for it, version, sig in zip(
            self.trace["iteration"], self.trace["version"], self.trace["sigma"]
        ):
            if it == 0:  # the starting point, not a step
                continue
            row = out.setdefault(version, {"steps": 0, "candidates": 0, "untrusted": 0})
            sig = np.asarray(sig)
            row["steps"] += len(sig)
            row["candidates"] += int(np.sum((sig >= lo) & (sig < hi)))
            row["untrusted"] += int(np.sum(sig >= hi))
        for row in out.values():
            row["rate"] = (row["candidates"] + row["untrusted"]) / max(row["steps"], 1)
        return out

    def summary(self) -> dict[str, Any]:
        """Config, trace, events and trigger rates as JSON-friendly data."""
        return {
            "config": asdict(self.config),
            "trace": self.trace,
            "events": self.events,
            "rates": self.trigger_rates(),
            "retrains": self.retrains,
            "stopped": self.stopped,
            "provenance": provenance(self.provider),
        }

    def save(self, prefix: str | Path) -> dict[str, Path]:
        """Write `prefix.json` (summary) and `prefix.png` (σ trace with thresholds, events)."""
        prefix = Path(prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        paths = {"json": prefix.with_suffix(".json"), "png": prefix.with_suffix(".png")}
        summary = self.summary()
        paths["json"].write_text(json.dumps(summary, indent=1))
        cfg = self.config
        title = f"active learning of {cfg.model}"
        record = summary["provenance"]
        plot_trace(self.trace, self.events, cfg.trust_lo, cfg.trust_hi, paths["png"], title, record)
        return paths
