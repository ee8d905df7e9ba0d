"""examples/water_pimd.py --small on the served default-molecular: H far above 3/2 kT."""

from __future__ import annotations

from ase import units

from tests.examples.conftest import run


def test_water_pimd_example(lab, tmp_path) -> None:
    """4-water cluster, 300 K: 3/2 kT = 38.78 meV (kB·T, computed here); the classical run's
    momenta KE per H within 25 % of it (300 steps of 8 H atoms: noisy); KE_H > 1.5 × 3/2 kT at
    P = 4 and 8 and rising from P = 4 to 8 (the harmonic-like bead convergence of the stretch)."""
    summary = run(lab, tmp_path, "water_pimd")
    classical = 1.5 * units.kB * 300.0
    assert abs(summary["classical_eV_per_atom"] - classical) < 1e-9
    assert abs(summary["classical_run_momenta_KE_H_eV"] - classical) < 0.25 * classical
    runs = {r["beads"]: r for r in summary["runs"]}
    assert set(runs) == {4, 8}
    for r in runs.values():
        assert r["KE_H_eV"] > 1.5 * classical, r
        assert r["KE_O_eV"] > 0.8 * classical, r
    assert runs[8]["KE_H_eV"] > runs[4]["KE_H_eV"]
    assert summary["KE_H_eV_per_atom"] == runs[8]["KE_H_eV"]
