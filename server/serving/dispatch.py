"""Run a list of requests as one model call: concatenate, compute, split back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlipserve.server.models.base import (
    ModelInfo,
    Potential,
    prepare_input,
    run_prepared,
    trust_levels,
)
from mlipserve.server.models.batch import SystemBatch
from mlipserve.server.serving.checks import (
    InvalidInput,
    Limits,
    check_request,
    check_systems,
    closest_distance,
)
from mlipserve.server.serving.field_checks import check_field
from mlipserve.server.serving.longrange_checks import check_long_range
from mlipserve.server.serving.metrics import OOM_SPLITS
from mlipserve.wire import SystemArrays

ATOM_KEYS = ("forces", "energies", "forces_std", "born_charges", "charges")
SYSTEM_KEYS = ("energy", "stress", "energy_std", "max_force_std")


@dataclass(frozen=True)
class EvalRequest:
    """Validated systems of one request and the properties it asked for."""

    systems: list[SystemArrays]
    properties: frozenset[str]
    n_atoms: int
    warnings: tuple[tuple[str, ...], ...] = ()  # per system
    harvest: bool = False  # compute the ensemble spread for the harvester (serving/harvest.py)


def contact_warnings(
    systems: list[SystemArrays], info: ModelInfo, fraction: float
) -> tuple[tuple[str, ...], ...]:
    """Flag systems with atoms closer than `fraction` of the model's shortest training distance."""
    if info.min_distance <= 0 or fraction <= 0:
        return ()
    limit = fraction * info.min_distance
    out = []
    for system in systems:
        d = closest_distance(system, limit)
        out.append(
            ()
            if d is None
            else (
                f"atoms {d:.3f} Å apart, closer than {fraction:g} × the model's shortest training "
                f"distance ({info.min_distance:.3f} Å): results may be unreliable",
            )
        )
    return tuple(out)


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
    contact = limits.close_contact_fraction * info.min_distance
    systems = check_systems(
        systems,
        limits,
        info.elements,
        info.conditions,
        info.condition_shapes,
        need_volume="stress" in properties,
        cutoffs=(info.cutoff, contact),
    )
    if "long_range" in info.extra:
        systems = check_long_range(systems, info.extra["long_range"])
    warnings = contact_warnings(systems, info, limits.close_contact_fraction)
    if "field" in info.extra:
        systems, flags = check_field(systems, info.extra["field"])
        warnings = tuple(
            a + b for a, b in zip(warnings or ((),) * len(systems), flags, strict=True)
        )
    return EvalRequest(systems, properties, total, warnings)


def result_keys(properties: frozenset[str]) -> set[str]:
    """Result keys a request receives for its properties."""
    keys = {"energy"} | (
        properties
        & {"forces", "stress", "energies", "dipole", "born_charges", "charges", "polarizability"}
    )
    if "uncertainty" in properties:
        keys |= {"energy_std"}
        if "forces" in properties:
            keys |= {"forces_std", "max_force_std"}
    return keys


class OutOfMemory(Exception):
    """Raised by a model when a batch does not fit in device memory."""


def is_out_of_memory(err: BaseException) -> bool:
    """True for torch's CUDA/MPS out-of-memory errors (by type name or message)."""
    return (
        isinstance(err, OutOfMemory)
        or type(err).__name__ == "OutOfMemoryError"
        or "out of memory" in str(err).lower()
    )


def _finite(out: dict[str, np.ndarray], offsets: np.ndarray) -> np.ndarray:
    """(S,) True where every result of the system is finite."""
    ok = np.ones(len(offsets) - 1, dtype=bool)
    for key, value in out.items():
        value = np.asarray(value, dtype=np.float64)
        if key in ATOM_KEYS:
            bad = ~np.isfinite(value.reshape(len(value), -1)).all(axis=1)
            ok &= np.add.reduceat(bad, offsets[:-1]) == 0 if len(value) else ok
        else:
            ok &= np.isfinite(value.reshape(len(value), -1)).all(axis=1)
    return ok


