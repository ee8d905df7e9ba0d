"""/v1/jobs: submit, list, show and cancel queue jobs (label, retrain, evaluate, promote).

Users submit and read label jobs of their own tenant; retrain, evaluate and promote change
what everyone is served, so they need an admin key. Admins see every tenant's jobs.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from mlipserve.server.auth import Principal
from mlipserve.server.rest.security import principal
from pydantic import BaseModel, Field

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(principal)])
ADMIN_KINDS = frozenset({"retrain", "evaluate", "promote"})


class JobSubmission(BaseModel):
    """Body of POST /v1/jobs. `params` depend on the kind (see `mlipserve.server.queue.tasks`);
    structures travel as {numbers, positions, cell, pbc} lists."""

    kind: Literal["label", "retrain", "evaluate", "promote"]
    params: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int = Field(3, ge=1, le=20)
    time_limit_s: float = Field(600.0, gt=0, le=7 * 24 * 3600)


def jobs_store(request: Request):
    """The job store (opened on first use so servers that never queue create no files)."""
    store = getattr(request.app.state, "jobs", None)
    if store is None:
        url = getattr(request.app.state, "queue_url", None)
        if not url:
            raise HTTPException(409, "this server has no job queue configured")
        from mlipserve.server.queue.jobstore import JobStore

        store = request.app.state.jobs = JobStore(url)
    return store


def _visible(record, caller: Principal):
    if not caller.is_admin and record.owner != caller.tenant:
        raise HTTPException(404, f"no job {record.id!r}")  # do not reveal other tenants' jobs
    return record


async def _get(request: Request, job_id: str, caller: Principal):
    try:
        record = await asyncio.to_thread(jobs_store(request).get, job_id)
    except KeyError:
        raise HTTPException(404, f"no job {job_id!r}") from None
    return _visible(record, caller)


@router.post("", status_code=201)
async def submit(body: JobSubmission, request: Request,
                 caller: Principal = Depends(principal)) -> dict:
    """Queue a job; returns its record (state "queued")."""
    if body.kind in ADMIN_KINDS and not caller.is_admin:
        raise HTTPException(403, f"{body.kind} jobs need an admin key")
    params = body.params
    if body.kind == "label":
        params = _check_label_params(params)
    record = await asyncio.to_thread(
        jobs_store(request).submit, body.kind, params, caller.tenant,
        max_attempts=body.max_attempts, time_limit_s=body.time_limit_s)
    return record.public()


def _check_label_params(params: dict) -> dict:
    """Validate the structures of a label job now, not in a worker later."""
    from mlipserve.server.queue.payload import atoms_from_dict

    structures = params.get("structures")
    if not isinstance(structures, list) or not structures:
        raise HTTPException(422, "params.structures must be a non-empty list of structures")
    if not params.get("dataset"):
        raise HTTPException(422, "params.dataset (a dataset name) is required")
    for i, s in enumerate(structures):
        if not isinstance(s, dict):
            raise HTTPException(422, f"params.structures[{i}] must be an object")
        try:
            atoms_from_dict(s)
        except ValueError as err:
            raise HTTPException(422, f"params.structures[{i}]: {err}") from None
    return params


@router.get("")
async def list_jobs(request: Request, state: str | None = None, kind: str | None = None,
                    caller: Principal = Depends(principal)) -> list[dict]:
    """Jobs of the caller's tenant (all tenants for admins), newest first."""
    owner = None if caller.is_admin else caller.tenant
    records = await asyncio.to_thread(jobs_store(request).list, owner, state, kind)
    return [r.public() for r in records]


@router.get("/{job_id}")
async def show_job(job_id: str, request: Request, params: bool = False,
                   caller: Principal = Depends(principal)) -> dict:
    """One job: state, progress, logs, result, timestamps (params when asked)."""
    return (await _get(request, job_id, caller)).public(with_params=params)


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request,
                     caller: Principal = Depends(principal)) -> dict:
    """Cancel a queued or running job (its owner or an admin)."""
    await _get(request, job_id, caller)
    record = await asyncio.to_thread(jobs_store(request).cancel, job_id)
    return record.public()
