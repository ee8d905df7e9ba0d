"""Field sweep: energy, forces, dipole, Born charges and charges of one structure at a series of
uniform fields, all fields in one call (a field-conditioned model batches them), and the plot.

```python
sweep = field_sweep(RemoteProvider(address, "field-molecules-xtb"), water, direction=(0, 0, 1),
                    max_field=0.1, points=11)
plot_field_sweep(sweep, "water-field.png")
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlipserve.simulation.plotting import new_panels, save
from mlipserve.simulation.provider import ForceProvider

PROPERTIES = ("energy", "forces", "dipole", "born_charges", "charges")


@dataclass
class FieldSweep:
    """Per field (F, 3) in V/Å: energy (F,) eV, forces (F, N, 3), dipole (F, 3) e·Å, Born
    charges (F, N, 3, 3) e and charges (F, N) e; the symbols of the N atoms."""

    fields: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    dipole: np.ndarray
    born_charges: np.ndarray
    charges: np.ndarray
    symbols: list[str]

    def polarizability(self) -> np.ndarray:
        """(3, 3) e·Å²/V: least-squares slope of the dipole against the field."""
        x = np.hstack([self.fields, np.ones((len(self.fields), 1))])
        slope, *_ = np.linalg.lstsq(x, self.dipole, rcond=None)
        return slope[:3].T

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready arrays."""
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()}


def sweep_fields(direction: Sequence[float], max_field: float, points: int) -> np.ndarray:
    """(points, 3) fields from −max_field to +max_field (V/Å) along `direction`."""
    unit = np.asarray(direction, dtype=float)
    if unit.shape != (3,) or not np.linalg.norm(unit) > 0:
        raise ValueError(f"direction must be 3 numbers, not all zero; got {direction}")
    if points < 2 or not max_field > 0:
        raise ValueError("need points ≥ 2 and max_field > 0")
    unit = unit / np.linalg.norm(unit)
    return np.linspace(-max_field, max_field, points)[:, None] * unit


def field_sweep(
    provider: ForceProvider,
    atoms: Atoms,
    direction: Sequence[float] = (0.0, 0.0, 1.0),
    max_field: float = 0.1,
    points: int = 11,
    fields: np.ndarray | None = None,
) -> FieldSweep:
    """Evaluate `atoms` at every field (given, or a sweep along `direction`) in one call."""
    grid = sweep_fields(direction, max_field, points) if fields is None else np.asarray(fields)
    frames = []
    for field in grid:
        frame = atoms.copy()
        frame.info["external_field"] = np.asarray(field, dtype=float)
        frames.append(frame)
    results = provider.evaluate(frames, PROPERTIES)
    return FieldSweep(
        fields=grid,
        energy=np.array([r["energy"] for r in results]),
        forces=np.array([r["forces"] for r in results]),
        dipole=np.array([r["dipole"] for r in results]),
        born_charges=np.array([r["born_charges"] for r in results]),
        charges=np.array([r["charges"] for r in results]),
        symbols=atoms.get_chemical_symbols(),
    )


def plot_field_sweep(
    sweep: FieldSweep,
    path: str | Path,
    provenance: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> Path:
    """Dipole, force change per atom and Born charges (trace/3) against the field strength."""
    fig, (ax_d, ax_f, ax_z) = new_panels(3, 14, 4.2)
    norms = np.linalg.norm(sweep.fields, axis=1)
    unit = sweep.fields[int(np.argmax(norms))] / max(norms.max(), 1e-300)
    along = sweep.fields @ unit  # field strength along the sweep's direction
    for a, name in enumerate("xyz"):
        ax_d.plot(along, sweep.dipole[:, a], marker="o", ms=3, label=f"μ_{name}")
    ax_d.set(xlabel="field (V/Å)", ylabel="dipole (e·Å)", title="dipole")
    ax_d.legend(fontsize=8)
    zero = int(np.argmin(np.abs(along)))
    change = np.linalg.norm(sweep.forces - sweep.forces[zero], axis=-1)  # (F, N)
    for i, symbol in enumerate(sweep.symbols):
        ax_f.plot(along, 1e3 * change[:, i], lw=1, label=f"{symbol}{i}")
    ax_f.set(xlabel="field (V/Å)", ylabel="|F(E) − F(0)| (meV/Å)", title="forces vs field")
    ax_f.legend(fontsize=7, ncol=2)
    trace = np.trace(sweep.born_charges, axis1=2, axis2=3) / 3  # (F, N)
    for i, symbol in enumerate(sweep.symbols):
        ax_z.plot(along, trace[:, i], lw=1, label=f"{symbol}{i}")
    ax_z.set(xlabel="field (V/Å)", ylabel="Tr Z*/3 (e)", title="Born charges")
    return save(fig, path, title, provenance)
