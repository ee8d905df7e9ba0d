"""The asyncio client: the same surface as Client, awaitable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import grpc
import grpc.aio
from mlipserve.client.client import model_info_dict
from mlipserve.client.errors import DeadlineExceeded, ServerUnavailable, error_for, from_rpc_error
from mlipserve.client.requests import (
    CHANNEL_OPTIONS,
    DEFAULT_PROPERTIES,
    RETRYABLE,
    ClientSettings,
    as_system_list,
)
from mlipserve.v1 import potential_pb2 as pb
from mlipserve.v1 import potential_pb2_grpc as pb_grpc
from mlipserve.wire import decode_response

T = TypeVar("T")


class AsyncClient(ClientSettings):
    """Asyncio twin of `Client` (same arguments, awaitable methods)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.PotentialStub | None = None

    @property
    def stub(self) -> pb_grpc.PotentialStub:
        """The stub of the current target, connecting on first use."""
        if self._stub is None:
            target = self.targets[self._index]
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
            else:
                self._channel = grpc.aio.secure_channel(
                    target, self._credentials, options=CHANNEL_OPTIONS
                )
            self._stub = pb_grpc.PotentialStub(self._channel)
        return self._stub

    async def _failover(self) -> None:
        if len(self.targets) == 1:
            return
        if self._channel is not None:
            await self._channel.close()
        self._channel, self._stub = None, None
        self._index = (self._index + 1) % len(self.targets)

    async def with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await `call`, retrying on UNAVAILABLE with backoff; translate gRPC errors."""
        start = time.monotonic()
        delays = self.retry.delays()
        attempts = 0
        while True:
            attempts += 1
            try:
                return await call()
            except grpc.RpcError as err:
                if err.code() not in RETRYABLE:
                    raise from_rpc_error(err) from None
                delay = next(delays, None)
                failure = self.give_up(err, attempts, time.monotonic() - start, delay)
                if failure is not None:
                    raise failure from None
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
        items, single = as_system_list(systems)
        request = self.request(items, properties)
        deadline = self.timeout if timeout is None else timeout
        response = await self.with_retries(
            lambda: self.stub.Evaluate(request, timeout=deadline, metadata=self.metadata)
        )
        results = decode_response(response)
        return results[0] if single else results

    async def list_models(self) -> list[dict]:
        """Models the server has loaded."""
        response = await self.with_retries(
            lambda: self.stub.ListModels(
                pb.ListModelsRequest(), timeout=self.timeout, metadata=self.metadata
            )
        )
        return [model_info_dict(m) for m in response.models]

    def stream(self) -> AsyncStreamSession:
        """Open a streaming session (one per trajectory)."""
        return AsyncStreamSession(self)

    async def close(self) -> None:
        """Close the channel."""
        if self._channel is not None:
            await self._channel.close()
        self._channel, self._stub = None, None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class AsyncStreamSession:
    """One open stream, reopened and the request resent when the server restarts."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._call = None

    async def _round_trip(self, request: pb.EvaluateRequest, timeout: float):
        if self._call is None:
            self._call = self.client.stub.EvaluateStream(metadata=self.client.metadata)
        try:
            await self._call.write(request)
            response = await asyncio.wait_for(self._call.read(), timeout)
        except TimeoutError:
            self._call.cancel()
            self._call = None
            raise DeadlineExceeded(
                f"no response within {timeout:g} s", grpc.StatusCode.DEADLINE_EXCEEDED
            ) from None
        except grpc.RpcError:
            self._call = None
            raise
        if response is grpc.aio.EOF:
            self._call = None
            raise ServerUnavailable("the server closed the stream", grpc.StatusCode.UNAVAILABLE)
        if response.HasField("error"):
            raise error_for(response.error.code, response.error.message)
        return response

    async def evaluate(
        self,
        systems,
        properties: Iterable[str] = DEFAULT_PROPERTIES,
        *,
        timeout: float | None = None,
    ):
        """Like AsyncClient.evaluate, over the open stream."""
        items, single = as_system_list(systems)
        client = self.client
        request = client.request(items, properties)
        deadline = client.timeout if timeout is None else timeout
        response = await client.with_retries(lambda: self._round_trip(request, deadline))
        results = decode_response(response)
        return results[0] if single else results

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
