"""One scheduled active-learning round of a harvesting model, as a queue job (`harvest_round`).

select → label → retrain → evaluate on held-out → promote (hot swap follows the store):
the round picks `labels_per_round` waiting candidates of the pool with
`training.selection.select_batch` (uncertainty-weighted farthest-point sampling in the
current model's descriptors, `structure_descriptors`), splits them into training and
held-out labels, then runs the existing `label`, `retrain` and `promote` jobs in order as
child records of the queue (ids `<round job>-label`, ...: listed, logged, and on a re-run
of the round their finished results are reused, so a round resumes where it died).

Held-out set: of each round's picks, the `holdout_fraction` with the smallest structure
hashes (a split no model or tenant chooses) are labelled into the harvest's held-out
dataset, never into training; the held-out set grows by that slice every round and every
promotion is judged on all of it. The promotion rule is the existing one at tolerance 0:
a candidate whose held-out force MAE is worse than the current model's is never promoted.
Datasets: `_harvest:<model slug>-train` (or the admin's `train_dataset`) and
`_harvest:<model slug>-holdout`, owned by the harvest's own tenant.
"""

from __future__ import annotations

import hashlib
import math
import time
from datetime import UTC, datetime

from mlipserve.server.queue.context import JobContext, JobError
from mlipserve.server.queue.jobstore import JobRecord
from mlipserve.server.serving.harvest import HARVEST_TENANT
from mlipserve.server.serving.harvest_pool import Pool, settings_of

MIN_PICKS = 4  # three to train on (retrain's minimum) and one held out
INHERITED = ("harvest", "trust_lo", "trust_hi", "energy_trust_lo", "energy_trust_hi")


def dataset_names(model: str, train_dataset: str | None = None) -> tuple[str, str]:
    """The (training, held-out) dataset references of a model's harvest."""
    slug = model.lower()
    if slug != model or len(slug) > 50 or not slug[0].isalnum():
        slug = "m" + hashlib.sha256(model.encode()).hexdigest()[:16]
    train = train_dataset or f"{HARVEST_TENANT}:{slug}-train"
    return train, f"{HARVEST_TENANT}:{slug}-holdout"


def _step(ctx: JobContext, kind: str, suffix: str, params: dict) -> dict:
    """Run an existing job kind as a child record of this round (reused once done)."""
    from mlipserve.server.queue.tasks import JOBS

    child_id = f"{ctx.job_id}-{suffix}"
    try:
        record = ctx.store.get(child_id)
        if record.state == "done" and record.result is not None:
            return record.result
    except KeyError:
        pass
    record = JobRecord(
        id=child_id,
        kind=kind,
        owner=ctx.record.owner,
        params=params,
        role=ctx.record.role,
        state="running",
        started=time.time(),
        worker=f"harvest_round {ctx.job_id}",
    )
    ctx.store.put(record)
    child = JobContext(ctx.store, record, ctx.env)
    ctx.log(f"{kind} ({child_id})")
    try:
        result = JOBS[kind](child, child.checked_params())
    except Exception as err:
        ctx.store.update(child_id, state="failed", error=str(err), finished=time.time())
        if isinstance(err, JobError):
            raise JobError(f"{kind}: {err}") from err
        raise
    ctx.store.update(child_id, state="done", result=result, progress=1.0, finished=time.time())
    return result


def _split(picked: list, fraction: float) -> tuple[list, list]:
    """(training, held-out): the held-out slice is the `fraction` with the smallest hashes."""
    ordered = sorted(picked, key=lambda a: a.info["structure_hash"])
    n_hold = min(max(1, math.ceil(fraction * len(picked))), len(picked) - 3)
    held = {id(a) for a in ordered[:n_hold]}
    return [a for a in picked if id(a) not in held], [a for a in picked if id(a) in held]


def _dicts(structures: list) -> list[dict]:
    from mlipserve.server.queue.payload import atoms_to_dict

    out = []
    for atoms in structures:
        plain = atoms.copy()
        plain.info = {}
        out.append(atoms_to_dict(plain))
    return out


