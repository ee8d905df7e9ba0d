"""RemoteCalculator: an ASE Calculator whose results come from an mlipserve server."""

from __future__ import annotations

from collections.abc import Sequence

from ase.calculators.calculator import Calculator, all_changes

from mlipserve.client.client import Client, StreamSession


class RemoteCalculator(Calculator):
    """ASE calculator over a streaming session (or plain unary calls).

    Energy and forces are fetched together on every new state (ASE drivers ask for both);
    stress and per-atom energies are added when asked for. When the model is an ensemble,
    `results` also holds `energy_std`, `forces_std` (per atom) and `max_force_std`.

    Args:
        target: server address (or list of addresses), used when `client` is None.
        model: model name on the server; empty selects the default.
        client: an existing Client to share; the calculator then does not close it.
        stream: use one open stream (lowest latency) rather than unary calls.
        uncertainty: ask for the ensemble spread on every call.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(
        self,
        target: str | Sequence[str] = "127.0.0.1:50051",
        model: str = "",
        *,
        client: Client | None = None,
        stream: bool = True,
        uncertainty: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._owns_client = client is None
        self.client = client if client is not None else Client(target, model)
        self.uncertainty = uncertainty
        self._session: StreamSession | None = self.client.stream() if stream else None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        """Evaluate `atoms` remotely and fill `self.results`."""
        super().calculate(atoms, properties, system_changes)
        wanted = {"energy", "forces"}
        wanted.update(p for p in properties if p in ("stress", "energies"))
        if self.uncertainty:
            wanted.add("uncertainty")
        evaluator = self._session if self._session is not None else self.client
        result = evaluator.evaluate(self.atoms, sorted(wanted))
        self.results = {k: v for k, v in result.items() if k != "batch"}
        self.results["free_energy"] = self.results["energy"]

    def close(self) -> None:
        """Close the stream (and the client when this calculator created it)."""
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> RemoteCalculator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
