"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mlipserve.server.rest.security import principal
from mlipserve.server.serving.metrics import refresh_gpu_memory

router = APIRouter(tags=["health"])
PUBLIC = frozenset({"/healthz"})  # the only paths served without a key when auth is on


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[Depends(principal)])
async def readyz(request: Request) -> JSONResponse:
    """Models are loaded and gRPC is serving (503 otherwise, e.g. while draining)."""
    registry = request.app.state.registry
    ready = bool(registry.entries()) and request.app.state.grpc_serving()
    return JSONResponse(
        {"ready": ready, "models": len(registry.entries())}, status_code=200 if ready else 503
    )


@router.get("/metrics", dependencies=[Depends(principal)])
async def metrics() -> Response:
    """Prometheus exposition of the server's metrics."""
    refresh_gpu_memory()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
