"""Build the FastAPI application over the server's registry."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, FastAPI

from mlipserve import __version__
from mlipserve.server.auth import KeyStore
from mlipserve.server.config import rest_body_cap
from mlipserve.server.rest import evaluate, harvest, health, jobs, models, status
from mlipserve.server.rest.security import RequestGuard, principal
from mlipserve.server.serving.checks import Limits
from mlipserve.server.serving.harvest import Harvester
from mlipserve.server.serving.registry import Registry
from mlipserve.server.serving.tenancy import TenantLimits
from mlipserve.server.store import ModelStore

UPLOAD_FRAMING = 1 << 20  # multipart headers, boundaries and the metadata field of an upload


def create_app(
    registry: Registry,
    limits: Limits,
    grpc_serving: Callable[[], bool],
    *,
    keys: KeyStore | None = None,
    store: ModelStore | None = None,
    device: str = "auto",
    max_upload_bytes: int = 512 * 1024 * 1024,
    tenants: TenantLimits | None = None,
    queue_url: str | None = None,
    max_body_bytes: int | None = None,
    replica: str = "",
    harvester: Harvester | None = None,
) -> FastAPI:
    """The REST app; `grpc_serving` tells readiness whether the gRPC side is up.

    Request bodies are capped before they are read: uploads at `max_upload_bytes` plus the
    form's framing, every other body at `max_body_bytes` (default: what `limits` admit).
    `replica` names this server on the status page (as gRPC responses do).
    """
    app = FastAPI(
        title="mlipserve",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        description="Model management, health, metrics and evaluation over HTTP.",
    )
    app.state.registry = registry
    app.state.limits = limits
    app.state.grpc_serving = grpc_serving
    app.state.keys = keys
    app.state.store = store
    app.state.device = device
    app.state.max_upload_bytes = max_upload_bytes
    app.state.tenants = tenants or TenantLimits()
    app.state.queue_url = queue_url
    app.state.replica = replica
    app.state.harvester = harvester

    @app.get("/openapi.json", dependencies=[Depends(principal)], include_in_schema=False)
    async def openapi() -> dict:
        """The OpenAPI document (behind auth like every route but /healthz)."""
        return app.openapi()

    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(evaluate.router)
    app.include_router(jobs.router)
    app.include_router(harvest.router)
    app.include_router(status.router)
    app.add_middleware(
        RequestGuard,
        keys=keys,
        public=health.PUBLIC | status.PUBLIC,
        body_cap=max_body_bytes or rest_body_cap(limits),
        upload_cap=max_upload_bytes + UPLOAD_FRAMING,
    )
    return app
