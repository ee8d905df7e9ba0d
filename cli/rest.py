"""One REST call from the command line: auth header, clear errors, JSON back."""

from __future__ import annotations

import typer

from mlipserve.cli.options import console


def rest_call(url: str, key: str | None, method: str, path: str, **kwargs):
    """`method path` on the server at `url`; prints the server's message and exits on an error."""
    import httpx

    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        reply = httpx.request(
            method, url.rstrip("/") + path, headers=headers, timeout=120, **kwargs
        )
    except httpx.HTTPError as err:
        console.print(f"[red]cannot reach {url}:[/red] {err}")
        raise typer.Exit(1) from None
    if reply.status_code >= 400:
        detail = (
            reply.json().get("detail", reply.text)
            if reply.headers.get("content-type", "").startswith("application/json")
            else reply.text
        )
        console.print(f"[red]{reply.status_code}:[/red] {detail}")
        raise typer.Exit(1)
    return reply.json()
