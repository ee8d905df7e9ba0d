"""REST auth dependencies: a valid key on every route but /healthz; admin for management."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request

from mlipserve.server.auth import ANONYMOUS, AuthError, Principal, bearer


def principal(request: Request) -> Principal:
    """The caller (ANONYMOUS when auth is off); 401 without a valid key."""
    keys = request.app.state.keys
    if keys is None:
        return ANONYMOUS
    try:
        return keys.verify(bearer(request.headers.get("authorization")))
    except AuthError as err:
        raise HTTPException(err.status, err.message,
                            headers={"WWW-Authenticate": "Bearer"}) from None


def admin(caller: Principal = Depends(principal)) -> Principal:
    """The caller, who must hold an admin key (403 otherwise)."""
    if not caller.is_admin:
        raise HTTPException(403, "this route needs an admin key")
    return caller
