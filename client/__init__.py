"""The thin client (no torch): sync and async clients and an ASE calculator."""

from mlipserve.client.aio import AsyncClient, AsyncStreamSession
from mlipserve.client.calculator import RemoteCalculator
from mlipserve.client.client import Client, StreamSession
from mlipserve.client.core import RetryPolicy
from mlipserve.client.errors import (
    DeadlineExceeded,
    InvalidInput,
    MLIPServeError,
    ResourceExhausted,
    ServerError,
    ServerUnavailable,
    TrustWarning,
)

__all__ = [
    "AsyncClient",
    "AsyncStreamSession",
    "Client",
    "DeadlineExceeded",
    "InvalidInput",
    "MLIPServeError",
    "RemoteCalculator",
    "ResourceExhausted",
    "RetryPolicy",
    "ServerError",
    "ServerUnavailable",
    "StreamSession",
    "TrustWarning",
]
