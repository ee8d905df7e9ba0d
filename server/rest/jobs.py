"""/v1/jobs: submit, list, show and cancel queue jobs; /v1/datasets/shares: dataset sharing.

Users submit and read label jobs of their own tenant, into their own datasets or those an
admin shared with them, with the labellers and settings the server's operator enabled
(`mlipserve labellers enable`; nothing over REST changes that list, admin keys included).
Retrain, evaluate and promote change what everyone is served, so they need an admin key.
Admins see every tenant's jobs. Workers check every job's parameters again before running it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from mlipserve.server.auth import Principal
from mlipserve.server.rest.security import admin, principal

router = APIRouter(dependencies=[Depends(principal)])  # app.py includes this one router
jobs_router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
datasets_router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


class JobSubmission(BaseModel):
    """Body of POST /v1/jobs. `params` depend on the kind (see `mlipserve.server.queue.params`);
    structures travel as {numbers, positions, cell, pbc} lists."""

    kind: Literal["label", "retrain", "evaluate", "promote"]
    params: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int = Field(3, ge=1, le=20)
    time_limit_s: float = Field(600.0, gt=0, le=7 * 24 * 3600)


class ShareBody(BaseModel):
    """Body of PUT /v1/datasets/shares/{owner}/{name}: the tenants that may use the dataset."""

    tenants: list[str] = Field(default_factory=list, max_length=100)


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


def _store_dir(request: Request):
    """The model store folder shared with the workers (labeller policy, dataset shares)."""
    store = getattr(request.app.state, "store", None)
    return None if store is None else store.root


def _checked(request: Request, kind: str, params: dict, caller: Principal) -> dict:
    """The job's parameters as the worker will check them, or a 4xx naming the parameter."""
    from mlipserve.server.labellers.policy import PolicyError, load_policy
    from mlipserve.server.queue.datasets import ShareBook
    from mlipserve.server.queue.params import Caller, ParamError, check_job

    root = _store_dir(request)
    try:
        policy = load_policy(root)
    except PolicyError as err:
        raise HTTPException(503, str(err)) from None
    try:
        return check_job(kind, params, Caller(caller.tenant, caller.role), policy, ShareBook(root))
    except ParamError as err:
        raise HTTPException(err.status, str(err)) from None


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


@jobs_router.post("", status_code=201)
async def submit(
    body: JobSubmission, request: Request, caller: Principal = Depends(principal)
) -> dict:
    """Queue a job; returns its record (state "queued")."""
    params = await asyncio.to_thread(_checked, request, body.kind, body.params, caller)
    record = await asyncio.to_thread(
        jobs_store(request).submit,
        body.kind,
        params,
        caller.tenant,
        role=caller.role,
        max_attempts=body.max_attempts,
        time_limit_s=body.time_limit_s,
    )
    return record.public()


@jobs_router.get("")
async def list_jobs(
    request: Request,
    state: str | None = None,
    kind: str | None = None,
    caller: Principal = Depends(principal),
) -> list[dict]:
    """Jobs of the caller's tenant (all tenants for admins), newest first."""
    owner = None if caller.is_admin else caller.tenant
    records = await asyncio.to_thread(jobs_store(request).list, owner, state, kind)
    return [r.public() for r in records]


@jobs_router.get("/{job_id}")
async def show_job(
    job_id: str, request: Request, params: bool = False, caller: Principal = Depends(principal)
) -> dict:
    """One job: state, progress, logs, result, timestamps (params when asked)."""
    return (await _get(request, job_id, caller)).public(with_params=params)


@jobs_router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request, caller: Principal = Depends(principal)) -> dict:
    """Cancel a queued or running job (its owner or an admin)."""
    await _get(request, job_id, caller)
    record = await asyncio.to_thread(jobs_store(request).cancel, job_id)
    return record.public()


@datasets_router.get("/shares")
async def list_shares(request: Request, caller: Principal = Depends(principal)) -> list[dict]:
    """Shares of datasets the caller's tenant owns or receives (every share for admins)."""
    from mlipserve.server.queue.datasets import DatasetError, ShareBook

    try:
        return await asyncio.to_thread(
            ShareBook(_store_dir(request)).visible, None if caller.is_admin else caller.tenant
        )
    except DatasetError as err:
        raise HTTPException(503, str(err)) from None


@datasets_router.put("/shares/{owner}/{name}")
async def share(
    owner: str, name: str, body: ShareBody, request: Request, caller: Principal = Depends(admin)
) -> dict:
    """Let exactly `tenants` read and label into dataset `name` of tenant `owner` (admin)."""
    from mlipserve.server.queue.datasets import (
        DatasetError,
        DatasetRef,
        ShareBook,
        check_name,
        check_tenant,
    )

    try:
        ref = DatasetRef(check_tenant(owner, "owner"), check_name(name, "name"))
        tenants = await asyncio.to_thread(ShareBook(_store_dir(request)).set, ref, body.tenants)
    except DatasetError as err:
        raise HTTPException(err.status, str(err)) from None
    return {"dataset": str(ref), "owner": ref.owner, "name": ref.name, "shared_with": tenants}


router.include_router(jobs_router)
router.include_router(datasets_router)
