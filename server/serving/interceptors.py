"""gRPC auth: every method (but the standard health service) needs a valid API key."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio

from mlipserve.server.auth import ANONYMOUS, AuthError, KeyStore, Principal, bearer

EXEMPT = ("/grpc.health.v1.Health/",)
ADMIN_METHODS: frozenset[str] = frozenset()  # all Potential methods are user-level today
_CODES = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


async def resolve(keys: KeyStore | None, metadata) -> Principal:
    """The caller of a call from its metadata (ANONYMOUS when auth is off)."""
    if keys is None:
        return ANONYMOUS
    header = next((v for k, v in (metadata or ()) if k == "authorization"), None)
    key = bearer(header)
    # a recently verified key is a dict lookup; argon2 and the database run off the event loop
    cached = keys.cached(key)
    return cached if cached is not None else await asyncio.to_thread(keys.verify, key)


def _deny(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str):
    async def unary(request, context):
        await context.abort(code, message)

    async def streaming(request_iterator, context):
        await context.abort(code, message)
        yield  # pragma: no cover  (makes this an async generator)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary)
    return grpc.unary_unary_rpc_method_handler(unary)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuse calls without a valid key (UNAUTHENTICATED) or with too low a role
    (PERMISSION_DENIED)."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    async def intercept_service(self, continuation, details):
        """Check the key, then hand the call on."""
        handler = await continuation(details)
        if handler is None or details.method.startswith(EXEMPT):
            return handler
        try:
            principal = await resolve(self.keys, details.invocation_metadata)
            if details.method in ADMIN_METHODS and not principal.is_admin:
                raise AuthError(403, f"{details.method} needs an admin key")
        except AuthError as err:
            return _deny(handler, _CODES[err.status], err.message)
        return handler
