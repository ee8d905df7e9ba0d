"""`make_labeller(name, **settings)`: the one place a labeller is chosen by name."""

from __future__ import annotations

import importlib
from typing import Any

from mlipserve.server.labellers.base import CalculatorLabeller, Labeller, package_version

NAMES = ("emt", "nacl-rigid-ion", "xtb", "pyscf", "ase:<module>.<Class>")


def ase_calculator_labeller(path: str, **settings: Any) -> CalculatorLabeller:
    """A labeller for any ASE calculator named by import path, made with `settings` as kwargs.

    A trusted, in-process API: queue jobs reach it only through the operator's
    `mlipserve.server.labellers.policy`, which lists the paths and settings jobs may use.

    This is how the lab's plane-wave codes are used, e.g.
    ``make_labeller("ase:ase.calculators.vasp.Vasp", xc="PBE", encut=520, kpts=(4, 4, 4))`` or
    ``make_labeller("ase:ase.calculators.espresso.Espresso", pseudopotentials={...}, ...)``.
    One calculator is made per labeller and reused for every structure; energy and forces are
    always asked for, stress too when the cell is 3D-periodic and the calculator implements it.
    Whatever the calculator raises becomes a failed Label carrying the exception's message.

    Args:
        path: "package.module.ClassName", e.g. "ase.calculators.emt.EMT".
        **settings: keyword arguments for the calculator's constructor (recorded in provenance).
    """
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise ValueError(f"ASE calculator path {path!r} must look like 'package.module.Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"cannot import module {module_name!r} for labeller 'ase:{path}': {exc}"
        ) from exc
    from ase.calculators.calculator import BaseCalculator

    cls = getattr(module, class_name, None)
    if cls is None or not callable(cls):
        raise ValueError(f"module {module_name!r} has no calculator class {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, BaseCalculator)):
        raise ValueError(
            f"'ase:{path}' is not an ASE calculator class (a subclass of "  # noqa: TRY004
            f"ase.calculators.calculator.BaseCalculator)"
        )
    version = package_version(module_name.split(".")[0])
    try:
        calc = cls(**settings)  # fail now, at configuration time, on bad keyword arguments
    except TypeError as exc:
        raise ValueError(f"bad settings for labeller 'ase:{path}': {exc}") from exc
    labeller = CalculatorLabeller(f"ase:{path}", lambda: cls(**settings), version, settings)
    labeller._calc = calc
    return labeller


def make_labeller(name: str, **settings: Any) -> Labeller:
    """The labeller called `name` (one of `NAMES`) made with `settings`.

    Raises:
        ValueError: unknown name, or settings the labeller does not accept.
    """
    if name == "emt":
        from ase.calculators.emt import EMT

        EMT(**settings)
        return CalculatorLabeller("emt", lambda: EMT(**settings), package_version("ase"), settings)
    if name == "nacl-rigid-ion":
        from mlipserve.server.labellers.rigid_ion import RigidIonCalculator

        if settings:
            raise ValueError(f"labeller 'nacl-rigid-ion' takes no settings, got {sorted(settings)}")
        return CalculatorLabeller(name, RigidIonCalculator, package_version("mlipserve"), {})
    if name == "xtb":
        from mlipserve.server.labellers.xtb import XtbLabeller

        return _construct(XtbLabeller, name, settings)
    if name == "pyscf":
        from mlipserve.server.labellers.pyscf_dft import PyscfLabeller

        return _construct(PyscfLabeller, name, settings)
    if name.startswith("ase:"):
        return ase_calculator_labeller(name[len("ase:") :], **settings)
    raise ValueError(f"unknown labeller {name!r}; choose one of {', '.join(NAMES)}")


def _construct(cls: type, name: str, settings: dict) -> Labeller:
    """`cls(**settings)`, turning an unknown keyword into a ValueError naming the labeller."""
    try:
        return cls(**settings)
    except TypeError as exc:
        raise ValueError(f"bad settings for labeller {name!r}: {exc}") from exc
