"""PIMD of a 3D harmonic oscillator against its exact finite-P and P → ∞ averages.

H atoms (m = 1.00794 amu) in `harmonic(k)` with ħω = 0.0076 Ha, so βħω = 8 at 300 K. The
trap acts on each atom separately, so the 64 atoms of one system are 64 independent
oscillators: one provider call per step gives 64 × 3 degrees of freedom of statistics.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units

from mlipserve.server.models.analytic import harmonic
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation.pimd import (
    PILE_G,
    PILE_L,
    PathIntegralMD,
    PIMDIntegrator,
    RingPolymerState,
)
from mlipserve.simulation.pimd.estimators import (
    kinetic_centroid_virial,
    kinetic_primitive,
    potential_energy,
    quantum_kinetic_energy,
)
from tests.simulation.pimd.harmonic_reference import (
    HBAR,
    block_mean,
    exact,
    quantum_limit,
)

T = 300.0
MASS = 1.00794
OMEGA = 0.0076 * units.Hartree / HBAR
N_ATOMS = 64


def test_reference_formula_limits_and_published_numbers() -> None:
    """The reference: P = 1 classical to 1e-12, P = 8 / 32 equal the i-PI trial note's exact
    138.86 / 154.01 meV (±0.02), P = 4096 within 1e-4 of (3ħω/4) coth(βħω/2) = 155.21 meV."""
    kt = units.kB * T
    one = exact(1, T, MASS, OMEGA)
    assert one["kinetic"] == pytest.approx(1.5 * kt, rel=1e-12)
    assert one["q2"] == pytest.approx(3 * kt / (MASS * OMEGA**2), rel=1e-12)
    assert exact(8, T, MASS, OMEGA)["kinetic"] * 1e3 == pytest.approx(138.86, abs=0.02)
    assert exact(32, T, MASS, OMEGA)["kinetic"] * 1e3 == pytest.approx(154.01, abs=0.02)
    limit = quantum_limit(T, MASS, OMEGA)
    assert limit["kinetic"] * 1e3 == pytest.approx(155.21, abs=0.02)
    big = exact(4096, T, MASS, OMEGA)
    assert big["kinetic"] == pytest.approx(limit["kinetic"], rel=1e-4)
    assert big["q2"] == pytest.approx(limit["q2"], rel=1e-4)


def run(p: int, steps: int, thermostat, dt_fs: float = 0.5, seed: int = 0) -> dict:
    """Averages per atom after 100 equilibration steps, with block standard errors."""
    provider = LocalProvider(harmonic(k=MASS * OMEGA**2))
    atoms = Atoms(f"H{N_ATOMS}", positions=np.zeros((N_ATOMS, 3)), masses=[MASS] * N_ATOMS)
    state = RingPolymerState.from_atoms(atoms, p, T, seeds=seed)
    pimd = PathIntegralMD(provider, state, PIMDIntegrator(dt_fs * units.fs, thermostat))
    pimd.run(100)
    rows: dict[str, list] = {
        "kinetic_cv": [],
        "kinetic_td": [],
        "potential": [],
        "q2": [],
        "classical_kinetic": [],
    }
    for _ in range(steps):
        s = pimd.step()
        rows["kinetic_cv"].append(kinetic_centroid_virial(s)[0] / N_ATOMS)
        rows["kinetic_td"].append(kinetic_primitive(s)[0] / N_ATOMS)
        rows["potential"].append(potential_energy(s)[0] / N_ATOMS)
        rows["q2"].append(np.mean(np.sum(s.positions[0] ** 2, -1)))
        rows["classical_kinetic"].append(s.kinetic_energy[0] / (p * N_ATOMS))
    assert pimd.calls == steps + 100 + 1
    np.testing.assert_allclose(
        quantum_kinetic_energy(s, per_atom=True).sum(1), kinetic_centroid_virial(s)
    )
    return {key: block_mean(np.array(v)) for key, v in rows.items()}


def check(measured: tuple[float, float], expected: float, sigmas: float = 4.0) -> None:
    mean, err = measured
    assert err < 0.02 * abs(expected), f"error bar {err} too wide for a useful test"
    assert abs(mean - expected) < sigmas * err, f"{mean} vs exact {expected} (σ = {err})"


def test_one_bead_samples_the_classical_oscillator() -> None:
    """P = 1 (classical Langevin): ⟨|q|²⟩ = 3kT/(mω²) within 4σ (BAOAB samples positions of a
    harmonic oscillator exactly); end-of-step ⟨p²/2m⟩ = (3kT/2)(1 − (ωdt)²/4), BAOAB's exact
    kinetic bias for this oscillator (2.5 % at ωdt = 0.31), within 4σ."""
    dt = 1.0 * units.fs
    res = run(1, 800, PILE_L(5 * units.fs), dt_fs=1.0)
    kt = units.kB * T
    check(res["q2"], 3 * kt / (MASS * OMEGA**2))
    check(res["classical_kinetic"], 1.5 * kt * (1 - (OMEGA * dt) ** 2 / 4))
    assert res["kinetic_cv"][0] == pytest.approx(1.5 * kt, rel=1e-12)


@pytest.mark.parametrize(
    ("p", "thermostat", "steps"),
    [(4, PILE_G(5 * units.fs), 600), (16, PILE_L(5 * units.fs), 300)],
    ids=["P4-PILE_G", "P16-PILE_L"],
)
def test_ring_polymer_matches_exact_finite_p(p: int, thermostat, steps: int) -> None:
    """Centroid-virial and primitive kinetic energy, ⟨V⟩ and ⟨|q|²⟩ per atom equal the exact
    finite-P values within 4σ (block errors, each σ < 2 % of the value; P = 8 with PILE-L is
    checked the same way in test_vs_ipi.py); the bead momenta
    are at the ring temperature PT (⟨p²/2m⟩ = 3PkT/2 per bead-atom) within 2 % (BAOAB's
    end-of-step kinetic energy carries an O(dt²) bias: −0.7 % at P = 8, 0.5 fs)."""
    res = run(p, steps, thermostat)
    ref = exact(p, T, MASS, OMEGA)
    for key, ref_key in (
        ("kinetic_cv", "kinetic"),
        ("kinetic_td", "kinetic"),
        ("potential", "potential"),
        ("q2", "q2"),
    ):
        check(res[key], ref[ref_key])
    assert res["classical_kinetic"][0] == pytest.approx(1.5 * p * units.kB * T, rel=0.02)
    for key, (mean, err) in res.items():
        print(f"P={p} {key}: {mean * 1e3:.3f} ± {err * 1e3:.3f} (meV; q2 in 1e-3 Å²)")
    # quantum: far above the classical 3kT/2 and on its way to the P → ∞ value
    assert res["kinetic_cv"][0] > 2.5 * 1.5 * units.kB * T
    limit = quantum_limit(T, MASS, OMEGA)["kinetic"]
    assert res["kinetic_cv"][0] < limit
    if p == 16:  # 3 % below (3ħω/4) coth(βħω/2); P = 4 is still 29 % below
        assert res["kinetic_cv"][0] == pytest.approx(limit, rel=0.04)
