"""The synchronous client: unary and streaming evaluation with retries and failover."""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import grpc

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


class Client(ClientCore):
    """Evaluate systems on an mlipserve server.

    Args:
        target: "host:port" (or "unix:/path", "dns:///name:port"), or a list of them to fail
            over between (or, with `balance=True`, to spread calls over).
        model: model name; empty selects the server's default model.
        version: model version; empty selects the model's default version.
        timeout: deadline of one call in seconds.
        retry: backoff policy for UNAVAILABLE (server down or restarting).
        ca_file: PEM bundle to verify a TLS server; plaintext when None.
        api_key: sent as `authorization: Bearer <key>` metadata when given.
        priority: 0 interactive (served first within the tenant), 1 bulk screening.
        balance: spread unary calls over every replica with gRPC's round_robin (one
            channel; a list must be IP:port targets). A stream stays on one replica while it
            lives and reopens on another when it dies. Default: on for a dns:/// target.
        harvest: let a server that harvests for active learning keep these structures
            (default); False sends `no_harvest` with every request, so nothing is kept.
        packed: send all systems of a call as one set of arrays (default; a server that
            predates it is detected on the first call and then sent per-system requests).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._channel: grpc.Channel | None = None
        self._stub: pb_grpc.PotentialStub | None = None
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------
    @property
    def stub(self) -> pb_grpc.PotentialStub:
        """The stub of the current target, connecting on first use."""
        with self._lock:
            if self._stub is None:
                self._channel = self.new_channel(grpc)
                self._stub = pb_grpc.PotentialStub(self._channel)
            return self._stub

    def _failover(self) -> None:
        """Move to the next target (when there are several)."""
        if not self.can_fail_over():
            return
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel, self._stub = None, None
            self.next_target()

    def with_retries(self, call: Callable[[], T], prepared: Call | None = None) -> T:
        """Run `call`, retrying on UNAVAILABLE with backoff; translate gRPC errors."""
        attempts = self.attempts(prepared)
        while True:
            try:
                return call()
            except grpc.RpcError as err:
                delay = attempts.failed(err)
            self._failover()
            time.sleep(delay)

    # -- calls ------------------------------------------------------------------------
    def evaluate(
        self,
        systems,
        properties: Iterable[str] = DEFAULT_PROPERTIES,
        *,
        timeout: float | None = None,
    ):
        """Evaluate one ase.Atoms (returns a dict) or a list of them (returns a list)."""
        call = self.prepare(systems, properties, timeout)
        try:
            return call.results(self._unary(call))
        except InvalidInput as err:
            again = self.old_server(call, err)
            if again is None:
                raise
            return again.results(self._unary(again))

    def _unary(self, call: Call) -> pb.EvaluateResponse:
        return self.with_retries(
            lambda: self.stub.Evaluate(call.request, timeout=call.deadline, metadata=self.metadata),
            call,
        )

    def list_models(self) -> list[dict]:
        """Models the server has loaded."""
        response = self.with_retries(
            lambda: self.stub.ListModels(
                pb.ListModelsRequest(), timeout=self.timeout, metadata=self.metadata
            )
        )
        return model_list(response)

    def clone(self) -> Client:
        """A client with the same settings (targets, key, TLS, retries) and its own channel."""
        new = copy.copy(self)
        new._channel, new._stub, new._lock = None, None, threading.Lock()
        return new

    def stream(self) -> StreamSession:
        """Open a streaming session (one per trajectory) for step-by-step loops."""
        return StreamSession(self)

    def close(self) -> None:
        """Close the channel."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel, self._stub = None, None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StreamSession:
    """One open bidirectional stream: requests and responses in order, one at a time.

    When the stream breaks (server restarted), the session reopens it and resends the
    request: evaluation is idempotent, so no step is lost. Not thread-safe: use one
    session per trajectory.
    """

    _WATCH_PERIOD_S = 0.1

    def __init__(self, client: Client) -> None:
        self.client = client
        self._requests: queue.SimpleQueue | None = None
        self._call: Any = None  # grpc's stream-stream call (iterator of responses)
        self._deadline: float | None = None
        self._timed_out = False
        self._closed = False
        self._watchdog = threading.Thread(target=self._watch, daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        """Cancel the stream when a call passes its deadline (no per-call timer thread)."""
        while not self._closed:
            time.sleep(self._WATCH_PERIOD_S)
            deadline, call = self._deadline, self._call
            if deadline is not None and call is not None and time.monotonic() > deadline:
                self._timed_out = True
                call.cancel()

    def _open(self) -> queue.SimpleQueue:
        requests: queue.SimpleQueue = queue.SimpleQueue()

        def feed():
            while (item := requests.get()) is not None:
                yield item

        self._requests = requests
        self._call = self.client.stub.EvaluateStream(feed(), metadata=self.client.metadata)
        return requests

    def _reset(self) -> None:
        if self._requests is not None:
            self._requests.put(None)
        if self._call is not None:
            self._call.cancel()
        self._requests, self._call = None, None

    def _round_trip(self, request: pb.EvaluateRequest, timeout: float) -> pb.EvaluateResponse:
        requests = self._requests if self._call is not None else None
        if requests is None:
            requests = self._open()
        self._timed_out = False
        self._deadline = time.monotonic() + timeout
        requests.put(request)
        try:
            response = next(self._call)
        except StopIteration:
            self._reset()
            raise ServerUnavailable(
                "the server closed the stream", grpc.StatusCode.UNAVAILABLE
            ) from None
        except grpc.RpcError:
            self._reset()
            if self._timed_out:
                raise DeadlineExceeded(
                    deadline_message(request, timeout), grpc.StatusCode.DEADLINE_EXCEEDED
                ) from None
            raise
        finally:
            self._deadline = None
        error = stream_error(response)
        if error is not None:
            raise error
        return response

    def evaluate(
        self,
        systems,
        properties: Iterable[str] = DEFAULT_PROPERTIES,
        *,
        timeout: float | None = None,
    ):
        """Like Client.evaluate, over the open stream."""
        if self._closed:
            raise RuntimeError("the stream session is closed")
        call = self.client.prepare(systems, properties, timeout)
        try:
            return call.results(self._send(call))
        except InvalidInput as err:
            again = self.client.old_server(call, err)
            if again is None:
                raise
            return again.results(self._send(again))

    def _send(self, call: Call) -> pb.EvaluateResponse:
        return self.client.with_retries(lambda: self._round_trip(call.request, call.deadline))

    def close(self) -> None:
        """End the stream."""
        self._closed = True
        self._reset()

    def __enter__(self) -> StreamSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
