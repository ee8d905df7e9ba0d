"""Reference labels as Slurm jobs (through submitit): submitted once, re-attached, cancelled.

Why submitit rather than dpdispatcher: a label is a Python call (our labeller on a few
structures), and submitit runs exactly that on a node and hands back its return value, its
stdout/stderr files and Slurm's own state (from sacct); a job is rebuilt from its folder and
Slurm id alone, which is what re-attaching after a worker's death needs. dpdispatcher ships
shell commands with files to upload and download, tracks completion by tag files and tells a
finished job from a terminated one without Slurm's reason (TIMEOUT or OUT_OF_MEMORY).

Every Slurm id is recorded in the job store (`slurm:<queue job id>`) the moment sbatch
answers, and every Slurm job is named after its queue job and structures, so a re-run of the
queue job (its worker was killed) finds the running jobs by id, or by name if the worker died
between sbatch and the record, instead of submitting them again. What comes back from a node
is msgpack bytes; submitit's own result pickle lives in the operator's folder, never a
tenant's.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from mlipserve.server.labellers.base import Label, json_safe, labelled_atoms
from mlipserve.server.labellers.policy import SlurmSettings
from mlipserve.server.queue.context import JobContext, JobError
from mlipserve.server.queue.jobstore import JobStore
from mlipserve.server.queue.payload import atoms_from_dict, atoms_to_dict, pack, unpack

#: Slurm's end states that mean no result: each becomes a failed label carrying it.
FAILED_STATES = frozenset(
    {
        "FAILED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "CANCELLED",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "REVOKED",
    }
)
LOG_TAIL = 4000  # characters of a calculation's stdout/stderr kept in each label's provenance


def book_key(job_id: str) -> str:
    """The job store key holding the Slurm ids of queue job `job_id`."""
    return f"slurm:{job_id}"


def job_name(queue_job: str, chunk: str) -> str:
    """The Slurm job name of one chunk of a queue job (found again by `find_by_name`)."""
    return f"mlipserve-{queue_job}-{chunk}"


def run_labels(name: str, settings: dict, structures: list[dict]) -> bytes:
    """What runs on the node: label the structures, failures included; msgpack back."""
    from mlipserve.server.labellers.factory import make_labeller

    labeller = make_labeller(name, **settings)
    labels = labeller.label([atoms_from_dict(s) for s in structures])
    out = []
    for label in labels:
        bare = label.atoms.copy()
        bare.calc = None
        results = {
            k: float(v) if np.ndim(v) == 0 else np.asarray(v) for k, v in label.results.items()
        }
        out.append(
            {
                "ok": label.ok,
                "error": label.error,
                "provenance": json_safe(label.provenance),
                "atoms": atoms_to_dict(bare),
                "results": results,
            }
        )
    return pack(out)


def labels_from_bytes(data: bytes) -> list[Label]:
    """The Labels `run_labels` sent back."""
    labels = []
    for item in unpack(data):
        atoms = atoms_from_dict(item["atoms"])
        if item["ok"]:
            atoms = labelled_atoms(atoms, item["results"])
        labels.append(Label(atoms, bool(item["ok"]), item.get("error"), item["provenance"]))
    return labels


def find_by_name(name: str) -> str | None:
    """The newest Slurm job called `name` that did not end cancelled (sacct), or None."""
    try:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "--name", name, "-o", "JobID,State", "-S", "now-14days"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    ids = [
        line.split("|")[0]
        for line in out.splitlines()
        if "|" in line and not line.split("|")[1].startswith("CANCELLED")
    ]
    return ids[-1] if ids else None


def cancel_recorded(store: JobStore, job_id: str) -> list[str]:
    """scancel every Slurm job recorded for queue job `job_id` (after a cancel or a final
    failure); returns the ids. Harmless for jobs that already ended."""
    book = store.kv_get(book_key(job_id)) or {}
    ids = sorted(set(book.values()))
    if ids and shutil.which("scancel"):
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30, check=False)
    return ids


def _executor(folder: Path, slurm: SlurmSettings):
    import submitit

    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=0, python=slurm.python)
    params: dict = {
        "time": slurm.time_min,
        "cpus_per_task": slurm.cpus_per_task,
        "setup": list(slurm.setup),
        "additional_parameters": dict(slurm.additional),
        "signal_delay_s": min(90, 30 * slurm.time_min),
    }
    if slurm.partition:
        params["partition"] = slurm.partition
    if slurm.mem_gb:
        params["mem"] = f"{max(1, round(slurm.mem_gb * 1024))}M"
    executor.update_parameters(**params)
    return executor


def _tail(text: str | None) -> str:
    return (text or "")[-LOG_TAIL:]


def _state(job) -> str:
    """Slurm's state of `job` from sacct ("CANCELLED by 0" → "CANCELLED"); "" when unknown."""
    state = job.get_info(mode="force").get("State", "") or ""
    return state.split()[0] if state else ""