def non_finite_message(system: SystemArrays, info: ModelInfo) -> str:
    """Why a system's result is NaN or inf, as far as the geometry tells."""
    message = "the model gave NaN or inf for this system"
    if info.cutoff > 0:
        d = closest_distance(system, info.cutoff)
        if d is not None:
            message += f"; its closest atoms are {d:.4g} Å apart"
            if info.min_distance > 0:
                message += f" (the model was trained down to {info.min_distance:.3g} Å)"
    return message + ": the result is refused, not sent"


def _split_back(
    out: dict[str, np.ndarray], systems: list[SystemArrays], offsets: np.ndarray
) -> list[dict]:
    return [
        {key: value[lo:hi] if key in ATOM_KEYS else value[s] for key, value in out.items()}
        for s, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:]))
    ]


def _prepare_or_none(model: Potential, systems: list[SystemArrays]) -> Any:
    """The model's prepared input for `systems`; None when it ran out of memory (several
    systems: they are halved when run)."""
    try:
        return prepare_input(model, SystemBatch.concat(systems))
    except Exception as err:
        if not is_out_of_memory(err) or len(systems) == 1:
            raise
        _release_device_memory()
        return None


def compute_splitting(
    model: Potential, systems: list[SystemArrays], properties: frozenset[str]
) -> list[dict]:
    """Per-system results of one model call; on out-of-memory, or when some result is NaN or
    inf, halve the systems and retry. A single system with a non-finite result gets
    `{"error": message}` instead, so it never fails or taints its batch-mates."""
    return compute_prepared(model, systems, _prepare_or_none(model, systems), properties)


def compute_prepared(
    model: Potential, systems: list[SystemArrays], prepared: Any, properties: frozenset[str]
) -> list[dict]:
    """`compute_splitting` on an input already prepared (None: preparing it ran out of
    memory, or it was taken); halves are prepared afresh."""
    if prepared is None:  # preparing it ran out of memory (or it was taken): afresh
        if len(systems) == 1:
            return compute_splitting(model, systems, properties)
        OOM_SPLITS.inc()
        return _halves(model, systems, properties)
    try:
        out = run_prepared(model, prepared, properties)
    except Exception as err:
        if not is_out_of_memory(err) or len(systems) == 1:
            raise
        del prepared  # its device memory goes before the halves are prepared
        OOM_SPLITS.inc()
        _release_device_memory()
        return _halves(model, systems, properties)
    offsets = np.concatenate([[0], np.cumsum([len(s.numbers) for s in systems])])
    if not _finite(out, offsets).all():
        if len(systems) > 1:
            return _halves(model, systems, properties)
        return [{"error": non_finite_message(systems[0], model.info)}]
    return _split_back(out, systems, offsets)


def _halves(
    model: Potential, systems: list[SystemArrays], properties: frozenset[str]
) -> list[dict]:
    half = len(systems) // 2
    return compute_splitting(model, systems[:half], properties) + compute_splitting(
        model, systems[half:], properties
    )


def _groups(systems: list[SystemArrays]) -> list[list[int]]:
    """Indices of the systems per set of condition names (one model call each)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, system in enumerate(systems):
        groups.setdefault(tuple(sorted(system.conditions)), []).append(i)
    return list(groups.values())


def compute_grouped(
    model: Potential, systems: list[SystemArrays], properties: frozenset[str]
) -> list[dict]:
    """Per-system results, one model call per set of condition names (systems whose
    conditions do not fit together run apart, never failing each other)."""
    return run_groups(model, prepare_groups(model, systems), len(systems), properties)


@dataclass
class PreparedGroup:
    """Systems that go in one model call, their batch indices and the model's input."""

    indices: list[int]
    systems: list[SystemArrays]
    prepared: Any  # None: preparing it ran out of memory (or it was taken)

    def take(self) -> Any:
        """The prepared input, no longer held here (its device memory goes with its run)."""
        prepared, self.prepared = self.prepared, None
        return prepared


def prepare_groups(model: Potential, systems: list[SystemArrays]) -> list[PreparedGroup]:
    """The host-side half of `compute_grouped`: each group concatenated and prepared."""
    out = []
    for indices in _groups(systems):
        group = [systems[i] for i in indices]
        out.append(PreparedGroup(indices, group, _prepare_or_none(model, group)))
    return out


