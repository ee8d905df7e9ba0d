"""Request checks of long-range (charge-aware) models: what the Ewald sum and the charge model
need from each system, refused with a message before the request may join a batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from mlipserve.server.models.neighbors import face_distances
from mlipserve.server.serving.checks import InvalidInput
from mlipserve.wire import SystemArrays

MAX_DIRECT_ATOMS = 5_000  # the direct Coulomb sum of a system without a cell is O(N²)
MAX_EWALD_TERMS = 200_000_000  # k-vectors × atoms: Ewald's (k, atom) trig arrays
MAX_MESH_POINTS = 50_000_000  # PME's mesh


def check_long_range(systems: Sequence[SystemArrays], spec: dict) -> list[SystemArrays]:
    """Raise InvalidInput for what the model cannot do; return the systems with their total
    `charge` condition filled in (0 for periodic cells, fixed charges' sum otherwise)."""
    out = []
    table = {int(z): float(q) for z, q in spec.get("element_charges", {}).items()}
    predicted = spec["charges"] == "predicted"
    for i, system in enumerate(systems):
        pbc = np.asarray(system.pbc, dtype=bool)
        stated = system.conditions.get("charge")
        given = None if stated is None else float(np.asarray(stated))
        if pbc.any() and not pbc.all():
            raise InvalidInput(
                f"systems[{i}].pbc: {pbc.tolist()}: a long-range model needs a cell periodic "
                "along all three axes (Ewald) or none (direct Coulomb sum); for a slab, add "
                "vacuum and make it periodic in 3D"
            )
        periodic = bool(pbc.all())
        if periodic:
            width = face_distances(np.asarray(system.cell, dtype=np.float64)[None])[0]
            if (width < spec["cutoff"]).any():
                need = np.ceil(spec["cutoff"] / width).astype(int)
                raise InvalidInput(
                    f"systems[{i}].cell: widths {np.array2string(width, precision=3)} Å are "
                    f"below the model's pinned real-space cutoff {spec['cutoff']:g} Å; use a "
                    f"supercell of at least {need[0]}x{need[1]}x{need[2]}"
                )
            _check_reciprocal_size(i, system, spec)
        elif len(system.numbers) > MAX_DIRECT_ATOMS:
            raise InvalidInput(
                f"systems[{i}]: {len(system.numbers)} atoms without a cell exceed "
                f"{MAX_DIRECT_ATOMS} (the direct Coulomb sum is O(N²)); give it a periodic cell"
            )
        if predicted:
            total = _predicted_total(i, periodic, given)
        else:
            total = sum(table.get(int(z), 0.0) for z in system.numbers)
            _check_fixed_total(i, periodic, total, given)
        conditions = {**system.conditions, "charge": np.asarray(total, dtype=np.float64)}
        out.append(replace(system, conditions=conditions))
    return out


def _check_reciprocal_size(i: int, system: SystemArrays, spec: dict) -> None:
    """Refuse a cell whose k-space work (Ewald: k-vectors × atoms; PME: mesh points) would
    exhaust memory: a huge, sparse cell is cheap in real space but not in k-space."""
    cell = np.asarray(system.cell, dtype=np.float64)
    volume = abs(float(np.linalg.det(cell)))
    if spec.get("method") == "pme":
        points = float(np.prod(np.ceil(np.linalg.norm(cell, axis=1) / spec["mesh_spacing"])))
        if points > MAX_MESH_POINTS:
            raise InvalidInput(
                f"systems[{i}].cell: {volume:.3g} Å³ needs a PME mesh of {points:.3g} points "
                f"(limit {MAX_MESH_POINTS:.3g}); is the cell in Å, and mostly vacuum?"
            )
        return
    k_vectors = 4 / 3 * np.pi * spec["k_cut"] ** 3 * volume / (2 * np.pi) ** 3
    terms = k_vectors * len(system.numbers)
    if terms > MAX_EWALD_TERMS:
        raise InvalidInput(
            f"systems[{i}].cell: {volume:.3g} Å³ with {len(system.numbers)} atoms needs "
            f"~{k_vectors:.3g} Ewald k-vectors ({terms:.3g} terms, limit {MAX_EWALD_TERMS:.3g}); "
            "use a PME model for cells this large"
        )


def _predicted_total(i: int, periodic: bool, given: float | None) -> float:
    """The total charge the predicted charges are projected onto."""
    if periodic:
        if given not in (None, 0.0):
            raise InvalidInput(
                f"systems[{i}].conditions['charge']: {given:g} e in a periodic cell; the Ewald "
                "sum needs a neutral cell (add counter-ions)"
            )
        return 0.0
    if given is None:
        raise InvalidInput(
            f"systems[{i}].conditions: the model needs 'charge' (the total charge in e, 0 for "
            "a neutral molecule) for a system without a periodic cell"
        )
    return given


def _check_fixed_total(i: int, periodic: bool, total: float, given: float | None) -> None:
    """Fixed charges: a periodic cell must be neutral, a stated charge must match their sum."""
    if periodic and abs(total) > 1e-6:
        raise InvalidInput(
            f"systems[{i}]: the model's fixed charges sum to {total:+g} e in a periodic cell; "
            "the Ewald sum needs a neutral cell (check the composition)"
        )
    if given is not None and abs(given - total) > 1e-6:
        raise InvalidInput(
            f"systems[{i}].conditions['charge']: {given:g} e, but this model's fixed charges "
            f"of these atoms sum to {total:+g} e"
        )
