"""/status (the status page) and /v1/status (the JSON it polls every second).

The page and its scripts are static files shipped in the package (`static/`, uPlot 1.6.32
vendored: no CDN) and hold no data, so they are served without a key: with auth on, the
page asks for a key, keeps it in sessionStorage and sends it as `authorization: Bearer`
when it polls /v1/status, which needs a key like every other route (401 without one).
"""

from __future__ import annotations

import asyncio
from importlib.resources import files

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from mlipserve.server.auth import Principal
from mlipserve.server.rest import status_data
from mlipserve.server.rest.security import principal

router = APIRouter(tags=["status"])

STATIC = files("mlipserve.server.rest") / "static"
# name under /status/ → (file in static/, media type); nothing else is ever served from there
ASSETS = {
    "status.js": ("status.js", "text/javascript; charset=utf-8"),
    "status.css": ("status.css", "text/css; charset=utf-8"),
    "uPlot.iife.min.js": ("uplot/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "uPlot.min.css": ("uplot/uPlot.min.css", "text/css; charset=utf-8"),
}
PUBLIC = frozenset({"/status", *(f"/status/{name}" for name in ASSETS)})  # no data in these
PAGE_HEADERS = {
    # scripts only from this server; uPlot sets element styles from script
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@router.get("/status", response_class=Response)
async def status_page() -> Response:
    """The status page (HTML; its figures come from /v1/status, with the key it asks for)."""
    return Response(
        _read("status.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS
    )


def _asset_route(name: str, path: str, media: str) -> None:
    async def asset() -> Response:
        return Response(_read(path), media_type=media, headers=PAGE_HEADERS)

    asset.__doc__ = f"A static file of the status page ({name})."
    router.add_api_route(
        f"/status/{name}", asset, methods=["GET"], response_class=Response, name=f"status-{name}"
    )


for _name, (_path, _media) in ASSETS.items():
    _asset_route(_name, _path, _media)


def _job_store(request: Request):
    """The server's job store, or None when it has no queue."""
    from mlipserve.server.rest.jobs import jobs_store

    try:
        return jobs_store(request)
    except HTTPException:
        return None


@router.get("/v1/status")
async def status(
    request: Request,
    response: Response,
    window_s: float = Query(60.0, ge=1.0, le=3600.0, description="seconds of the rolling window"),
    caller: Principal = Depends(principal),
) -> dict:
    """Models, queues, batch fill, latency, tenants' shares, workers, jobs, promotions and
    harvesting (a user key sees its own tenant's share, jobs and pool; an admin sees all)."""
    response.headers["Cache-Control"] = "no-store"
    state = request.app.state
    doc = status_data.serving(state, caller, window_s)
    served = sorted({m["name"] for m in doc["models"]})
    doc |= await asyncio.to_thread(
        status_data.stores, getattr(state, "store", None), _job_store(request), served, caller
    )
    return doc
