"""Every job kind's parameters, checked the same way at submission (REST) and in the worker.

`check_job(kind, params, caller, policy, shares)` returns the parameters a job runs with or
raises `ParamError` whose message names the parameter (``status``: 422 malformed, 403 not
allowed for this caller). Checked: the job kind against the caller's role; labellers and
their settings against the operator's `LabellerPolicy`; dataset names against
`mlipserve.server.queue.datasets` (no paths, URLs or other tenants' datasets unless shared);
model names and versions against the store's name rule; sizes (structures per job, atoms per
structure, epochs, batch sizes, minutes) against fixed bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from mlipserve.server.labellers.policy import LabellerPolicy, PolicyError
from mlipserve.server.queue.datasets import DatasetError, ShareBook, authorize
from mlipserve.server.queue.payload import atoms_from_dict

ADMIN_KINDS = frozenset({"retrain", "evaluate", "promote", "harvest_round"})
MODEL_NAME = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
MAX_INFO_KEYS, MAX_INFO_CHARS = 32, 256


class ParamError(ValueError):
    """Job parameters that are malformed (`status` 422) or not allowed to the caller (403)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Caller:
    """Who a job runs for: its tenant and the role of the key that submitted it."""

    tenant: str
    role: str = "user"

    @property
    def is_admin(self) -> bool:
        """Admin keys may run model-changing jobs and use any tenant's dataset."""
        return self.role == "admin"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelParams(_Params):
    """structures → labels from an enabled labeller → a dataset of the caller's (or shared)."""

    structures: list[Any] = Field(
        default_factory=list,
        description="{numbers, positions, cell, pbc, info} objects (--structures fills it)",
    )
    dataset: str = Field(description="dataset the labels are added to (yours, or owner:name)")
    labeller: str = Field("emt", description="an operator-enabled labeller (emt, xtb, ...)")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="labeller settings the operator allows"
    )


class RetrainParams(_Params):
    """Warm-start `model` on a snapshot of `dataset`; every size bounded."""

    model: MODEL_NAME = Field(description="stored model to retrain (a new version is made)")
    dataset: str = Field(description="training data")
    base_version: MODEL_NAME | None = Field(None, description="version to start from (default)")
    epochs: int = Field(300, ge=1, le=100_000, description="1 to 100,000")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    max_minutes: float | None = Field(None, gt=0, le=7 * 24 * 60, description="wall-time cap")
    lr: float = Field(3e-3, gt=0, le=1.0, description="learning rate")
    batch_size: int = Field(8, ge=1, le=4096, description="structures per step")
    energy_weight: float = Field(1.0, ge=0, le=1e6)
    forces_weight: float = Field(1.0, ge=0, le=1e6)
    stress_weight: float = Field(1.0, ge=0, le=1e6)
    patience: int = Field(40, ge=0, le=100_000, description="epochs without improvement")


class EvaluateParams(_Params):
    """Errors of `candidate` and `current` on the held-out dataset `holdout`."""

    model: MODEL_NAME = Field(description="stored model name")
    candidate: MODEL_NAME = Field(description="version to judge")
    holdout: str = Field(description="held-out dataset")
    current: MODEL_NAME | None = Field(None, description="version to compare with (the default)")
    holdout_version: int | Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="dataset snapshot (latest)"
    )


class PromoteParams(EvaluateParams):
    """`evaluate`'s parameters plus the relative force-MAE tolerance."""

    tolerance: float = Field(
        0.05, ge=0, le=10.0, description="relative force-MAE loss allowed to promote"
    )


class HarvestRoundParams(_Params):
    """One active-learning round of a harvesting model (its settings: the model's metadata)."""

    model: MODEL_NAME = Field(description="stored model whose harvest pool the round uses")


SCHEMAS: dict[str, type[_Params]] = {
    "label": LabelParams,
    "retrain": RetrainParams,
    "evaluate": EvaluateParams,
    "promote": PromoteParams,
    "harvest_round": HarvestRoundParams,
}


def _parse(kind: str, params: Any) -> _Params:
    if not isinstance(params, dict):
        raise ParamError("params must be an object")
    try:
        return SCHEMAS[kind].model_validate(params)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in ("params", *first["loc"]))
        raise ParamError(f"{where}: {first['msg']}") from None


def check_structures(structures: list[dict], max_structures: int, max_atoms: int) -> None:
    """Shapes, finiteness, element numbers and sizes of a label job's structures."""
    if len(structures) > max_structures:
        raise ParamError(
            f"params.structures: {len(structures)} structures, this server takes "
            f"at most {max_structures} per label job"
        )
    for i, s in enumerate(structures):
        where = f"params.structures[{i}]"
        if not isinstance(s, dict):
            raise ParamError(f"{where} must be an object")
        try:
            atoms = atoms_from_dict(s)
        except ValueError as err:
            raise ParamError(f"{where}: {err}") from None
        if not 1 <= len(atoms) <= max_atoms:
            raise ParamError(
                f"{where}: {len(atoms)} atoms; this labeller takes 1 to {max_atoms} per structure"
            )
        if not np.all((atoms.numbers >= 1) & (atoms.numbers <= 118)):
            raise ParamError(f"{where}: atomic numbers must be in 1..118")
        info = s.get("info") or {}
        if (
            not isinstance(info, dict)
            or len(info) > MAX_INFO_KEYS
            or any(
                len(str(k)) > MAX_INFO_CHARS or len(str(v)) > MAX_INFO_CHARS
                for k, v in info.items()
            )
        ):
            raise ParamError(
                f"{where}.info: at most {MAX_INFO_KEYS} entries of {MAX_INFO_CHARS} characters"
            )


def check_job(
    kind: str, params: Any, caller: Caller, policy: LabellerPolicy, shares: ShareBook
) -> dict:
    """The checked parameters of a `kind` job run for `caller` (ParamError otherwise)."""
    if kind not in SCHEMAS:
        raise ParamError(f"unknown job kind {kind!r}; known: {sorted(SCHEMAS)}")
    if kind in ADMIN_KINDS and not caller.is_admin:
        raise ParamError(f"{kind} jobs need an admin key", 403)
    parsed = _parse(kind, params)
    try:
        if isinstance(parsed, LabelParams):
            if not parsed.structures:
                raise ParamError("params.structures must be a non-empty list of structures")
            entry, _ = policy.resolve(parsed.labeller, parsed.settings)
            check_structures(parsed.structures, policy.max_structures, entry.max_atoms)
            authorize(parsed.dataset, caller.tenant, caller.role, shares)
        elif isinstance(parsed, RetrainParams):
            authorize(parsed.dataset, caller.tenant, caller.role, shares)
        elif isinstance(parsed, EvaluateParams):
            authorize(parsed.holdout, caller.tenant, caller.role, shares, "params.holdout")
    except PolicyError as err:
        raise ParamError(str(err), err.status) from None
    except DatasetError as err:
        raise ParamError(str(err), err.status) from None
    out = parsed.model_dump(exclude_unset=True)
    for key, value in out.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamError(f"params.{key} must be finite")
    return out
