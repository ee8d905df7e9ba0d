"""Can GFN2-xTB (tblite) label adsorbates on small metal clusters in a field? CO, OH and H2O
atop a tetrahedral Cu4, Ag4 or Pt4, rattled, at E = 0 and ±0.1 V/Å along the adsorbate
axis: SCF success, seconds per label, and the field's effect (dipole, energy, forces).
Run: `.venv/bin/python -m benchmarks.field_metal_xtb` (about a minute on one core).
"""

from __future__ import annotations

import time

import numpy as np
from ase import Atoms

from benchmarks.common import write_result
from mlipserve.server.labellers.xtb import XtbLabeller

BONDS = {"Cu": 2.45, "Ag": 2.75, "Pt": 2.6}  # Å, M–M in the tetrahedron
ADSORBATES = {  # atoms above the apex metal (z up): symbols, offsets (Å), electrons odd
    "CO": ("CO", [[0, 0, 1.85], [0, 0, 3.0]], False),
    "OH": ("OH", [[0, 0, 2.0], [0.0, 0.9, 2.35]], True),
    "H2O": ("OHH", [[0, 0, 2.2], [0.76, 0, 2.8], [-0.76, 0, 2.8]], False),
}


def cluster(metal: str, adsorbate: str) -> Atoms:
    """M4 tetrahedron with one apex up, the adsorbate atop it, centred on the origin."""
    d = BONDS[metal]
    base = d / np.sqrt(3) * np.array([[1, 0, 0], [-0.5, 0.866, 0], [-0.5, -0.866, 0]])
    apex = [0, 0, d * np.sqrt(2 / 3)]
    symbols, offsets, _ = ADSORBATES[adsorbate]
    atoms = Atoms(metal * 4 + symbols, positions=[*base, apex, *(np.add(apex, offsets))])
    atoms.positions -= atoms.get_center_of_mass()
    return atoms


def main() -> None:
    rows = {}
    for metal in BONDS:
        for name, (_, _, odd) in ADSORBATES.items():
            times, ok, dipole_change, force_change, energy_change = [], 0, [], [], []
            for k in range(3):
                atoms = cluster(metal, name)
                atoms.rattle(0.03, seed=k)
                labels = {}
                for ez in (0.0, 0.1, -0.1):
                    labeller = XtbLabeller(multiplicity=2 if odd else 1,
                                           electric_field=[0.0, 0.0, ez])  # fmt: skip
                    start = time.perf_counter()
                    (label,) = labeller.label([atoms])
                    times.append(time.perf_counter() - start)
                    ok += label.ok
                    if label.ok:
                        labels[ez] = label.atoms.calc.results
                if len(labels) == 3:
                    up, down = labels[0.1], labels[-0.1]
                    dipole_change.append(float(up["dipole"][2] - down["dipole"][2]) / 2)
                    force_change.append(1e3 * float(np.abs(up["forces"] - down["forces"]).mean()))
                    energy_change.append(float(up["energy"] - down["energy"]) / 2)
            rows[f"{name}@{metal}4"] = {
                "labels_ok": f"{ok}/{len(times)}",
                "seconds_per_label_median": float(np.median(times)),
                "seconds_per_label_max": float(np.max(times)),
                "dipole_z_change_per_0p1_V_per_A_eA": dipole_change,
                "force_change_plus_minus_0p1_mean_meV_per_A": force_change,
                "energy_change_half_difference_eV": energy_change,
            }
            print(name, metal, rows[f"{name}@{metal}4"], flush=True)
    write_result("field_metal_xtb", {"method": "GFN2-xTB (tblite), default settings",
                                     "results": rows})  # fmt: skip


if __name__ == "__main__":
    main()