def run_round(ctx: JobContext, params: dict) -> dict:
    """select → label → retrain → promote for `params["model"]`; the round's record."""
    from mlipserve.server.dataset import Dataset
    from mlipserve.server.models.base import TRUST_LO
    from mlipserve.server.store import ModelStore, StoreError
    from mlipserve.server.training.selection import select_batch, structure_descriptors

    store, model = ModelStore(ctx.store_dir), params["model"]
    try:
        current = store.default_version(model)
        meta = store.metadata(model, current)
    except StoreError as err:
        raise JobError(str(err)) from err
    settings = settings_of(meta)
    pool = Pool(ctx.store_dir, model)
    done = next((r for r in pool.rounds() if r.get("job_id") == ctx.job_id), None)
    if done is not None:
        return done
    if not settings.enabled:
        return {"model": model, "skipped": "harvesting is off for this model"}
    candidates = pool.waiting()
    if len(candidates) < MIN_PICKS:
        return {"model": model, "skipped": f"{len(candidates)} candidates; a round needs 4"}
    number = len(pool.rounds()) + 1
    trust_lo = float(meta.get("trust_lo", TRUST_LO))
    potential = store.load(model, current, device="cpu")
    descriptors = structure_descriptors(potential, candidates)
    sigma = [a.info["sigma"] for a in candidates]
    picks = select_batch(descriptors, sigma, settings.labels_per_round, trust_lo, seed=number)
    if len(picks) < MIN_PICKS:
        return {"model": model, "skipped": f"{len(picks)} candidates above trust_lo {trust_lo}"}
    chosen = [candidates[i] for i in picks]
    training, held_out = _split(chosen, settings.holdout_fraction)
    train_ref, hold_ref = dataset_names(model, settings.train_dataset)
    ctx.log(
        f"round {number} of {model}@{current}: {len(chosen)} of {len(candidates)} candidates, "
        f"{len(held_out)} held out"
    )
    label = {"labeller": settings.labeller}
    _step(ctx, "label", "label", {**label, "structures": _dicts(training), "dataset": train_ref})
    _step(
        ctx,
        "label",
        "label-holdout",
        {**label, "structures": _dicts(held_out), "dataset": hold_ref},
    )
    pool.mark([a.info["row_id"] for a in chosen], number)
    ctx.progress(0.4, "labelled")
    trained = _step(
        ctx,
        "retrain",
        "retrain",
        {"model": model, "dataset": train_ref, "epochs": settings.epochs, "seed": number},
    )
    candidate = trained["candidate"]
    store.update_metadata(model, candidate, **{k: meta[k] for k in INHERITED if k in meta})
    decision = _step(
        ctx,
        "promote",
        "promote",
        {"model": model, "candidate": candidate, "holdout": hold_ref, "tolerance": 0.0},
    )
    labels = 0
    for ref in (train_ref, hold_ref):
        with Dataset(ctx.dataset_url(ref)) as data:
            labels += data.count()
    promoted = bool(decision.get("promoted"))
    mae = decision["candidate_force_mae"] if promoted else decision["current_force_mae"]
    record = {
        "round": number,
        "labels_total": labels,
        "heldout_force_mae_meV": float(mae),
        "promoted": promoted,
        "version": store.default_version(model),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "job_id": ctx.job_id,
        "model": model,
        "previous": current,
        "candidate": candidate,
        "candidate_force_mae_meV": decision["candidate_force_mae"],
        "current_force_mae_meV": decision["current_force_mae"],
        "picked": len(chosen),
        "held_out": len(held_out),
        "candidates": len(candidates),
        "tenants": sorted({a.info["tenant"] for a in chosen}),
    }
    pool.record_round(record)
    pool.write_summary(settings.enabled)
    ctx.log(f"round {number}: {'promoted ' + candidate if promoted else 'kept ' + current}")
    return record
