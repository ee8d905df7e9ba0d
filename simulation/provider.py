"""The ForceProvider seam: drivers evaluate batches of systems through it, never gRPC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ForceProvider(Protocol):
    """Evaluates a batch of systems in one call.

    `systems` are ase.Atoms; `properties` names what to compute ("energy", "forces",
    "stress", "energies", "uncertainty"). Returns one dict per system with the contract's
    result keys (energy in eV, forces in eV/Å, stress in eV/Å³ Voigt order, ...).
    Implementations: `RemoteProvider` (a server) and
    `mlipserve.server.serving.local.LocalProvider` (a model in this process).
    """

    def evaluate(
        self, systems: Sequence[Any], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Evaluate every system; results in the order given."""
        ...


class RemoteProvider:
    """ForceProvider backed by a server, over one open stream."""

    def __init__(self, target: str = "127.0.0.1:50051", model: str = "", **client_kwargs) -> None:
        from mlipserve.client import Client

        self.client = Client(target, model, **client_kwargs)
        self._session = self.client.stream()

    def evaluate(
        self, systems: Sequence[Any], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Evaluate every system in one request."""
        return self._session.evaluate(list(systems), properties)

    def close(self) -> None:
        """Close the stream and the channel."""
        self._session.close()
        self.client.close()
