"""REST security: a pure-ASGI guard (key checked and body size capped before the app reads a
byte of the body) and the route dependencies (the caller; admin for management)."""

from __future__ import annotations

import asyncio
import json
import re

from fastapi import Depends, HTTPException, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlipserve.server.auth import ANONYMOUS, AuthError, KeyStore, Principal, bearer

STATE_KEY = "principal"  # where the guard leaves the verified caller in scope["state"]
UPLOAD_PATH = re.compile(r"/v1/models/[^/]+/versions/?")  # POST: a model upload (multipart)


async def authenticate(keys: KeyStore, header: str | None) -> Principal:
    """The principal of an `authorization` header: the cache, else argon2 in a thread."""
    key = bearer(header)
    hit = keys.cached(key)
    if hit is not None:
        return hit
    return await asyncio.to_thread(keys.verify, key)


async def refuse(
    send: Send,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    close: bool = False,
) -> None:
    """Answer `{"detail": message}` with `status` (and `connection: close` when a body the
    app never read is still on the way: the server then stops reading it)."""
    body = json.dumps({"detail": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _Capped:
    """receive/send of one request: body bytes counted, the app cut off past `cap`."""

    def __init__(self, receive: Receive, send: Send, cap: int) -> None:
        self._receive, self._send, self.cap = receive, send, cap
        self.received, self.exceeded, self.started = 0, False, False

    async def receive(self) -> Message:
        if self.exceeded:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.cap:
                self.exceeded = True
                raise BodyTooLarge(self.cap)
        return message

    async def send(self, message: Message) -> None:
        if self.exceeded:
            return  # the 413 is the guard's to send
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class BodyTooLarge(Exception):
    """A streamed request body went past its cap."""


class RequestGuard:
    """Pure ASGI middleware: with auth on, every route but `public` ones answers 401 (429 when
    the key store says so) from the headers alone, before `receive()` is called; every body is
    capped (uploads at `upload_cap`, the rest at `body_cap`): a Content-Length over the cap is
    413 before reading, a chunked body is counted and cut at the cap with 413."""

    def __init__(
        self,
        app: ASGIApp,
        keys: KeyStore | None,
        body_cap: int,
        upload_cap: int,
        public: frozenset[str] = frozenset(),
    ) -> None:
        self.app, self.keys, self.public = app, keys, public
        self.body_cap, self.upload_cap = body_cap, upload_cap

    def cap(self, scope: Scope) -> int:
        """The body cap of a request's route."""
        upload = scope["method"] == "POST" and UPLOAD_PATH.fullmatch(scope["path"])
        return self.upload_cap if upload else self.body_cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = _content_length(headers)
        pending = bool(length) or "transfer-encoding" in headers  # a body is on the way
        if self.keys is not None and scope["path"] not in self.public:
            try:
                caller = await authenticate(self.keys, headers.get("authorization"))
            except AuthError as err:
                extra = {"WWW-Authenticate": "Bearer"} if err.status == 401 else {}
                retry = getattr(err, "retry_after_s", None)
                if retry is not None:
                    extra["Retry-After"] = str(max(1, round(retry)))
                await refuse(send, err.status, err.message, extra, close=pending)
                return
            scope.setdefault("state", {})[STATE_KEY] = caller
        cap = self.cap(scope)
        if length is not None and length > cap:
            await refuse(send, 413, _too_large(cap, length), close=True)
            return
        capped = _Capped(receive, send, cap)
        try:
            await self.app(scope, capped.receive, capped.send)
        except Exception:
            if not capped.exceeded:
                raise
        if capped.exceeded and not capped.started:
            await refuse(send, 413, _too_large(cap), close=True)


def _content_length(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


def _too_large(cap: int, length: int | None = None) -> str:
    size = f"of {length} bytes " if length is not None else ""
    return (
        f"request body {size}exceeds this route's limit of {cap} bytes (uploads: "
        "MLIPSERVE_MAX_UPLOAD_MB; other bodies: MLIPSERVE_REST_MAX_BODY_BYTES)"
    )


def principal(request: Request) -> Principal:
    """The caller (ANONYMOUS when auth is off); 401 without a valid key."""
    keys = request.app.state.keys
    if keys is None:
        return ANONYMOUS
    caller = request.scope.get("state", {}).get(STATE_KEY)
    if caller is not None:  # verified by the guard before the body was read
        return caller
    try:
        return keys.verify(bearer(request.headers.get("authorization")))
    except AuthError as err:
        raise HTTPException(
            err.status, err.message, headers={"WWW-Authenticate": "Bearer"}
        ) from None


def admin(caller: Principal = Depends(principal)) -> Principal:
    """The caller, who must hold an admin key (403 otherwise)."""
    if not caller.is_admin:
        raise HTTPException(403, "this route needs an admin key")
    return caller
