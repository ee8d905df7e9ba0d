"""What the sync and async clients share: requests, retries, failover, decoding.

`Client` and `AsyncClient` differ only in how they wait (blocking or awaiting); every
decision (which target, whether to retry and how long to sleep, which error to raise, how a
request is built and a response decoded) is made here, once.
"""

from __future__ import annotations

import ipaddress
import os
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import grpc

from mlipserve.client.errors import (
    DeadlineExceeded,
    InvalidInput,
    MLIPServeError,
    ServerUnavailable,
    error_for,
    from_rpc_error,
)
from mlipserve.packed import decode_any_response, pack_systems, unpack_systems
from mlipserve.v1 import potential_pb2 as pb
from mlipserve.wire import (
    SystemArrays,
    decode_error,
    decode_model_info,
    property_enums,
)

DEFAULT_PROPERTIES = ("energy", "forces")

# Reconnect quickly after a server restart; raw bytes can be large.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_send_message_length", 512 * 1024 * 1024),
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30000),
]


def as_system_list(systems) -> tuple[list, bool]:
    """Return (list of systems, whether a single system was given)."""
    if isinstance(systems, (list, tuple)):
        return list(systems), False
    return [systems], True


def build_request(
    systems: Sequence,
    properties: Iterable[str],
    model: str,
    version: str = "",
    priority: int = 0,
    harvest: bool = True,
    packed: bool = False,
) -> pb.EvaluateRequest:
    """An EvaluateRequest for ASE Atoms (or SystemArrays) and property names (`harvest`
    False marks it `no_harvest`: the server keeps none of its structures; `packed` sends
    all systems as one set of arrays, where their conditions allow it)."""
    arrays = [s if isinstance(s, SystemArrays) else SystemArrays.from_atoms(s) for s in systems]
    request = pb.EvaluateRequest(
        model=model,
        version=version,
        properties=property_enums(properties),
        priority=priority,
        no_harvest=not harvest,
        request_id=os.urandom(8).hex(),
    )
    if not (packed and arrays and pack_systems(arrays, request.packed) is not None):
        request.ClearField("packed")
        request.systems.extend(a.to_proto() for a in arrays)
    return request


OLD_SERVER = "systems: the request holds no system"  # what a server without `packed` says


def unpacked(request: pb.EvaluateRequest) -> pb.EvaluateRequest:
    """The same request with its packed systems as per-system messages (for an old server)."""
    out = pb.EvaluateRequest()
    out.CopyFrom(request)
    out.ClearField("packed")
    systems = unpack_systems(request.packed, max_systems=1 << 62)
    out.systems.extend(s.to_proto() for s in systems)
    return out


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter on UNAVAILABLE, bounded in attempts and total time."""

    max_attempts: int = 40
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    total_timeout_s: float = 30.0

    def delays(self) -> Iterator[float]:
        """Successive sleeps before each retry (the first attempt is not delayed)."""
        delay = self.initial_backoff_s
        for _ in range(self.max_attempts - 1):
            yield delay * (0.5 + random.random() / 2)
            delay = min(delay * 2, self.max_backoff_s)


RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


def channel_credentials(ca_file: str | None) -> grpc.ChannelCredentials | None:
    """TLS credentials from a CA bundle, or None for a plaintext channel."""
    if ca_file is None:
        return None
    with open(ca_file, "rb") as fh:
        return grpc.ssl_channel_credentials(root_certificates=fh.read())


class Attempts:
    """The retry state of one call: which errors end it, and how long to wait before the next."""

    def __init__(self, core: ClientCore, call: Call | None = None) -> None:
        self.core = core
        self.call = call
        self.start = time.monotonic()
        self.delays = core.retry.delays()
        self.count = 0

    def failed(self, err: grpc.RpcError) -> float:
        """The sleep before the next attempt; raises the error to give the caller instead."""
        self.count += 1
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and self.call is not None:
            raise DeadlineExceeded(
                deadline_message(self.call.request, self.call.deadline),
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ) from None
        if err.code() not in RETRYABLE:
            raise from_rpc_error(err) from None
        delay = next(self.delays, None)
        elapsed = time.monotonic() - self.start
        if delay is None or elapsed + delay > self.core.retry.total_timeout_s:
            raise ServerUnavailable(
                f"no server answered at {', '.join(self.core.targets)} after {self.count} "
                f"attempts over {elapsed:.1f} s (last error: {err.details()})",
                grpc.StatusCode.UNAVAILABLE,
            ) from None
        return delay


def deadline_message(request: pb.EvaluateRequest, timeout: float) -> str:
    """What a client that gave up should be told: the size of the work and what happened to it."""
    if request.HasField("packed"):
        atoms = int(request.packed.positions.shape[0])
        n = int(request.packed.counts.shape[0])
    else:
        atoms = sum(int(s.numbers.shape[0]) if len(s.numbers.shape) else 0 for s in request.systems)
        n = len(request.systems)
    model = repr(request.model) if request.model else "the server's default model"
    return (
        f"deadline of {timeout:g} s exceeded for {n} system{'s' * (n != 1)} of {atoms} atoms "
        f"in all on {model}; the server drops work that has not started (a batch already "
        "computing runs to its end). Give a longer timeout (Client(timeout=...) or "
        "evaluate(..., timeout=...)) for work this large."
    )


@dataclass(frozen=True)
class Call:
    """One evaluate call prepared: the request, its deadline, whether one system was given."""

    request: pb.EvaluateRequest
    deadline: float
    single: bool

    def results(self, response: pb.EvaluateResponse) -> Any:
        """The decoded results: one dict for a single system, else a list of dicts."""
        results = decode_any_response(response)
        return results[0] if self.single else results


def stream_error(response: pb.EvaluateResponse) -> MLIPServeError | None:
    """The error a stream response carries in place of results, or None."""
    error = decode_error(response)
    return None if error is None else error_for(*error)


def model_list(response: pb.ListModelsResponse) -> list[dict]:
    """The models of a ListModels response as plain dicts."""
    return [decode_model_info(m) for m in response.models]


def balanced_target(targets: Sequence[str]) -> str:
    """One gRPC target naming every replica: `ipv4:a:p,b:q` (IP literals) or a dns:/// name."""
    if len(targets) == 1:
        return targets[0]
    hosts = []
    for target in targets:
        host, sep, port = target.rpartition(":")
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            address = None
        if not sep or address is None or not port.isdigit():
            raise ValueError(
                f"balancing over a list needs IP:port targets, got {target!r}; for host "
                "names give one 'dns:///NAME:PORT' that resolves to every replica"
            )
        hosts.append(address)
    families = {a.version for a in hosts}
    if len(families) != 1:
        raise ValueError("balancing over a list needs all IPv4 or all IPv6 addresses")
    return f"ipv{families.pop()}:" + ",".join(targets)


