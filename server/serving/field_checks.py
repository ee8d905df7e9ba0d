"""Request checks of field- and potential-conditioned models: molecules only, conditions
filled in so systems with different fields share a batch, untrusted fields and potentials
flagged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from mlipserve.server.serving.checks import InvalidInput
from mlipserve.wire import SystemArrays

MAX_QEQ_ATOMS = 2_000  # charge equilibration: an N×N matrix per member, an O(N³) solve


def check_field(
    systems: Sequence[SystemArrays], spec: dict
) -> tuple[list[SystemArrays], tuple[tuple[str, ...], ...]]:
    """The systems with `external_field` (0) and, unless `fermi_level` is given, `charge` (0)
    filled in, and per-system warnings; InvalidInput for a periodic system."""
    out, warnings = [], []
    lo, hi = spec["fermi_range"]
    for i, system in enumerate(systems):
        if len(system.numbers) > MAX_QEQ_ATOMS:
            raise InvalidInput(
                f"systems[{i}]: {len(system.numbers)} atoms exceed {MAX_QEQ_ATOMS} for this "
                "model (its charge equilibration solves an N×N system)"
            )
        if np.asarray(system.pbc, dtype=bool).any():
            raise InvalidInput(
                f"systems[{i}].pbc: this field-conditioned model is for molecules and clusters "
                "(trained without a cell; a periodic dipole needs the Berry phase): send the "
                "system with pbc all False"
            )
        conditions = dict(system.conditions)
        field = np.asarray(conditions.get("external_field", np.zeros(3)), dtype=np.float64)
        conditions["external_field"] = field
        flags = []
        strength = float(np.linalg.norm(field))
        if strength > spec["max_field"]:
            flags.append(
                f"untrusted: |external_field| {strength:.3g} V/Å is beyond the "
                f"{spec['max_field']:g} V/Å of the training data"
            )
        if "fermi_level" in conditions:
            if "charge" in conditions:
                raise InvalidInput(
                    f"systems[{i}].conditions: give 'charge' (fixed electron number) or "
                    "'fermi_level' (electron number follows μe), not both"
                )
            mu = float(np.asarray(conditions["fermi_level"]))
            if not lo <= mu <= hi:
                flags.append(
                    f"untrusted: fermi_level {mu:g} eV is outside the trained range "
                    f"[{lo:g}, {hi:g}] eV"
                )
        else:
            conditions["charge"] = np.asarray(conditions.get("charge", 0.0), dtype=np.float64)
        out.append(replace(system, conditions=conditions))
        warnings.append(tuple(flags))
    return out, tuple(warnings)
