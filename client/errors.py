"""Python exceptions for server errors, each carrying the server's message."""

from __future__ import annotations

import grpc


class MLIPServeError(Exception):
    """Base class: `code` is the gRPC status code, `details` the server's message."""

    def __init__(self, details: str, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class InvalidInput(MLIPServeError, ValueError):
    """The server rejected the request's content (INVALID_ARGUMENT)."""


class ServerUnavailable(MLIPServeError, ConnectionError):
    """No server answered within the retry window (UNAVAILABLE)."""


class DeadlineExceeded(MLIPServeError, TimeoutError):
    """The call did not finish within its deadline."""


class ResourceExhausted(MLIPServeError):
    """A server limit was hit (RESOURCE_EXHAUSTED)."""


class ServerError(MLIPServeError):
    """The model or server failed while computing (INTERNAL and others)."""


_BY_CODE: dict[grpc.StatusCode, type[MLIPServeError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.NOT_FOUND: InvalidInput,
    grpc.StatusCode.UNAVAILABLE: ServerUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}
_CODE_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


class TrustWarning(UserWarning):
    """The server flagged a result: the ensemble disagrees ('candidate' or 'untrusted')."""


def error_for(code: grpc.StatusCode | int, details: str) -> MLIPServeError:
    """The exception for a status code (an int value or a grpc.StatusCode)."""
    if isinstance(code, int):
        code = _CODE_BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)
    return _BY_CODE.get(code, ServerError)(details, code)


def from_rpc_error(err: grpc.RpcError) -> MLIPServeError:
    """Translate a grpc.RpcError (sync or aio) into an mlipserve exception."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    return error_for(code, details or str(code))
