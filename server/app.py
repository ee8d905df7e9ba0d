"""Build and run the gRPC server: registry, Potential service, health, reflection."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from dataclasses import dataclass

import grpc
import grpc.aio
import uvicorn
from grpc_health.v1 import _async as health_async
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mlipserve.server import store_events
from mlipserve.server.auth import KeyStore
from mlipserve.server.config import Settings
from mlipserve.server.models.builtin import load_builtin
from mlipserve.server.queue.worker import start_worker_threads
from mlipserve.server.rest import create_app
from mlipserve.server.serving.harvest import Harvester
from mlipserve.server.serving.hotswap import follow_store
from mlipserve.server.serving.interceptors import AuthInterceptor
from mlipserve.server.serving.registry import Registry
from mlipserve.server.serving.service import PotentialService, add_to_server
from mlipserve.server.store import ModelStore
from mlipserve.v1 import potential_pb2 as pb

log = logging.getLogger("mlipserve.server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Potential"].full_name


def build_registry(settings: Settings) -> Registry:
    """Load the models the settings name into a fresh registry."""
    registry = Registry(
        batching=settings.batching,
        max_batch_atoms=settings.max_batch_atoms,
        max_wait_us=settings.max_wait_us,
    )
    store = None
    for spec in settings.models:
        if spec.startswith("store:"):  # the default version of a model in the store
            store = store or ModelStore(settings.model_store_dir)
            registry.add(store.load(spec[len("store:") :], device=settings.device))
        else:
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
    rest: uvicorn.Server | None = None
    rest_port: int | None = None
    rest_task: asyncio.Task | None = None
    watch_task: asyncio.Task | None = None
    listen_task: asyncio.Task | None = None
    harvester: Harvester | None = None
    serving: bool = True

    async def stop(self, grace: float = 1.0) -> None:
        """Readiness off, stop accepting calls, let running ones finish for `grace` s."""
        self.serving = False
        for task in (self.watch_task, self.listen_task):
            if task is not None:
                task.cancel()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self.rest is not None:
            self.rest.should_exit = True
            await self.rest_task
        await self.registry.close()
        if self.harvester is not None:
            try:
                await asyncio.to_thread(self.harvester.stop)
            except RuntimeError:  # the loop's executor is already shut (interpreter exit)
                self.harvester.stop()


def rest_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket for the REST app, or an OSError that says what to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise OSError(
            f"cannot listen for REST on {host}:{port}: {err.strerror} "
            "(choose another port with --rest-port / MLIPSERVE_REST_PORT)"
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def start_rest(running: RunningServer, settings: Settings, keys: KeyStore | None) -> None:
    """Serve the REST app on the same event loop (its own port)."""
    app = create_app(
        running.registry,
        settings.limits,
        lambda: running.serving,
        keys=keys,
        store=ModelStore(settings.model_store_dir),
        device=settings.device,
        max_upload_bytes=settings.max_upload_mb * 1024 * 1024,
        tenants=settings.tenant_limits,
        queue_url=settings.job_queue_url,
        max_body_bytes=settings.rest_body_bytes,
        replica=settings.replica_name or f"{settings.host}:{running.port}",
        harvester=running.harvester,
    )
    tls = (
        {"ssl_certfile": settings.tls_cert, "ssl_keyfile": settings.tls_key}
        if settings.tls_cert
        else {}
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.rest_port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        **tls,
    )
    rest = uvicorn.Server(config)
    rest.install_signal_handlers = lambda: None  # the gRPC side owns SIGINT/SIGTERM
    sock = rest_socket(settings.host, settings.rest_port)  # bound here: uvicorn would exit
    task = asyncio.get_running_loop().create_task(rest.serve(sockets=[sock]))
    running.rest, running.rest_task = rest, task
    while not rest.started:
        if running.rest_task.done():
            running.rest_task.result()
            raise OSError(f"REST could not start on {settings.host}:{settings.rest_port}")
        await asyncio.sleep(0.01)
    running.rest_port = rest.servers[0].sockets[0].getsockname()[1]


async def start_server(settings: Settings, registry: Registry | None = None) -> RunningServer:
    """Start serving on settings.host:settings.port (port 0 picks a free port)."""
    settings.check_exposure()
    registry = registry if registry is not None else build_registry(settings)
    size = settings.max_message_bytes
    keys = None
    if settings.auth:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        keys = KeyStore(settings.key_db_url)
    server = grpc.aio.server(
        interceptors=[AuthInterceptor(keys)] if keys is not None else [],
        options=[
            ("grpc.max_send_message_length", size),
            ("grpc.max_receive_message_length", size),
            ("grpc.so_reuseport", 0),
            # clients ping every 30 s on idle streams (client/core.py); the default policy
            # (5 min) answers that with GOAWAY "too_many_pings" after ~200 s
            ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
    harvester = Harvester(settings.model_store_dir, settings.job_queue_url).start()
    service = PotentialService(
        registry, settings.limits, keys, settings.tenant_limits, harvester=harvester
    )
    add_to_server(service, server)
    health = health_async.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    address = f"{settings.host}:{settings.port}"
    try:
        if settings.tls_cert:
            with open(settings.tls_key, "rb") as k, open(settings.tls_cert, "rb") as c:
                port = server.add_secure_port(
                    address, grpc.ssl_server_credentials([(k.read(), c.read())])
                )
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:  # grpc's "Failed to bind to address ..."
        port = 0
    if port == 0:
        raise OSError(
            f"cannot listen for gRPC on {address}: the port is in use or the address is "
            "not one of this machine's (choose another with --port / MLIPSERVE_PORT)"
        )
    service.replica = settings.replica_name or f"{settings.host}:{port}"
    await server.start()
    serving = health_pb2.HealthCheckResponse.SERVING
    await health.set("", serving)
    await health.set(SERVICE_NAME, serving)
    running = RunningServer(server, port, registry, health, harvester=harvester)
    if settings.watch_store_s > 0:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        redis_url = settings.announce_url
        store_events.configure(redis_url)  # this process's promotions are announced too
        if redis_url:
            running.listen_task = loop.create_task(
                store_events.listen(redis_url, settings.model_store_dir, wake)
            )
        running.watch_task = loop.create_task(
            follow_store(
                registry,
                ModelStore(settings.model_store_dir),
                settings.watch_store_s,
                settings.device,
                wake,
            )
        )
    if settings.rest:
        await start_rest(running, settings, keys)
    return running


async def serve(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM."""
    running = await start_server(settings)
    loaded = ", ".join(
        f"{l.model.info.name}@{l.model.info.version}({l.model.info.device})"
        for l, _ in running.registry.entries()
    )
    log.info(
        "mlipserve gRPC on %s:%d, REST on port %s; models: %s; default: %s; batching %s "
        "(max %d atoms, wait %d µs)",
        settings.host,
        running.port,
        running.rest_port,
        loaded,
        running.registry.default_model,
        "on" if settings.batching else "off",
        settings.max_batch_atoms,
        settings.max_wait_us,
    )
    workers = None
    if settings.workers > 0:
        workers, _ = start_worker_threads(settings.worker_config(), settings.workers)
        log.info("%d in-process queue worker(s) on %s", settings.workers, settings.job_queue_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info(
        "mlipserve draining: not ready, no new calls, finishing those in flight (%g s max)",
        settings.drain_s,
    )
    if workers is not None:
        workers.set()  # running jobs are left to their leases: another worker picks them up
    await running.stop(settings.drain_s)
    log.info("mlipserve stopped")