def run_groups(
    model: Potential, groups: list[PreparedGroup], n_systems: int, properties: frozenset[str]
) -> list[dict]:
    """The rest of `compute_grouped`: each prepared group run, results in system order."""
    out: list[dict] = [{}] * n_systems
    for group in groups:
        results = compute_prepared(model, group.systems, group.take(), properties)
        for i, res in zip(group.indices, results):
            out[i] = res
    return out


def _release_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _flag(value: float, lo: float, hi: float, what: str, unit: str, name: str) -> list[str]:
    if value > hi:
        return [f"untrusted: {what} {value:.3g} {unit} > {name}trust_hi {hi:g}"]
    if value > lo:
        return [f"candidate: {what} {value:.3g} {unit} > {name}trust_lo {lo:g}"]
    return []


def trust_warnings(result: dict, info: ModelInfo, n_atoms: int) -> list[str]:
    """'candidate' between lo and hi, 'untrusted' above hi, on the max force std and on the
    energy std per atom (both need uncertainty); force flags first."""
    lo, hi, e_lo, e_hi = trust_levels(info)
    out = []
    if result.get("max_force_std") is not None:
        out += _flag(result["max_force_std"], lo, hi, "max force std", "eV/Å", "")
    if result.get("energy_std") is not None and n_atoms:
        per_atom = result["energy_std"] / n_atoms
        out += _flag(per_atom, e_lo, e_hi, "energy std", "eV/atom", "energy_")
    return out


@dataclass(frozen=True)
class PreparedRequests:
    """Requests of one batch with their model input prepared (`prepare_requests`)."""

    requests: list[EvalRequest]
    properties: frozenset[str]
    n_systems: int
    groups: list[PreparedGroup]


def batch_properties(requests: list[EvalRequest]) -> frozenset[str]:
    """What one model call for all `requests` computes."""
    properties = frozenset().union(*(r.properties for r in requests))
    if any(r.harvest for r in requests):  # the spread is cheap: members are computed anyway
        properties |= {"uncertainty"}
    return properties


def prepare_requests(model: Potential, requests: list[EvalRequest]) -> PreparedRequests:
    """The host-side half of `run_requests` (concatenation, neighbour lists, tensors): the
    batcher runs it for batch N+1 while batch N computes."""
    systems = [s for r in requests for s in r.systems]
    groups = prepare_groups(model, systems)
    return PreparedRequests(requests, batch_properties(requests), len(systems), groups)


def run_requests(model: Potential, requests: list[EvalRequest]) -> list[list[dict] | InvalidInput]:
    """Evaluate all requests' systems in one call; return each request's per-system dicts,
    or an InvalidInput naming its first system whose result was not finite."""
    return run_prepared_requests(model, prepare_requests(model, requests))


def run_prepared_requests(
    model: Potential, prepared: PreparedRequests
) -> list[list[dict] | InvalidInput]:
    """The rest of `run_requests` on `prepare_requests`' result: the same results."""
    requests = prepared.requests
    per_system = run_groups(model, prepared.groups, prepared.n_systems, prepared.properties)
    per_request: list[list[dict] | InvalidInput] = []
    s = 0
    for request in requests:
        keys = result_keys(request.properties)
        chunk = per_system[s : s + len(request.systems)]
        s += len(request.systems)
        failed = next((i for i, res in enumerate(chunk) if "error" in res), None)
        if failed is not None:
            per_request.append(InvalidInput(f"systems[{failed}]: {chunk[failed]['error']}"))
            continue
        results = [{k: v for k, v in res.items() if k in keys} for res in chunk]
        if request.harvest:  # popped by the service before the response is encoded
            for res, full in zip(results, chunk):
                res["harvest_sigma"] = full.get("max_force_std")
        for i, res in enumerate(results):
            given = request.warnings[i] if i < len(request.warnings) else ()
            n_atoms = len(request.systems[i].numbers)
            warnings = list(given) + trust_warnings(res, model.info, n_atoms)
            if warnings:
                res["warnings"] = warnings
        per_request.append(results)
    return per_request
