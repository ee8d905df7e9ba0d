"""Build and run the gRPC server: registry, Potential service, health, reflection."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

import grpc
import grpc.aio
from grpc_health.v1 import _async as health_async
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mlipserve.server.config import Settings
from mlipserve.server.models.builtin import load_builtin
from mlipserve.server.registry import Registry
from mlipserve.server.service import PotentialService
from mlipserve.v1 import potential_pb2 as pb
from mlipserve.v1 import potential_pb2_grpc as pb_grpc

log = logging.getLogger("mlipserve.server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Potential"].full_name


def build_registry(settings: Settings) -> Registry:
    """Load the models the settings name into a fresh registry."""
    registry = Registry(
        batching=settings.batching,
        max_batch_atoms=settings.max_batch_atoms,
        max_wait_us=settings.max_wait_us,
    )
    for spec in settings.models:
        registry.add(load_builtin(spec, device=settings.device))
    if settings.default_model:
        registry.get(settings.default_model)  # fail at start if it is not loaded
        registry.default_model = settings.default_model
    return registry


@dataclass
class RunningServer:
    """A started server and what it serves."""

    server: grpc.aio.Server
    port: int
    registry: Registry
    health: health_async.HealthServicer

    async def stop(self, grace: float = 1.0) -> None:
        """Stop accepting calls, let running ones finish for `grace` seconds, stop batchers."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.registry.close()


async def start_server(settings: Settings, registry: Registry | None = None) -> RunningServer:
    """Start serving on settings.host:settings.port (port 0 picks a free port)."""
    registry = registry if registry is not None else build_registry(settings)
    size = settings.max_message_mb * 1024 * 1024
    server = grpc.aio.server(
        options=[
            ("grpc.max_send_message_length", size),
            ("grpc.max_receive_message_length", size),
            ("grpc.so_reuseport", 0),
        ]
    )
    pb_grpc.add_PotentialServicer_to_server(PotentialService(registry, settings.limits), server)
    health = health_async.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"could not bind {settings.host}:{settings.port}")
    await server.start()
    serving = health_pb2.HealthCheckResponse.SERVING
    await health.set("", serving)
    await health.set(SERVICE_NAME, serving)
    return RunningServer(server, port, registry, health)


async def serve(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM."""
    running = await start_server(settings)
    loaded = ", ".join(
        f"{l.model.info.name}@{l.model.info.version}({l.model.info.device})"
        for l, _ in running.registry.entries()
    )
    log.info(
        "mlipserve gRPC on %s:%d; models: %s; default: %s; batching %s (max %d atoms, wait %d µs)",
        settings.host, running.port, loaded, running.registry.default_model,
        "on" if settings.batching else "off", settings.max_batch_atoms, settings.max_wait_us,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("mlipserve draining: not ready, no new calls, finishing those in flight (%g s max)",
             settings.drain_s)
    await running.stop(settings.drain_s)
    log.info("mlipserve stopped")
