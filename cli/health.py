"""`mlipserve health`: is the server on this machine up? (the container's health check)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlipserve.cli.options import console


def health(
    port: Annotated[int | None, typer.Option(help="gRPC port (default: the settings').")] = None,
    rest_port: Annotated[
        int | None, typer.Option(help="REST port, used when TLS is on (default: the settings').")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 3.0,
) -> None:
    """Exit 0 when the local server answers: gRPC health SERVING (plaintext), or REST /healthz
    over TLS (the server's own certificate on loopback is not verified: nothing secret is sent).
    Reads MLIPSERVE_PORT, MLIPSERVE_REST_PORT and MLIPSERVE_TLS_CERT like `serve`."""
    from mlipserve.server.config import Settings

    settings = Settings()
    if settings.tls_cert:
        import httpx

        url = f"https://127.0.0.1:{rest_port or settings.rest_port}/healthz"
        try:
            ok = httpx.get(url, verify=False, timeout=timeout).json().get("status") == "ok"
        except (httpx.HTTPError, ValueError) as err:
            console.print(f"[red]unhealthy:[/red] {url}: {err}")
            raise typer.Exit(1) from None
        where = url
    else:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        where = f"127.0.0.1:{port or settings.port}"
        try:
            with grpc.insecure_channel(where) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=timeout
                )
            ok = reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError as err:
            console.print(f"[red]unhealthy:[/red] gRPC {where}: {err.code().name}")
            raise typer.Exit(1) from None
    if not ok:
        console.print(f"[red]unhealthy:[/red] {where} is not serving")
        raise typer.Exit(1)
    console.print(f"healthy: {where}")