class ClientCore:
    """Targets, model, deadline, retries, credentials: all but the blocking or awaiting."""

    def __init__(
        self,
        target: str | Sequence[str] = "127.0.0.1:50051",
        model: str = "",
        *,
        version: str = "",
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        ca_file: str | None = None,
        api_key: str | None = None,
        priority: int = 0,
        balance: bool | None = None,
        harvest: bool = True,
        packed: bool = True,
    ) -> None:
        self.packed = packed  # all systems as one set of arrays (off by itself on an old server)
        self.targets = [target] if isinstance(target, str) else list(target)
        if not self.targets:
            raise ValueError("at least one target is needed")
        # balance: one channel over every replica with gRPC's round_robin (default for a
        # dns:/// name that resolves to several); otherwise the targets are tried in turn
        self.balanced = (
            any(t.startswith("dns:") for t in self.targets) if balance is None else balance
        )
        self._channel_target = balanced_target(self.targets) if self.balanced else ""
        self.model = model
        self.version = version
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.priority = priority
        self.harvest = harvest  # False: every request says no_harvest
        self.metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._credentials = channel_credentials(ca_file)
        self._index = 0

    def request(self, systems: Sequence, properties: Iterable[str]) -> pb.EvaluateRequest:
        """An EvaluateRequest for this client's model, version, priority and harvest choice."""
        return build_request(
            systems, properties, self.model, self.version, self.priority, self.harvest, self.packed
        )

    def old_server(self, call: Call, err: MLIPServeError) -> Call | None:
        """The call again, per system, when `err` says the server predates packed requests (it
        saw no system); this client then sends per-system requests. None for any other error."""
        if not (
            call.request.HasField("packed")
            and isinstance(err, InvalidInput)
            and err.details.startswith(OLD_SERVER)
        ):
            return None
        self.packed = False
        return replace(call, request=unpacked(call.request))

    def prepare(self, systems: Any, properties: Iterable[str], timeout: float | None) -> Call:
        """The request for one system (ase.Atoms) or a list, and the call's deadline."""
        items, single = as_system_list(systems)
        deadline = self.timeout if timeout is None else timeout
        return Call(self.request(items, properties), deadline, single)

    def attempts(self, call: Call | None = None) -> Attempts:
        """Fresh retry state for one call (`call` explains a deadline it exceeds)."""
        return Attempts(self, call)

    def new_channel(self, api: ModuleType) -> Any:
        """A channel to the current target (or all, balanced); `api` is `grpc` or `grpc.aio`."""
        target = self._channel_target or self.targets[self._index]
        options = CHANNEL_OPTIONS + [("grpc.lb_policy_name", "round_robin")] * self.balanced
        if self._credentials is None:
            return api.insecure_channel(target, options=options)
        return api.secure_channel(target, self._credentials, options=options)

    def can_fail_over(self) -> bool:
        """Whether there is another target to move to (a balanced channel moves by itself)."""
        return len(self.targets) > 1 and not self.balanced

    def next_target(self) -> None:
        """Make the next target the current one."""
        self._index = (self._index + 1) % len(self.targets)
