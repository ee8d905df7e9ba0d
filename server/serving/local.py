"""LocalProvider: the ForceProvider protocol over a model in this process (no gRPC)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlipserve.server.models.base import Potential
from mlipserve.server.models.builtin import load_builtin
from mlipserve.server.serving.checks import Limits
from mlipserve.server.serving.dispatch import make_request, run_requests
from mlipserve.wire import PROPERTY_BY_ENUM, SystemArrays, property_enums


class LocalProvider:
    """Evaluate systems with a model loaded in-process; same checks and results as remote."""

    def __init__(self, model: Potential | str, limits: Limits | None = None) -> None:
        self.model = load_builtin(model) if isinstance(model, str) else model
        self.limits = limits or Limits()

    def evaluate(
        self, systems: Sequence[Any], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Evaluate every system in one model call."""
        names = frozenset(PROPERTY_BY_ENUM[p] for p in property_enums(properties))
        arrays = [s if isinstance(s, SystemArrays) else SystemArrays.from_atoms(s) for s in systems]
        info = self.model.info
        request = make_request(arrays, names, info, self.limits)
        (results,) = run_requests(self.model, [request])
        if isinstance(results, Exception):
            raise results
        for res in results:
            res["model"], res["model_version"] = info.name, info.version
        return results

    def provenance(self) -> dict[str, Any]:
        """The in-process model's name, version and content hash."""
        from mlipserve.simulation.provenance import from_model_info

        return from_model_info(self.model.info.describe(True), "in-process")

    def close(self) -> None:
        """Nothing to release; present for symmetry with RemoteProvider."""
