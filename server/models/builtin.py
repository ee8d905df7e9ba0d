"""Models that ship with the server, by name (the embedded defaults and test workhorses)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlipserve.server.models.analytic import double_well, harmonic
from mlipserve.server.models.ase_adapter import emt_model
from mlipserve.server.models.base import ModelInfo, Potential
from mlipserve.server.models.ensemble import Ensemble
from mlipserve.server.models.pair import LennardJones, Morse
from mlipserve.server.models.rigid_ion import nacl_rigid_ion
from mlipserve.server.models.torch_potential import TorchPotential, builtin_potential

# Argon-like Lennard-Jones and a copper-like Morse (Girifalco & Weizer parameters).
LJ_ARGON = {"sigma": 3.405, "epsilon": 0.0103, "rc": 8.5, "smooth": True}
MORSE_CU = {"epsilon": 0.3429, "r0": 2.866, "rho0": 1.3588 * 2.866, "rcut1": 1.9, "rcut2": 2.7}


def lennard_jones(
    name: str = "lj", dtype: str = "float64", device: str = "auto", **params
) -> TorchPotential:
    """A served Lennard-Jones potential (argon-like unless parameters are given)."""
    module = LennardJones(**(params or LJ_ARGON))
    return builtin_potential(module, name, "lennard-jones", module.cutoff, dtype, device)


def morse(
    name: str = "morse", dtype: str = "float64", device: str = "auto", **params
) -> TorchPotential:
    """A served Morse potential (copper-like unless parameters are given)."""
    module = Morse(**(params or MORSE_CU))
    return builtin_potential(module, name, "morse", module.cutoff, dtype, device)


def lj_ensemble(
    name: str = "lj-ensemble",
    k: int = 4,
    spread: float = 0.02,
    dtype: str = "float64",
    device: str = "auto",
) -> TorchPotential:
    """K argon-like LJ members with σ and ε spread by ±`spread`: an ensemble with uncertainty."""
    members = []
    for m in range(k):
        scale = 1.0 + spread * (2.0 * m / (k - 1) - 1.0)
        params = {
            **LJ_ARGON,
            "sigma": LJ_ARGON["sigma"] * scale,
            "epsilon": LJ_ARGON["epsilon"] / scale,
        }
        members.append(LennardJones(**params))
    return builtin_potential(
        Ensemble(members), name, "ensemble:lennard-jones", LJ_ARGON["rc"], dtype, device, k
    )


SHIPPED = Path(__file__).resolve().parent / "shipped"


def shipped(
    stored: str, name: str | None = None, dtype: str | None = None, device: str = "auto"
) -> Potential:
    """A trained model shipped in the package's store, served as `name`."""
    from mlipserve.server.store import ModelStore

    evaluator = ModelStore(SHIPPED).load(stored, dtype=dtype, device=device)
    if name and name != stored:
        evaluator.info = ModelInfo(**{**evaluator.info.__dict__, "name": name})
    return evaluator


def shipped_default(
    name: str = "default", dtype: str | None = None, device: str = "auto"
) -> Potential:
    """The trained default ensemble shipped in the package (EMT-labelled fcc metals)."""
    return shipped("default", name, dtype, device)


def nacl_longrange(
    name: str = "nacl-longrange", dtype: str | None = None, device: str = "auto"
) -> Potential:
    """The shipped long-range NaCl ensemble (PaiNN + Ewald, trained on rigid-ion labels)."""
    return shipped("nacl-longrange", name, dtype, device)


def field_molecules(
    name: str = "field-molecules-xtb", dtype: str | None = None, device: str = "auto"
) -> Potential:
    """The shipped field-conditioned demonstration ensemble (small molecules, GFN2-xTB)."""
    return shipped("field-molecules-xtb", name, dtype, device)


def default_molecular(
    name: str = "default-molecular", dtype: str | None = None, device: str = "auto"
) -> Potential:
    """The shipped molecular default ensemble (H, C, N, O; GFN2-xTB labels)."""
    return shipped("default-molecular", name, dtype, device)


def sevennet_0(name: str = "sevennet-0", dtype: str = "float32", device: str = "auto") -> Potential:
    """Pretrained universal SevenNet-0 (optional extra `universal`; sevenn imported only here)."""
    from mlipserve.server.models.universal import sevennet0

    return sevennet0(name=name, dtype=dtype, device=device)


BUILTIN: dict[str, Callable[..., Potential]] = {
    "default": shipped_default,
    "emt": emt_model,
    "lj": lennard_jones,
    "morse": morse,
    "lj-ensemble": lj_ensemble,
    "harmonic": harmonic,
    "double-well": double_well,
    "sevennet-0": sevennet_0,
    "nacl-rigid-ion": nacl_rigid_ion,
    "nacl-longrange": nacl_longrange,
    "field-molecules-xtb": field_molecules,
    "default-molecular": default_molecular,
}
DEFAULT_MODELS = (
    (
        "default",
        "emt",
        "lj",
        "lj-ensemble",
        "nacl-rigid-ion",
        "nacl-longrange",
        "field-molecules-xtb",
        "default-molecular",
    )  # fmt: skip
    if (SHIPPED / "default").exists()
    else ("emt", "lj", "lj-ensemble", "nacl-rigid-ion")
)


def load_builtin(spec: str, device: str = "auto") -> Potential:
    """Build a shipped model from `name` or `name:dtype` ("lj:float32" is served as lj-float32)."""
    name, _, dtype = spec.partition(":")
    if name not in BUILTIN:
        raise ValueError(f"unknown built-in model {name!r}; known: {sorted(BUILTIN)}")
    if name == "emt":
        if dtype:
            raise ValueError("the EMT adapter runs in ASE's float64; give no dtype")
        return emt_model(name=name)
    if dtype:
        return BUILTIN[name](name=f"{name}-{dtype}", dtype=dtype, device=device)
    return BUILTIN[name](name=name, device=device)
