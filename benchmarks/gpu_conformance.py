"""GPU conformance: every native family and the pair models on a device against CPU float64.

Each case (a model family, two systems in one call) is evaluated on CPU in float64 (the
reference, in this process) and on the device in float64 and float32; every returned
property (energy, forces, stress, ensemble spread, charges, dipoles, Born charges) is
compared as max |device − reference| / max(1, max |reference|) against the tolerance
stated per family and dtype below. The device's own repeat and alone-vs-batch differences
are recorded too (CUDA's atomic adds may reorder sums; on CPU both are exactly 0).
With `device="cpu"` (the smoke mode) the "device" side is the same code on CPU, so the
comparison itself is what is exercised.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk, molecule

from mlipserve.server.models.base import Potential
from mlipserve.server.models.builtin import (
    field_molecules,
    lennard_jones,
    lj_ensemble,
    morse,
    nacl_longrange,
    shipped_default,
)
from mlipserve.server.models.families import native_potential
from mlipserve.server.models.longrange import LongRangePaiNN
from mlipserve.server.models.rigid_ion import nacl_rigid_ion
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.training.nacl_data import clusters, crystals
from tests.server.models import conformance as conf
from tests.server.models.test_field import FIELD

# max |device - cpu float64| / max(1, max |cpu float64|) per property, by dtype. float64:
# only the order of sums differs. float32 (eps 1.2e-7): PaiNN energies sum ~100 atoms;
# Coulomb (Ewald/PME) and charge equilibration cancel large terms, so they get more room.
TOLERANCE = {
    "painn": {"float64": 1e-9, "float32": 1e-4},
    "painn-coulomb": {"float64": 1e-9, "float32": 1e-3},
    "painn-coulomb-pme": {"float64": 1e-9, "float32": 1e-3},
    "painn-coulomb-cluster": {"float64": 1e-9, "float32": 1e-3},
    "painn-field": {"float64": 1e-9, "float32": 1e-3},
    "lennard-jones": {"float64": 1e-9, "float32": 1e-4},
    "morse": {"float64": 1e-9, "float32": 1e-4},
    "lj-ensemble": {"float64": 1e-9, "float32": 1e-4},
    "nacl-rigid-ion": {"float64": 1e-9, "float32": 1e-3},
}
PERIODIC = ("energy", "forces", "stress", "energies")
ENSEMBLE = PERIODIC + ("uncertainty",)
RESULT_KEYS = frozenset(
    {"energy", "forces", "stress", "energies", "energy_std", "forces_std", "max_force_std",
     "charges", "dipole", "born_charges"}
)  # fmt: skip


def copper_cells() -> list[Atoms]:
    """The conformance suite's sheared 8-atom Cu cell and a rattled 32-atom Cu3Au cell."""
    alloy = bulk("Cu", "fcc", a=3.7, cubic=True) * (2, 2, 2)
    alloy.numbers[::4] = 79
    alloy.rattle(0.05, seed=1)
    return [conf.test_system("Cu", 3.61), alloy]


def argon_cells() -> list[Atoms]:
    """Two rattled fcc argon cells (8 atoms sheared; 32 atoms)."""
    big = bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 2)
    big.rattle(0.05, seed=2)
    return [conf.test_system("Ar", 5.3), big]


def nacl_clusters() -> list[Atoms]:
    """A rattled Na4Cl4 cube and a Na-Cl pair without a cell (the direct Coulomb sum)."""
    return clusters(np.random.default_rng(7), 2)


def nacl_cells() -> list[Atoms]:
    """Two strained, rattled 64-ion rock-salt cells."""
    return crystals(np.random.default_rng(8), 2)


def molecules() -> list[Atoms]:
    """Rattled formaldehyde and water in the tests' external field."""
    out = []
    for k, name in enumerate(("H2CO", "H2O")):
        atoms = molecule(name)
        atoms.rattle(0.03, seed=k)
        atoms.info["external_field"] = FIELD
        out.append(atoms)
    return out


def nacl_pme(dtype: str, device: str) -> Potential:
    """The shipped nacl-longrange weights with PME instead of Ewald for the reciprocal sum."""
    ewald = nacl_longrange(dtype="float64", device="cpu").module
    module = LongRangePaiNN(replace(ewald.cfg, method="pme", ewald=None))
    module.short.load_state_dict(ewald.short.state_dict())
    return native_potential(module, "nacl-longrange-pme", "1", dtype, device)


@dataclass(frozen=True)
class Case:
    """One case of a family: how to build it (dtype, device), its systems, the properties."""

    family: str
    build: Callable[[str, str], Potential]
    systems: Callable[[], list[Atoms]]
    properties: tuple[str, ...]


