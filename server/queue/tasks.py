"""The job kinds: label, retrain, evaluate, promote, harvest_round. Each is idempotent: a
re-run is harmless.

A job is `fn(ctx, params) -> result` (plain data); `JobError` is a permanent failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mlipserve.server.queue.context import JobContext, JobError
from mlipserve.server.queue.payload import atoms_from_dict


def label(ctx: JobContext, params: dict) -> dict:
    """Label structures with a reference method and add them to a dataset (once per structure).

    params: structures (list of atoms dicts), labeller (a name the operator's policy enables,
    default "emt"), settings (those the policy lets jobs choose), dataset ("name" of the
    job's tenant, or "owner:name" shared with it).
    """
    from mlipserve.server.dataset import Dataset, structure_hash

    try:
        structures = [atoms_from_dict(s) for s in params["structures"]]
    except (KeyError, TypeError, ValueError) as err:
        raise JobError(f"bad label parameters: {err}") from err
    name = params.get("labeller", "emt")
    if not structures:
        raise JobError("no structures to label")
    entry, merged = ctx.labeller_plan(name, params.get("settings"))
    if entry.slurm is not None:  # the operator sends this labeller's calculations to Slurm
        from mlipserve.server.queue.slurm import label_on_slurm

        return label_on_slurm(ctx, structures, name, merged, entry.slurm, params.get("dataset", ""))
    labeller = ctx.labeller(name, params.get("settings"))
    stored, skipped, failed = [], 0, []
    with Dataset(ctx.dataset_url(params.get("dataset", ""))) as data:
        for i, atoms in enumerate(structures):
            if ctx.cancelled():
                raise JobError("cancelled")
            digest = structure_hash(atoms)
            if data.has(digest):
                skipped += 1
                ctx.progress((i + 1) / len(structures))
                continue
            (result,) = labeller.label([atoms])
            if result.ok:
                stored.extend(i for i in data.add([result]) if i is not None)
            else:
                failed.append({"index": i, "error": result.error})
                ctx.log(f"structure {i}: label failed: {result.error}")
            ctx.progress((i + 1) / len(structures), f"labelled {i + 1}/{len(structures)}")
        total = data.count()
    if failed and len(failed) == len(structures):
        raise JobError(f"every label failed; first: {failed[0]['error']}")
    return {"stored": stored, "already_present": skipped, "failed": failed, "dataset_size": total}


def retrain(ctx: JobContext, params: dict) -> dict:
    """Warm-start the model on a snapshot of the dataset; store a candidate version (not default).

    params: model, dataset ("name" or "owner:name"), base_version (default: the store's
    default), epochs, seed, max_minutes, lr, batch_size, energy_weight/forces_weight/
    stress_weight, patience (bounded in `mlipserve.server.queue.params`).
    """
    from mlipserve.server.dataset import Dataset
    from mlipserve.server.store import ModelStore, StoreError
    from mlipserve.server.training import TrainConfig
    from mlipserve.server.training.pipeline import train_version

    store = ModelStore(ctx.store_dir)
    name = _required(params, "model")
    try:
        base = params.get("base_version") or store.default_version(name)
    except StoreError as err:
        raise JobError(str(err)) from err
    done = _existing_candidate(store, name, ctx.job_id)
    if done is not None:  # an earlier attempt stored it before dying
        return done
    with Dataset(ctx.dataset_url(_required(params, "dataset"))) as data:
        tag = f"retrain-{ctx.job_id}"
        known = {v.tag: v.version for v in data.versions()}
        version = known[tag] if tag in known else data.snapshot(tag)
        structures = data.rows(version)
    if len(structures) < 3:
        raise JobError(f"dataset has {len(structures)} structures; training needs at least 3")
    ctx.log(f"training {name} from {base} on {len(structures)} structures (data version {version})")
    cfg = TrainConfig(
        **{
            k: params[k]
            for k in (
                "epochs",
                "seed",
                "max_minutes",
                "lr",
                "batch_size",
                "energy_weight",
                "forces_weight",
                "stress_weight",
                "patience",
            )
            if k in params
        }
    )
    started = time.time()
    candidate, metrics = train_version(
        structures,
        store,
        name,
        cfg,
        warm_start=base,
        make_default=False,
        progress=False,
        metadata={
            "status": "candidate",
            "dataset": params["dataset"],
            "data_version": version,
            "job_id": ctx.job_id,
            "owner": ctx.record.owner,
        },
    )
    return {
        "model": name,
        "candidate": candidate,
        "parent": base,
        "data_version": version,
        "n_structures": len(structures),
        "metrics": metrics,
        "train_seconds": time.time() - started,
    }


def evaluate(ctx: JobContext, params: dict) -> dict:
    """Force/energy errors of a candidate and of the current default on a held-out set.

    params: model, candidate, current (default: the store's default), holdout (dataset name),
    holdout_version (default: all rows).
    """
    from mlipserve.server.dataset import Dataset
    from mlipserve.server.store import ModelStore, StoreError
    from mlipserve.server.training.report import evaluate_split

    store = ModelStore(ctx.store_dir)
    name, candidate = _required(params, "model"), _required(params, "candidate")
    with Dataset(ctx.dataset_url(_required(params, "holdout"), "params.holdout")) as data:
        held_out = data.rows(params.get("holdout_version"))
    if not held_out:
        raise JobError("the held-out set is empty")
    try:
        current = params.get("current") or store.default_version(name)
        modules = {v: store.load_module(name, v)[0] for v in (candidate, current)}
    except StoreError as err:
        raise JobError(str(err)) from err
    out = {"model": name, "candidate": candidate, "current": current, "n_structures": len(held_out)}
    for role, version in (("candidate_metrics", candidate), ("current_metrics", current)):
        out[role] = evaluate_split(modules[version], held_out)
        ctx.progress(0.5 if role == "candidate_metrics" else 1.0)
    return out


def promote(ctx: JobContext, params: dict) -> dict:
    """Make the candidate the default if its held-out force MAE is not worse than the current
    model's by more than `tolerance` (relative, default 0.05); record the decision.

    params: those of `evaluate`, plus tolerance.
    """
    from mlipserve.server.store import ModelStore, StoreError

    tolerance = float(params.get("tolerance", 0.05))
    if tolerance < 0:
        raise JobError("tolerance must be ≥ 0")
    store = ModelStore(ctx.store_dir)
    name, candidate = _required(params, "model"), _required(params, "candidate")
    try:
        current = store.default_version(name)
    except StoreError as err:
        raise JobError(str(err)) from err
    if current == candidate:
        return {"model": name, "promoted": True, "version": candidate, "note": "already default"}
    report = evaluate(ctx, params)
    new = report["candidate_metrics"]["force_mae_mev_per_A"]
    old = report["current_metrics"]["force_mae_mev_per_A"]
    promoted = new <= old * (1.0 + tolerance)
    record = {
        "model": name,
        "candidate": candidate,
        "previous": report["current"],
        "promoted": promoted,
        "candidate_force_mae": new,
        "current_force_mae": old,
        "tolerance": tolerance,
        "rule": "candidate F-MAE ≤ current F-MAE × (1 + tolerance)",
        "by": ctx.record.owner,
        "job_id": ctx.job_id,
        "at": time.time(),
        "data_version": store.metadata(name, candidate).get("data_version"),
    }
    if promoted:
        store.set_default(name, candidate)
    store.record_promotion(name, record)
    ctx.log(
        ("promoted" if promoted else "kept current: candidate worse")
        + f" ({new:.1f} vs {old:.1f} meV/Å)"
    )
    return record


def _required(params: dict, key: str):
    if not params.get(key):
        raise JobError(f"parameter {key!r} is required")
    return params[key]


def _existing_candidate(store, name: str, job_id: str) -> dict | None:
    for version in store.versions(name):
        meta = store.metadata(name, version)
        if meta.get("job_id") == job_id:
            return {
                "model": name,
                "candidate": version,
                "parent": meta.get("parent_version"),
                "data_version": meta.get("data_version"),
                "metrics": meta.get("metrics"),
                "resumed": True,
            }
    return None


def harvest_round(ctx: JobContext, params: dict) -> dict:
    """select → label → retrain → promote from a harvesting model's pool (`harvest_round.py`).

    params: model.
    """
    from mlipserve.server.queue.harvest_round import run_round

    return run_round(ctx, params)


JOBS: dict[str, Callable[[JobContext, dict], dict]] = {
    "label": label,
    "retrain": retrain,
    "evaluate": evaluate,
    "promote": promote,
    "harvest_round": harvest_round,
}
