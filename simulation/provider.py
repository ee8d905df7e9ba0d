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

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        model: str = "",
        *,
        harvest: bool = True,
        **client_kwargs,
    ) -> None:
        """`harvest=False`: the server keeps none of these structures (`no_harvest`);
        `client_kwargs` go to `Client` (api_key, timeout, ...)."""
        from mlipserve.client import Client

        self.client = Client(target, model, harvest=harvest, **client_kwargs)
        self._session = self.client.stream()
        self._served: tuple[str, str] | None = None  # model and version of the last results

    def evaluate(
        self, systems: Sequence[Any], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Evaluate every system in one request."""
        results = self._session.evaluate(list(systems), properties)
        if results:
            self._served = (results[0]["model"], results[0]["model_version"])
        return results

    def provenance(self) -> dict[str, Any]:
        """The served model's name, version and content hash, and the server's address."""
        from mlipserve.simulation.provenance import from_model_info

        name, version = self._served or (self.client.model, self.client.version)
        server = ",".join(self.client.targets)
        if not name:  # the server's default model, not known before the first evaluation
            return {"model": "(server default)", "server": server}
        entries = [e for e in self.client.list_models() if e["name"] == name]
        match = [e for e in entries if (e["version"] == version if version else e["is_default"])]
        return from_model_info(match[0], server) if match else {"model": name, "server": server}

    def close(self) -> None:
        """Close the stream and the channel."""
        self._session.close()
        self.client.close()