CASES: dict[str, Case] = {
    "painn": Case(
        "painn", lambda d, dev: shipped_default(dtype=d, device=dev), copper_cells, ENSEMBLE
    ),
    "painn-coulomb": Case(
        "painn-coulomb",
        lambda d, dev: nacl_longrange(dtype=d, device=dev),
        nacl_cells,
        ENSEMBLE + ("charges",),
    ),
    "painn-coulomb-pme": Case("painn-coulomb", nacl_pme, nacl_cells, ENSEMBLE + ("charges",)),
    "painn-coulomb-cluster": Case(
        "painn-coulomb",
        lambda d, dev: nacl_longrange(dtype=d, device=dev),
        nacl_clusters,
        ("energy", "forces", "energies", "charges", "uncertainty"),
    ),
    "painn-field": Case(
        "painn-field",
        lambda d, dev: field_molecules(dtype=d, device=dev),
        molecules,
        ("energy", "forces", "dipole", "born_charges", "uncertainty"),
    ),
    "lennard-jones": Case(
        "pair", lambda d, dev: lennard_jones(dtype=d, device=dev), argon_cells, PERIODIC
    ),
    "morse": Case("pair", lambda d, dev: morse(dtype=d, device=dev), copper_cells, PERIODIC),
    "lj-ensemble": Case(
        "pair", lambda d, dev: lj_ensemble(dtype=d, device=dev), argon_cells, ENSEMBLE
    ),
    "nacl-rigid-ion": Case(
        "pair+coulomb", lambda d, dev: nacl_rigid_ion(dtype=d, device=dev), nacl_cells, PERIODIC
    ),
}


def _arrays(results: list[dict]) -> dict[str, list[np.ndarray]]:
    """The physical results per key (names, versions, batch facts and timings left out)."""
    out: dict[str, list[np.ndarray]] = {}
    for res in results:
        for key in RESULT_KEYS & set(res):
            out.setdefault(key, []).append(np.asarray(res[key], dtype=np.float64))
    return out


def max_difference(a: list[dict], b: list[dict]) -> float:
    """The largest |a − b| over every numeric result of two evaluations of the same systems."""
    x, y = _arrays(a), _arrays(b)
    if x.keys() != y.keys():
        raise AssertionError(f"results differ in keys: {sorted(x)} vs {sorted(y)}")
    return max(float(np.max(np.abs(p - q), initial=0.0)) for k in x for p, q in zip(x[k], y[k]))


def compare(got: list[dict], want: list[dict], tolerance: float) -> dict[str, dict]:
    """Per property: max |got − want|, the scale max(1, max |want|), their ratio, pass/fail."""
    x, y = _arrays(got), _arrays(want)
    if x.keys() != y.keys():
        raise AssertionError(f"results differ in keys: {sorted(x)} vs {sorted(y)}")
    out = {}
    for key in sorted(y):
        error = max(float(np.max(np.abs(p - q), initial=0.0)) for p, q in zip(x[key], y[key]))
        scale = max(1.0, *(float(np.max(np.abs(q), initial=0.0)) for q in y[key]))
        finite = all(np.isfinite(p).all() for p in x[key])
        out[key] = {
            "max_abs_error": error,
            "scale": scale,
            "relative_error": error / scale,
            "tolerance": tolerance,
            "ok": bool(finite and error / scale <= tolerance),
        }
    return out


def check_case(name: str, case: Case, device: str, dtypes: tuple[str, ...]) -> dict:
    """Results of one family on `device` in each dtype against CPU float64."""
    systems = case.systems()
    props = list(case.properties)
    reference = LocalProvider(case.build("float64", "cpu")).evaluate(systems, props)
    row: dict = {
        "family": case.family,
        "atoms": [len(s) for s in systems],
        "properties": props,
        "dtypes": {},
    }
    for dtype in dtypes:
        model = LocalProvider(case.build(dtype, device))
        got = model.evaluate(systems, props)
        again = model.evaluate(systems, props)
        alone = [model.evaluate([s], props)[0] for s in systems]
        checks = compare(got, reference, TOLERANCE[name][dtype])
        row["dtypes"][dtype] = {
            "model_device": model.model.info.device,
            "model_dtype": model.model.info.dtype,
            "properties": checks,
            "worst_relative_error": max(c["relative_error"] for c in checks.values()),
            "tolerance": TOLERANCE[name][dtype],
            "ok": all(c["ok"] for c in checks.values()),
            "repeat_max_difference": max_difference(got, again),
            "alone_vs_batch_max_difference": max_difference(got, alone),
        }
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    row["ok"] = all(d["ok"] for d in row["dtypes"].values())
    return row


def conformance(device: str, dtypes: tuple[str, ...] = ("float64", "float32")) -> dict:
    """Every case on `device`; {"families": {name: row}, "ok": all passed, "float32 matmul"}."""
    families = {}
    for name, case in CASES.items():
        try:
            families[name] = check_case(name, case, device, dtypes)
        except Exception as err:  # one broken family must not hide the others' results
            traceback.print_exc()
            families[name] = {"family": case.family, "error": f"{type(err).__name__}: {err}",
                              "ok": False, "dtypes": {}}  # fmt: skip
            print(f"conformance {name:18s} FAILED  {families[name]['error']}")
            continue
        worst = {d: f"{v['worst_relative_error']:.2g}" for d, v in families[name]["dtypes"].items()}
        print(f"conformance {name:18s} {'ok' if families[name]['ok'] else 'FAILED'}  {worst}")
    return {
        "families": families,
        "ok": all(f["ok"] for f in families.values()),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
