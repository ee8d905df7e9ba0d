"""What every served model declares and the one method the server calls."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mlipserve.server.models.batch import SystemBatch


def description_hash(entry: dict) -> str:
    """A stable hash of a model's description (for models without a weights file)."""
    keys = {k: v for k, v in entry.items() if k != "is_default"}
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()


ALL_PROPERTIES = (
    "energy", "forces", "stress", "energies", "uncertainty", "dipole", "born_charges", "charges",
    "polarizability",
)  # fmt: skip
# The conditions with fixed names and units (PolarMACE's convention): shape per system
STANDARD_CONDITIONS = {"external_field": (3,), "fermi_level": (), "charge": (), "spin": ()}
TRUST_LO, TRUST_HI = 0.05, 0.15  # eV/Å on the max per-atom force std (DP-GEN's defaults)
# eV/atom on the energy std: a symmetric cell has zero forces (and force std) however wrong
# its energy; these catch it (a default-model held-out energy error is a few meV/atom)
ENERGY_TRUST_LO, ENERGY_TRUST_HI = 0.01, 0.05
TRUST_KEYS = ("trust_lo", "trust_hi", "energy_trust_lo", "energy_trust_hi")


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of a served model (what ListModels reports and validation checks)."""

    name: str
    version: str
    kind: str
    cutoff: float
    elements: frozenset[int] = frozenset()  # empty: any element
    ensemble_size: int = 0  # 0: not an ensemble
    conditions: tuple[str, ...] = ()  # needed per-system conditions
    condition_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False)
    # ^ the per-system shape of every condition it accepts (needed ones default to scalars);
    # any other condition a request sends is dropped before batching
    properties: tuple[str, ...] = ("energy", "forces", "stress", "energies")
    dtype: str = "float64"
    device: str = "cpu"
    min_distance: float = 0.0  # shortest interatomic distance in the training data (0: unknown)
    extra: dict = field(default_factory=dict, compare=False)
    sha256: str = ""  # content hash of the weights; empty: `describe` hashes the description

    def describe(self, is_default: bool) -> dict:
        """What ListModels and REST report of this version (the wire codec's ModelInfo keys)."""
        entry = {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "elements": sorted(self.elements),
            "cutoff": self.cutoff,
            "ensemble_size": self.ensemble_size,
            "conditions": list(self.conditions),
            "properties": list(self.properties),
            "dtype": self.dtype,
            "device": self.device,
            "is_default": is_default,
            "accepted_conditions": sorted(set(self.conditions) | set(self.condition_shapes)),
        }
        entry["sha256"] = self.sha256 or description_hash(entry)
        if self.ensemble_size:  # the levels its `candidate` / `untrusted` warnings use
            entry["trust"] = dict(zip(TRUST_KEYS, trust_levels(self)))
        return entry


def trust_levels(info: ModelInfo) -> tuple[float, float, float, float]:
    """(trust_lo, trust_hi) on forces (eV/Å) and (energy_trust_lo, energy_trust_hi) on the
    energy std per atom (eV/atom) of a model: from its metadata, else the defaults."""
    defaults = (TRUST_LO, TRUST_HI, ENERGY_TRUST_LO, ENERGY_TRUST_HI)
    lo, hi, energy_lo, energy_hi = (
        float(info.extra.get(k, d)) for k, d in zip(TRUST_KEYS, defaults)
    )
    return lo, hi, energy_lo, energy_hi


class Potential(Protocol):
    """A loaded model: computes properties of a batch; knows nothing of requests."""

    info: ModelInfo

    def compute(self, batch: SystemBatch, properties: frozenset[str]) -> dict[str, np.ndarray]:
        """Return concatenated results: `energy (S,)`, `forces (A,3)`, `stress (S,6)`,
        `energies (A,)`, and for ensembles `energy_std (S,)`, `forces_std (A,)`,
        `max_force_std (S,)`; only the keys that `properties` asks for.

        A model may also split this call in two, `prepare(batch) -> prepared` (host side:
        neighbour list, tensors; run on another thread while the previous batch computes)
        and `run(prepared, properties)`, with `run(prepare(batch), p) == compute(batch, p)`
        bit for bit; `prepare_input` and `run_prepared` below fall back to `compute`."""
        ...


def splits_call(model: Potential) -> bool:
    """True when the model offers both halves of its call, `prepare` and `run`."""
    return callable(getattr(model, "prepare", None)) and callable(getattr(model, "run", None))


def prepare_input(model: Potential, batch: SystemBatch) -> Any:
    """The host-side half of a model call (neighbour list, tensors): `model.prepare(batch)`
    for models that split their call, else the batch itself."""
    return model.prepare(batch) if splits_call(model) else batch  # type: ignore[attr-defined]


def run_prepared(
    model: Potential, prepared: Any, properties: frozenset[str]
) -> dict[str, np.ndarray]:
    """The rest of the call on `prepare_input`'s result: `model.run(prepared, properties)`,
    else `model.compute`; the same numbers as `model.compute(batch, properties)`."""
    if splits_call(model):
        return model.run(prepared, properties)  # type: ignore[attr-defined]
    return model.compute(prepared, properties)
