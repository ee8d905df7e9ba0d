"""The family table: which families exist, how each is built or loaded, which need trust.

Native families (`NATIVE_FAMILIES`) are rebuilt from their metadata's config and get weights
from a safetensors file; archive families (`ARCHIVE_FAMILIES`) are loaded from their own
files, with the suffix in `SUFFIX`. `archive_trust_reason` says why a file needs an admin's
trusted flag (pickles, native extensions) or None. The store (`server/store.py`) keeps
layout, versions, checksums and trust flags, and asks this table for the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mlipserve.server.models.base import ModelInfo, Potential
from mlipserve.server.models.field import FIELD_CONDITIONS, FieldConfig, FieldPaiNN
from mlipserve.server.models.longrange import LongRangeConfig, LongRangePaiNN
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.models.torch_potential import TorchPotential

NATIVE_FAMILIES: dict[str, tuple[type[torch.nn.Module], type]] = {
    "painn": (PaiNN, PaiNNConfig),
    "painn-coulomb": (LongRangePaiNN, LongRangeConfig),
    "painn-field": (FieldPaiNN, FieldConfig),
}
# Families stored as their own files: TorchScript archives, and mace-torch pickles (trusted only).
ARCHIVE_FAMILIES = ("torchscript", "metatomic", "mace")
SUFFIX = {"torchscript": ".pt", "metatomic": ".pt", "mace": ".model"}


class FamilyError(ValueError):
    """A family this server cannot build or load; the message says why."""


def build_module(metadata: dict) -> torch.nn.Module:
    """An untrained module of the metadata's native family and config."""
    family = metadata.get("family")
    if family not in NATIVE_FAMILIES:
        raise FamilyError(f"unknown model family {family!r}; known: {sorted(NATIVE_FAMILIES)}")
    cls, config_cls = NATIVE_FAMILIES[family]
    return cls(config_cls(**metadata["config"]))


def family_module(config: object) -> torch.nn.Module:
    """An untrained module of the native family whose config class `config` is."""
    for cls, config_cls in NATIVE_FAMILIES.values():
        if type(config) is config_cls:
            return cls(config)
    raise FamilyError(f"{type(config).__name__} is not a native family's config")


def native_family(module: torch.nn.Module) -> str:
    """The family name of a native module."""
    for name, (cls, _) in NATIVE_FAMILIES.items():
        if type(module) is cls:
            return name
    raise FamilyError(f"{type(module).__name__} is not a native family")


def serving_fields(module: torch.nn.Module) -> dict[str, Any]:
    """ModelInfo fields a native module adds: a long-range model's charge condition and the
    spec its request checks read."""
    spec = getattr(module, "serving_spec", None)
    if spec is None:
        return {}
    if isinstance(module, FieldPaiNN):
        return {"condition_shapes": dict(FIELD_CONDITIONS), "extra": {"field": spec()}}
    return {"condition_shapes": {"charge": ()}, "extra": {"long_range": spec()}}


def native_potential(
    module: torch.nn.Module,
    name: str,
    version: str = "0",
    dtype: str = "float64",
    device: str = "cpu",
    **info: Any,
) -> TorchPotential:
    """A native module served without a store (tests, training reports, benchmarks)."""
    fields = serving_fields(module)
    model_info = ModelInfo(
        name=name,
        version=version,
        kind=native_family(module),
        cutoff=float(module.cutoff),
        ensemble_size=module.cfg.members,
        dtype=dtype,
        device=device,
        condition_shapes=fields.get("condition_shapes", {}),
        extra=fields.get("extra", {}),
        **info,
    )
    return TorchPotential(module, model_info)


def archive_trust_reason(family: str) -> Callable[[bytes], str | None]:
    """A function giving why a file of `family` needs the trusted flag (None: it does not)."""
    if family == "metatomic":
        from mlipserve.server.models.metatomic_model import needs_trust

        return needs_trust
    if family == "mace":
        from mlipserve.server.models.mace_model import PICKLE_REASON

        return lambda data: PICKLE_REASON
    return lambda data: None


def load_archive(
    paths: list[Path], meta: dict[str, Any], dtype: str | None, device: str
) -> Potential:
    """Load checked files of an archive family (the store verified checksums and trust)."""
    family = meta["family"]
    try:
        if family == "torchscript":
            from mlipserve.server.models.torchscript import load_torchscript

            return load_torchscript(paths[0], meta, dtype=dtype, device=device)
        if family == "mace":
            from mlipserve.server.models.mace_model import load_mace

            return load_mace(paths, meta, dtype=dtype, device=device)
        if family == "metatomic":
            from mlipserve.server.models.metatomic_model import load_metatomic

            return load_metatomic(paths, meta, dtype=dtype, device=device)
    except ImportError as err:
        raise FamilyError(
            f"family {family!r} needs an optional extra (pip install 'mlipserve[{family}]'): {err}"
        ) from None
    raise FamilyError(f"unknown archive family {family!r}; known: {list(ARCHIVE_FAMILIES)}")
