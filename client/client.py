"""The synchronous client: unary and streaming evaluation with retries and failover."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import grpc
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
from mlipserve.wire import PROPERTY_BY_ENUM, decode_response

T = TypeVar("T")


def model_info_dict(info: pb.ModelInfo) -> dict:
    """A ModelInfo message as a plain dict."""
    return {
        "name": info.name,
        "version": info.version,
        "kind": info.kind,
        "elements": list(info.elements),
        "cutoff": info.cutoff,
        "ensemble_size": info.ensemble_size,
        "conditions": list(info.conditions),
        "properties": [PROPERTY_BY_ENUM[p] for p in info.properties],
        "dtype": info.dtype,
        "device": info.device,
        "is_default": info.is_default,
    }


class Client(ClientSettings):
    """Evaluate systems on an mlipserve server.

    Args:
        target: "host:port" (or "unix:/path"), or a list of them to fail over between.
        model: model name; empty selects the server's default model.
        version: model version; empty selects the model's default version.
        timeout: deadline of one call in seconds.
        retry: backoff policy for UNAVAILABLE (server down or restarting).
        ca_file: PEM bundle to verify a TLS server; plaintext when None.
        api_key: sent as `authorization: Bearer <key>` metadata when given.
        priority: 0 interactive (served first within the tenant), 1 bulk screening.
    """

    def __init__(self, *args, **kwargs) -> None:
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
                target = self.targets[self._index]
                if self._credentials is None:
                    self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
                else:
                    self._channel = grpc.secure_channel(
                        target, self._credentials, options=CHANNEL_OPTIONS
                    )
                self._stub = pb_grpc.PotentialStub(self._channel)
            return self._stub

    def _failover(self) -> None:
        """Move to the next target (when there are several)."""
        if len(self.targets) == 1:
            return
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel, self._stub = None, None
            self._index = (self._index + 1) % len(self.targets)

    def with_retries(self, call: Callable[[], T]) -> T:
        """Run `call`, retrying on UNAVAILABLE with backoff; translate gRPC errors."""
        start = time.monotonic()
        delays = self.retry.delays()
        attempts = 0
        while True:
            attempts += 1
            try:
                return call()
            except grpc.RpcError as err:
                if err.code() not in RETRYABLE:
                    raise from_rpc_error(err) from None
                delay = next(delays, None)
                failure = self.give_up(err, attempts, time.monotonic() - start, delay)
                if failure is not None:
                    raise failure from None
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
        items, single = as_system_list(systems)
        request = self.request(items, properties)
        deadline = self.timeout if timeout is None else timeout
        response = self.with_retries(
            lambda: self.stub.Evaluate(request, timeout=deadline, metadata=self.metadata)
        )
        results = decode_response(response)
        return results[0] if single else results

    def list_models(self) -> list[dict]:
        """Models the server has loaded."""
        response = self.with_retries(
            lambda: self.stub.ListModels(
                pb.ListModelsRequest(), timeout=self.timeout, metadata=self.metadata
            )
        )
        return [model_info_dict(m) for m in response.models]

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
        self._call = None
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

    def _open(self) -> None:
        requests: queue.SimpleQueue = queue.SimpleQueue()

        def feed():
            while (item := requests.get()) is not None:
                yield item

        self._requests = requests
        self._call = self.client.stub.EvaluateStream(feed(), metadata=self.client.metadata)

    def _reset(self) -> None:
        if self._requests is not None:
            self._requests.put(None)
        if self._call is not None:
            self._call.cancel()
        self._requests, self._call = None, None

    def _round_trip(self, request: pb.EvaluateRequest, timeout: float) -> pb.EvaluateResponse:
        if self._call is None:
            self._open()
        self._timed_out = False
        self._deadline = time.monotonic() + timeout
        self._requests.put(request)
        try:
            response = next(self._call)
        except StopIteration:
            self._reset()
            raise ServerUnavailable("the server closed the stream", grpc.StatusCode.UNAVAILABLE)
        except grpc.RpcError:
            self._reset()
            if self._timed_out:
                raise DeadlineExceeded(
                    f"no response within {timeout:g} s", grpc.StatusCode.DEADLINE_EXCEEDED
                ) from None
            raise
        finally:
            self._deadline = None
        if response.HasField("error"):
            raise error_for(response.error.code, response.error.message)
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
        items, single = as_system_list(systems)
        client = self.client
        request = client.request(items, properties)
        deadline = client.timeout if timeout is None else timeout
        response = client.with_retries(lambda: self._round_trip(request, deadline))
        results = decode_response(response)
        return results[0] if single else results

    def close(self) -> None:
        """End the stream."""
        self._closed = True
        self._reset()

    def __enter__(self) -> StreamSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
