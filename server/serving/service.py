"""gRPC handlers of the Potential service: decode, validate, batch, encode."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from mlipserve.packed import encode_packed_response, unpack_systems
from mlipserve.server.auth import AuthError, KeyStore
from mlipserve.server.serving.batcher import BatchFailed, BatchStats
from mlipserve.server.serving.checks import InvalidInput, Limits, check_system_count
from mlipserve.server.serving.dispatch import EvalRequest, make_request
from mlipserve.server.serving.harvest import Harvester
from mlipserve.server.serving.interceptors import resolve
from mlipserve.server.serving.metrics import record_request
from mlipserve.server.serving.registry import LoadedModel, Registry, UnknownModel
from mlipserve.server.serving.tenancy import TenantLimits, Throttled
from mlipserve.v1 import potential_pb2 as pb
from mlipserve.v1 import potential_pb2_grpc as pb_grpc
from mlipserve.wire import (
    PROPERTY_BY_ENUM,
    SystemArrays,
    WireError,
    encode_error,
    encode_model_info,
    encode_response,
)

log = logging.getLogger("mlipserve.requests")
INLINE_ATOMS = 2_000  # a one-system request up to this size is decoded on the event loop
UNKNOWN = "unknown"  # the metrics label of every model name that is not served


class Undecodable:
    """What the tolerant deserializer gives for bytes that are not a valid message."""

    def __init__(self, error: str) -> None:
        self.error = error
        self.request_id = ""


def tolerant(message_class):
    """A request deserializer that returns `Undecodable` instead of raising (a corrupt or
    truncated message becomes INVALID_ARGUMENT, and a stream survives it)."""

    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as err:
            return Undecodable(
                f"request: not a valid {message_class.__name__} message "
                f"(protobuf: {str(err)[:200]})"
            )

    return parse


class RequestError(Exception):
    """An error to send back with its gRPC status code."""

    def __init__(
        self, code: grpc.StatusCode, message: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


def _property_names(request: pb.EvaluateRequest) -> frozenset[str]:
    names = set()
    for value in request.properties:
        if value not in PROPERTY_BY_ENUM:
            raise InvalidInput(f"properties: unknown property value {value}")
        names.add(PROPERTY_BY_ENUM[value])
    return frozenset(names)


class PotentialService(pb_grpc.PotentialServicer):
    """Evaluate, EvaluateStream and ListModels over the registry's batchers."""

    def __init__(
        self,
        registry: Registry,
        limits: Limits,
        keys: KeyStore | None = None,
        tenants: TenantLimits | None = None,
        replica: str = "",
        harvester: Harvester | None = None,
    ) -> None:
        self.harvester = harvester  # keeps uncertain structures for active learning
        self.replica = replica  # named in every response (several servers behind one name)
        self.registry = registry
        self.limits = limits
        self.keys = keys
        self.tenants = tenants or TenantLimits()
        self._streams: dict[str, int] = {}
        self._decoder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlipserve-decode")

    def prepare(self, request: pb.EvaluateRequest) -> tuple[LoadedModel, EvalRequest]:
        """Decode and validate a request before it may join a batch."""
        if isinstance(request, Undecodable):
            raise InvalidInput(request.error)
        try:
            loaded = self.registry.get(request.model, request.version)
        except UnknownModel as err:
            raise InvalidInput(f"model: {err}") from None
        try:
            if request.HasField("packed"):
                if len(request.systems):
                    raise InvalidInput("packed: a request sets either systems or packed, not both")
                systems: list[SystemArrays] = unpack_systems(
                    request.packed, self.limits.max_systems_per_request
                )
            else:
                check_system_count(len(request.systems), self.limits)  # before decoding them
                systems = [
                    SystemArrays.from_proto(msg, f"systems[{i}]")
                    for i, msg in enumerate(request.systems)
                ]
        except WireError as err:
            raise InvalidInput(str(err)) from None
        properties = _property_names(request)
        job = make_request(systems, properties, loaded.model.info, self.limits)
        if self.harvester is not None:  # harvested: the batch also computes the spread
            job = self.harvester.mark(job, loaded.model.info, request.no_harvest)
        return loaded, job

    async def _prepare(self, request: pb.EvaluateRequest) -> tuple[LoadedModel, EvalRequest]:
        """`prepare` on the event loop for one small system, else on the decode threads (a
        big request never stalls the other clients' calls)."""
        if isinstance(request, Undecodable):
            return self.prepare(request)
        if request.HasField("packed"):
            shape = request.packed.positions.shape
            if not shape or shape[0] < INLINE_ATOMS:
                return self.prepare(request)
        elif len(request.systems) == 0:
            return self.prepare(request)
        elif len(request.systems) == 1:
            shape = request.systems[0].positions.shape
            if not shape or shape[0] < INLINE_ATOMS:
                return self.prepare(request)
        return await asyncio.get_running_loop().run_in_executor(
            self._decoder, self.prepare, request
        )

    def _label(self, request) -> str:
        """The metrics label of a request's model: a served name, else 'unknown'."""
        name = getattr(request, "model", "") or self.registry.default_model
        return name if self.registry.serves(name) else UNKNOWN

    async def evaluate(
        self, request: pb.EvaluateRequest, method: str = "Evaluate", tenant: str = "default"
    ) -> pb.EvaluateResponse:
        """Validate, admit, wait for the batch, and build the response."""
        model = self._label(request)
        try:
            loaded, job = await self._prepare(request)
        except InvalidInput as err:
            record_request(model, method, "INVALID_ARGUMENT")
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
        except Exception as err:  # a bug, not the caller's fault: say so, keep serving
            log.exception("request could not be prepared")
            record_request(model, method, "INTERNAL")
            raise RequestError(
                grpc.StatusCode.INTERNAL,
                f"the server failed to read this request ({type(err).__name__})",
            ) from None
        try:
            self.tenants.admit(tenant, job.n_atoms, loaded.batcher.queued_weight(tenant))
        except Throttled as err:
            record_request(model, method, "RESOURCE_EXHAUSTED")
            raise RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{err}; retry after {err.retry_after_s:.2f} s",
                retry_after_s=err.retry_after_s,
            ) from None
        try:
            results, stats = await loaded.batcher.submit(
                job, job.n_atoms, len(job.systems), tenant, min(max(request.priority, 0), 1)
            )
        except BatchFailed as err:
            record_request(model, method, "INTERNAL")
            raise RequestError(
                grpc.StatusCode.INTERNAL, f"model evaluation failed: {err}"
            ) from None
        if isinstance(results, InvalidInput):  # e.g. a NaN result: refused, never sent as OK
            record_request(model, method, "INVALID_ARGUMENT")
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(results))
        record_request(model, method, "OK", stats.queue_wait_s)
        if self.harvester is not None:
            self.harvester.collect(job, loaded.model.info, tenant, results)
        self.registry.live.record_request(
            model, tenant, job.n_atoms, stats.queue_wait_s, stats.compute_s, stats.atoms
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "request",
                extra={
                    "fields": {
                        "request_id": request.request_id,
                        "tenant": tenant,
                        "model": model,
                        "method": method,
                        "systems": len(job.systems),
                        "atoms": job.n_atoms,
                        "batch_requests": stats.requests,
                        "queue_wait_s": round(stats.queue_wait_s, 6),
                        "compute_s": round(stats.compute_s, 6),
                    }
                },
            )
        return self._response(loaded, request, results, stats)

    async def _tenant(self, context) -> str:
        return (await resolve(self.keys, context.invocation_metadata())).tenant

    def _response(self, loaded: LoadedModel, request, results: list[dict], stats: BatchStats):
        info = loaded.model.info
        response = None
        if request.HasField("packed"):  # answered packed (per system where it cannot be)
            response = encode_packed_response(
                results, info.name, info.version, request.request_id, stats
            )
        if response is None:
            response = encode_response(results, info.name, info.version, request.request_id, stats)
        response.replica = self.replica
        return response

    async def Evaluate(self, request, context: grpc.aio.ServicerContext):  # noqa: N802
        """Unary evaluation of one or many systems."""
        try:
            return await self.evaluate(request, "Evaluate", await self._tenant(context))
        except RequestError as err:
            if err.retry_after_s is not None:
                context.set_trailing_metadata(
                    (("retry-after-ms", str(int(err.retry_after_s * 1000))),)
                )
            await context.abort(err.code, err.message)

    async def EvaluateStream(self, request_iterator, context: grpc.aio.ServicerContext):  # noqa: N802
        """In-order responses; a bad request gets an error response, the stream stays open."""
        tenant = await self._tenant(context)
        limit = self.tenants.max_streams
        if limit and self._streams.get(tenant, 0) >= limit:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"tenant {tenant!r} already has {limit} open streams (its limit)",
            )
        self._streams[tenant] = self._streams.get(tenant, 0) + 1
        try:
            async for request in request_iterator:
                if self.keys is not None:  # a key revoked mid-stream stops the stream
                    try:
                        await self._tenant(context)
                    except AuthError as err:
                        await context.abort(grpc.StatusCode.UNAUTHENTICATED, err.message)
                try:
                    yield await self.evaluate(request, "EvaluateStream", tenant)
                except RequestError as err:  # every failure is an error response: the stream stays
                    yield encode_error(request.request_id, err.code.value[0], err.message)
        finally:
            self._streams[tenant] -= 1

    async def ListModels(self, request, context):  # noqa: N802
        """Every loaded model version."""
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)
        models = [
            encode_model_info(loaded.model.info.describe(is_default))
            for loaded, is_default in self.registry.entries()
        ]
        return pb.ListModelsResponse(models=models)


def add_to_server(service: PotentialService, server: grpc.aio.Server) -> None:
    """Register the Potential service with tolerant request deserializers."""
    handlers = {
        "Evaluate": grpc.unary_unary_rpc_method_handler(
            service.Evaluate,
            request_deserializer=tolerant(pb.EvaluateRequest),
            response_serializer=pb.EvaluateResponse.SerializeToString,
        ),
        "EvaluateStream": grpc.stream_stream_rpc_method_handler(
            service.EvaluateStream,
            request_deserializer=tolerant(pb.EvaluateRequest),
            response_serializer=pb.EvaluateResponse.SerializeToString,
        ),
        "ListModels": grpc.unary_unary_rpc_method_handler(
            service.ListModels,
            request_deserializer=tolerant(pb.ListModelsRequest),
            response_serializer=pb.ListModelsResponse.SerializeToString,
        ),
    }
    name = pb.DESCRIPTOR.services_by_name["Potential"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)  # type: ignore[attr-defined]  # grpcio 1.6x API, not in grpc-stubs
