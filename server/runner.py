"""Run a list of requests as one model call: concatenate, compute, split back."""

from __future__ import annotations

from dataclasses import dataclass


from mlipserve.server.batch import InvalidInput, Limits, SystemBatch, check_request, check_system
from mlipserve.server.models.base import Evaluator, ModelInfo
from mlipserve.wire import SystemArrays

ATOM_KEYS = ("forces", "energies", "forces_std")
SYSTEM_KEYS = ("energy", "stress", "energy_std", "max_force_std")


@dataclass(frozen=True)
class EvalRequest:
    """Validated systems of one request and the properties it asked for."""

    systems: list[SystemArrays]
    properties: frozenset[str]
    n_atoms: int


def make_request(
    systems: list[SystemArrays], properties: frozenset[str], info: ModelInfo, limits: Limits
) -> EvalRequest:
    """Check a request against the model and the limits; raise InvalidInput naming the field."""
    if not properties:
        raise InvalidInput("properties: none requested (ask for energy, forces, stress, ...)")
    missing = properties - set(info.properties)
    if missing == {"uncertainty"}:
        raise InvalidInput(
            f"properties: model {info.name!r} is not an ensemble; it gives no uncertainty"
        )
    if missing:
        raise InvalidInput(f"properties: model {info.name!r} does not provide {sorted(missing)}")
    total = check_request(systems, limits)
    for i, system in enumerate(systems):
        check_system(system, f"systems[{i}]", limits, info.elements, info.conditions,
                     need_volume="stress" in properties)
    return EvalRequest(systems, properties, total)


def result_keys(properties: frozenset[str]) -> set[str]:
    """Result keys a request receives for its properties."""
    keys = {"energy"} | (properties & {"forces", "stress", "energies"})
    if "uncertainty" in properties:
        keys |= {"energy_std"}
        if "forces" in properties:
            keys |= {"forces_std", "max_force_std"}
    return keys


def run_requests(model: Evaluator, requests: list[EvalRequest]) -> list[list[dict]]:
    """Evaluate all requests' systems in one call; return each request's per-system dicts."""
    systems = [s for r in requests for s in r.systems]
    batch = SystemBatch.concat(systems)
    properties = frozenset().union(*(r.properties for r in requests))
    out = model.compute(batch, properties)
    offsets = batch.offsets
    per_request: list[list[dict]] = []
    s = 0
    for request in requests:
        keys = result_keys(request.properties)
        results = []
        for _ in request.systems:
            lo, hi = offsets[s], offsets[s + 1]
            res = {}
            for key in keys & out.keys():
                value = out[key]
                res[key] = value[lo:hi] if key in ATOM_KEYS else value[s]
            results.append(res)
            s += 1
        per_request.append(results)
    return per_request