def _outcome(job, state: str, chunk: list) -> list[Label]:
    """Labels for an ended Slurm job: its own for COMPLETED, a failed one per structure else."""
    logs = {
        "job_id": job.job_id,
        "state": state,
        "stdout": _tail(job.stdout()),
        "stderr": _tail(job.stderr()),
        "stdout_path": str(job.paths.stdout),
        "stderr_path": str(job.paths.stderr),
    }
    if state == "COMPLETED":
        try:
            labels = labels_from_bytes(job.result())
        except Exception as err:  # noqa: BLE001 - what the node raised, or a missing result
            reason = f"Slurm job {job.job_id} completed without a result: {err}".strip()
            labels = [_failed(atoms, reason[-LOG_TAIL:]) for _, _, atoms in chunk]
        if len(labels) == len(chunk):
            for label in labels:
                label.provenance["slurm"] = logs
            return labels
        reason = f"Slurm job {job.job_id} returned {len(labels)} labels for {len(chunk)}"
    else:
        last = [line for line in logs["stderr"].splitlines() if line.strip()][-1:]
        reason = f"Slurm job {job.job_id} ended {state}" + (f": {last[0]}" if last else "")
    return [_failed(atoms, reason, {"slurm": logs}) for _, _, atoms in chunk]


def _failed(atoms, reason: str, provenance: dict | None = None) -> Label:
    bare = atoms.copy()
    bare.calc = None
    return Label(bare, False, reason, dict(provenance or {}))


def _chunk_key(chunk: list) -> str:
    return hashlib.sha256("".join(d for _, d, _ in chunk).encode()).hexdigest()[:16]


def label_on_slurm(
    ctx: JobContext,
    structures: list,
    name: str,
    settings: dict,
    slurm: SlurmSettings,
    dataset: str,
) -> dict:
    """The label job with its calculations as Slurm jobs: submit (or re-attach), wait, store."""
    import submitit

    from mlipserve.server.dataset import Dataset, structure_hash

    if shutil.which("sbatch") is None:
        raise JobError("this labeller runs on Slurm, but sbatch is not on this worker's PATH")
    folder = Path(slurm.folder or ctx.store_dir / "_slurm") / ctx.job_id
    key = book_key(ctx.job_id)
    with Dataset(ctx.dataset_url(dataset)) as data:
        todo, skipped = [], 0
        for i, atoms in enumerate(structures):
            digest = structure_hash(atoms)
            if data.has(digest):
                skipped += 1
            else:
                todo.append((i, digest, atoms))
        size = slurm.structures_per_job
        chunks = [todo[k : k + size] for k in range(0, len(todo), size)]
        executor = _executor(folder, slurm) if chunks else None
        jobs, submitted, reattached = {}, [], []
        for chunk in chunks:
            chunk_id = _chunk_key(chunk)
            book = ctx.store.kv_get(key) or {}
            known = book.get(chunk_id) or find_by_name(job_name(ctx.job_id, chunk_id))
            if known:
                job = submitit.SlurmJob(folder=folder, job_id=str(known))
                reattached.append(job.job_id)
                ctx.log(f"re-attached to Slurm job {job.job_id} ({len(chunk)} structures)")
            else:
                executor.update_parameters(job_name=job_name(ctx.job_id, chunk_id))
                job = executor.submit(
                    run_labels, name, settings, [atoms_to_dict(a) for _, _, a in chunk]
                )
                submitted.append(job.job_id)
                ctx.log(f"submitted Slurm job {job.job_id} ({len(chunk)} structures)")
            book[chunk_id] = job.job_id
            ctx.store.kv_put(key, book)
            jobs[chunk_id] = (chunk, job)
        stored, failed = [], []
        pending = dict(jobs)
        while pending:
            if ctx.cancelled():
                cancel_recorded(ctx.store, ctx.job_id)
                raise JobError("cancelled (its Slurm jobs were cancelled)")
            for chunk_id, (chunk, job) in list(pending.items()):
                state = _state(job)
                if state not in FAILED_STATES and state != "COMPLETED":
                    continue
                for (i, _, _), label in zip(chunk, _outcome(job, state, chunk), strict=True):
                    if label.ok:
                        stored.extend(k for k in data.add([label]) if k is not None)
                    else:
                        failed.append({"index": i, "error": label.error, "slurm_job": job.job_id})
                        ctx.log(f"structure {i}: label failed: {label.error}")
                del pending[chunk_id]
            done = len(jobs) - len(pending)
            ctx.progress(done / max(len(jobs), 1), None)
            if pending:
                time.sleep(slurm.poll_s)
        total = data.count()
    if failed and len(failed) == len(structures):
        raise JobError(f"every label failed; first: {failed[0]['error']}")
    return {
        "stored": stored,
        "already_present": skipped,
        "failed": failed,
        "dataset_size": total,
        "slurm_jobs": sorted({job.job_id for _, job in jobs.values()}),
        "submitted": submitted,
        "reattached": reattached,
    }
