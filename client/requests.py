"""Building EvaluateRequests from ASE Atoms, and the retry policy both clients share."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import grpc
from mlipserve.v1 import potential_pb2 as pb
from mlipserve.wire import SystemArrays, property_enums

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
    systems: Sequence, properties: Iterable[str], model: str, version: str = "", priority: int = 0
) -> pb.EvaluateRequest:
    """An EvaluateRequest for ASE Atoms (or SystemArrays) and property names."""
    msgs = []
    for s in systems:
        arrays = s if isinstance(s, SystemArrays) else SystemArrays.from_atoms(s)
        msgs.append(arrays.to_proto())
    return pb.EvaluateRequest(
        model=model, version=version, systems=msgs, properties=property_enums(properties),
        priority=priority, request_id=uuid.uuid4().hex[:16],
    )


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


class ClientSettings:
    """What Client and AsyncClient share: targets, model, deadline, retries, credentials."""

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
    ) -> None:
        self.targets = [target] if isinstance(target, str) else list(target)
        if not self.targets:
            raise ValueError("at least one target is needed")
        self.model = model
        self.version = version
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.priority = priority
        self.metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._credentials = channel_credentials(ca_file)
        self._index = 0

    def request(self, systems: Sequence, properties: Iterable[str]) -> pb.EvaluateRequest:
        """An EvaluateRequest for this client's model, version and priority."""
        return build_request(systems, properties, self.model, self.version, self.priority)

    def give_up(self, err: grpc.RpcError, attempts: int, elapsed: float, delay: float | None):
        """The error to raise when a retry would not fit the policy, else None."""
        if delay is not None and elapsed + delay <= self.retry.total_timeout_s:
            return None
        from mlipserve.client.errors import ServerUnavailable

        return ServerUnavailable(
            f"no server answered at {', '.join(self.targets)} after {attempts} attempts over "
            f"{elapsed:.1f} s (last error: {err.details()})", grpc.StatusCode.UNAVAILABLE)
