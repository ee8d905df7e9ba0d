"""Build the FastAPI application over the server's registry."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from mlipserve import __version__
from mlipserve.server.batch import Limits
from mlipserve.server.registry import Registry
from mlipserve.server.rest import evaluate, health, models


def create_app(registry: Registry, limits: Limits, grpc_serving: Callable[[], bool]) -> FastAPI:
    """The REST app; `grpc_serving` tells readiness whether the gRPC side is up."""
    app = FastAPI(title="mlipserve", version=__version__,
                  description="Model management, health, metrics and evaluation over HTTP.")
    app.state.registry = registry
    app.state.limits = limits
    app.state.grpc_serving = grpc_serving
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(evaluate.router)
    return app
