"""The asyncio client: the same surface as Client, awaitable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import grpc
import grpc.aio

from mlipserve.client.core import (
    DEFAULT_PROPERTIES,
    Call,
    ClientCore,
    deadline_message,
    model_list,
    stream_error,
)
from mlipserve.client.errors import DeadlineExceeded, InvalidInput, ServerUnavailable
from mlipserve.v1 import potential_pb2 as pb
from mlipserve.v1 import potential_pb2_grpc as pb_grpc

T = TypeVar("T")


class AsyncClient(ClientCore):
    """Asyncio twin of `Client` (same arguments, awaitable methods)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.PotentialStub | None = None

    @property
    def stub(self) -> pb_grpc.PotentialStub:
        """The stub of the current target, connecting on first use."""
        if self._stub is None:
            self._channel = self.new_channel(grpc.aio)
            self._stub = pb_grpc.PotentialStub(self._channel)
        return self._stub

    async def _failover(self) -> None:
        if not self.can_fail_over():
            return
        if self._channel is not None:
            await self._channel.close(None)
        self._channel, self._stub = None, None
        self.next_target()

    async def with_retries(
        self, call: Callable[[], Awaitable[T]], prepared: Call | None = None
    ) -> T:
        """Await `call`, retrying on UNAVAILABLE with backoff; translate gRPC errors."""
        attempts = self.attempts(prepared)
        while True:
            try:
                return await call()
            except grpc.RpcError as err:
                delay = attempts.failed(err)
            await self._failover()
            await asyncio.sleep(delay)

    async def evaluate(
        self,
        systems,
        properties: Iterable[str] = DEFAULT_PROPERTIES,
        *,
        timeout: float | None = None,
    ):
        """Evaluate one ase.Atoms (returns a dict) or a list of them (returns a list)."""
        call = self.prepare(systems, properties, timeout)
        try:
            return call.results(await self._unary(call))
        except InvalidInput as err:
            again = self.old_server(call, err)
            if again is None:
                raise
            return again.results(await self._unary(again))

    async def _unary(self, call: Call) -> pb.EvaluateResponse:
        return await self.with_retries(
            lambda: self.stub.Evaluate(call.request, timeout=call.deadline, metadata=self.metadata),
            call,
        )

    async def list_models(self) -> list[dict]:
        """Models the server has loaded."""
        response = await self.with_retries(
            lambda: self.stub.ListModels(
                pb.ListModelsRequest(), timeout=self.timeout, metadata=self.metadata
            )
        )
        return model_list(response)

    def stream(self) -> AsyncStreamSession:
        """Open a streaming session (one per trajectory)."""
        return AsyncStreamSession(self)

    async def close(self) -> None:
        """Close the channel."""
        if self._channel is not None:
            await self._channel.close(None)
        self._channel, self._stub = None, None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class AsyncStreamSession:
    """One open stream, reopened and the request resent when the server restarts."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._call: Any = None  # grpc.aio's stream-stream call

    async def _round_trip(self, request: pb.EvaluateRequest, timeout: float):
        if self._call is None:
            self._call = self.client.stub.EvaluateStream(metadata=self.client.metadata)
        call = self._call
        try:
            await call.write(request)
            response = await asyncio.wait_for(call.read(), timeout)
        except TimeoutError:
            call.cancel()
            self._call = None
            raise DeadlineExceeded(
                deadline_message(request, timeout), grpc.StatusCode.DEADLINE_EXCEEDED
            ) from None
        except grpc.RpcError:
            self._call = None
            raise
        if response is grpc.aio.EOF:  # type: ignore[attr-defined]  # missing from grpc-stubs
            self._call = None
            raise ServerUnavailable(
                "the server closed the stream", grpc.StatusCode.UNAVAILABLE
            ) from None
        error = stream_error(response)
        if error is not None:
            raise error
        return response

    async def evaluate(
        self,
        systems,
        properties: Iterable[str] = DEFAULT_PROPERTIES,
        *,
        timeout: float | None = None,
    ):
        """Like AsyncClient.evaluate, over the open stream."""
        call = self.client.prepare(systems, properties, timeout)
        try:
            return call.results(await self._send(call))
        except InvalidInput as err:
            again = self.client.old_server(call, err)
            if again is None:
                raise
            return again.results(await self._send(again))

    async def _send(self, call: Call) -> pb.EvaluateResponse:
        return await self.client.with_retries(lambda: self._round_trip(call.request, call.deadline))

    async def close(self) -> None:
        """End the stream."""
        if self._call is not None:
            await self._call.done_writing()
            self._call.cancel()
        self._call = None

    async def __aenter__(self) -> AsyncStreamSession:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
