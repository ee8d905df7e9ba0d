"""The labeller contract: structures in, `Label`s (energy, forces, stress + provenance) out.

Every labeller turns a failure of the reference method (an exception, an unconverged SCF,
non-finite numbers) into ``Label(ok=False, error=...)`` so that one bad structure never
crashes a labelling job and never reaches the dataset as data.
"""

from __future__ import annotations

import importlib.metadata
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

#: Result keys a labeller may attach (ASE names and units: eV, eV/Å, eV/Å³ Voigt, e·Å).
LABEL_KEYS = ("energy", "forces", "stress", "dipole")


@dataclass
class Label:
    """One labelled structure: the atoms with a SinglePointCalculator when `ok`, else the reason."""

    atoms: Atoms
    ok: bool
    error: str | None = None
    provenance: dict = field(default_factory=dict)

    @property
    def results(self) -> dict:
        """The attached results (energy, forces, ...) or an empty dict for a failed label."""
        if not self.ok or self.atoms.calc is None:
            return {}
        return dict(self.atoms.calc.results)


class LabelFailure(RuntimeError):
    """A reference calculation that ran but gave no usable result (e.g. an unconverged SCF)."""

    def __init__(self, message: str, provenance: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.provenance = dict(provenance or {})


@runtime_checkable
class Labeller(Protocol):
    """Anything with a `name` that labels a batch of structures, one `Label` per input, in order."""

    name: str

    def label(self, structures: Sequence[Atoms]) -> list[Label]:
        """Label every structure; failures come back as `Label(ok=False)`, never as exceptions."""
        ...


def package_version(package: str) -> str:
    """Installed version of `package`, or "unknown" when it has no distribution metadata."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def json_safe(value: Any) -> Any:
    """`value` with numpy arrays and scalars as lists and Python numbers (for provenance)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def check_structures(structures: Sequence[Atoms]) -> None:
    """Raise ValueError unless `structures` is a sequence of non-empty ase.Atoms."""
    if isinstance(structures, Atoms):
        raise ValueError("label() takes a sequence of ase.Atoms, not one Atoms")  # noqa: TRY004
    for i, atoms in enumerate(structures):
        if not isinstance(atoms, Atoms):
            raise ValueError(f"structure {i} is {type(atoms).__name__}, not Atoms")  # noqa: TRY004
        if len(atoms) == 0:
            raise ValueError(f"structure {i} has no atoms")


def labelled_atoms(atoms: Atoms, results: Mapping[str, Any]) -> Atoms:
    """A copy of `atoms` (no calculator) carrying `results` in a SinglePointCalculator."""
    out = atoms.copy()
    out.calc = None
    kept = {
        k: np.asarray(v, dtype=float) if k != "energy" else float(v)
        for k, v in results.items()
        if k in LABEL_KEYS and v is not None
    }
    out.calc = SinglePointCalculator(out, **kept)
    return out


def finite_or_reason(results: Mapping[str, Any]) -> str | None:
    """None when energy and forces are present and finite, else why the result is unusable."""
    for key in ("energy", "forces"):
        if key not in results:
            return f"calculator returned no {key}"
    for key, value in results.items():
        if not np.all(np.isfinite(np.asarray(value, dtype=float))):
            return f"calculator returned non-finite {key}"
    return None


def run_one(
    atoms: Atoms,
    compute: Callable[[Atoms], dict],
    provenance: Mapping[str, Any],
) -> Label:
    """Run `compute(atoms) -> results dict` and wrap the outcome (or the exception) in a Label.

    Args:
        atoms: the structure; never modified.
        compute: returns ASE-unit results (``energy`` and ``forces`` at least) or raises.
        provenance: labeller, version and settings; wall time and host are added here.
    """
    start = time.perf_counter()
    extra: dict = {}
    try:
        results = compute(atoms.copy())
        extra = results.pop("_provenance", {}) if isinstance(results, dict) else {}
        error = finite_or_reason(results)
    except LabelFailure as exc:
        results, error, extra = {}, str(exc), exc.provenance
    except Exception as exc:  # noqa: BLE001 - a reference code may raise anything
        results, error = {}, f"{type(exc).__name__}: {exc}".strip()
    prov = dict(provenance)
    prov.update(extra)
    prov["wall_time_s"] = time.perf_counter() - start
    prov["host"] = socket.gethostname()
    if error is not None:
        bare = atoms.copy()
        bare.calc = None
        return Label(atoms=bare, ok=False, error=error, provenance=prov)
    return Label(atoms=labelled_atoms(atoms, results), ok=True, error=None, provenance=prov)


def wants_stress(atoms: Atoms) -> bool:
    """Stress is defined for fully periodic cells with a non-zero volume."""
    return bool(atoms.pbc.all() and atoms.cell.rank == 3)


class CalculatorLabeller:
    """Labels with any ASE calculator: energy, forces, and stress for 3D-periodic cells.

    Args:
        name: the labeller's name as recorded in provenance (e.g. "emt").
        factory: makes a fresh calculator; one is made per labeller and reused per structure.
        version: version string of the package behind the calculator.
        settings: the keyword arguments the calculator was made with (recorded in provenance).
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[], Calculator],
        version: str,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.settings = dict(settings or {})
        self._factory = factory
        self._calc: Calculator | None = None

    def _compute(self, atoms: Atoms) -> dict:
        if self._calc is None:
            self._calc = self._factory()
        calc = self._calc
        if hasattr(calc, "reset"):
            calc.reset()
        atoms.calc = calc
        results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
        implemented = getattr(calc, "implemented_properties", ())
        if wants_stress(atoms) and "stress" in implemented:
            results["stress"] = atoms.get_stress(voigt=True)
        atoms.calc = None
        return results

    def label(self, structures: Sequence[Atoms]) -> list[Label]:
        """Label each structure; calculator exceptions become failed Labels."""
        check_structures(structures)
        provenance = {
            "labeller": self.name,
            "version": self.version,
            "settings": json_safe(self.settings),
        }
        return [run_one(atoms, self._compute, provenance) for atoms in structures]
