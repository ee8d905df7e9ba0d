"""Cross-check against i-PI 3.3.1 itself: the same PIMD, both codes, the same estimators.

System: 32 H atoms (m = 1.00794 amu, i-PI's mass for H) in the isotropic trap ħω = 0.0076 Ha
(βħω = 8 at 300 K), 8 beads, PILE-L with τ = 5 fs, BAOAB, dt = 0.5 fs, no centre-of-mass
fixing. i-PI computes forces with its own `i-pi-py_driver -m harmonic` over a unix socket;
we use `LocalProvider(harmonic(k))`. i-PI runs in child processes while ours runs here.
After 150 equilibration steps (of 800), the per-atom centroid-virial and primitive kinetic energies,
the bead-averaged potential and the radius of gyration of the two codes agree within 4
combined standard errors (block averages); both codes' kinetic energies and potential
match the exact finite-P value 138.86 meV within 4σ, and our bead ⟨|q|²⟩ its exact value.
Takes ~15–35 s (i-PI is the slower side).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units

from mlipserve.server.models.analytic import harmonic
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation.pimd import PILE_L, PathIntegralMD, PIMDIntegrator, RingPolymerState
from tests.simulation.pimd.harmonic_reference import HBAR, block_mean, exact
from tests.simulation.pimd.ipi_reference import ipi_available, start_ipi

T, P, N = 300.0, 8, 32
HW_HARTREE = 0.0076
MASS_ME = 1837.3622346900002  # i-PI's mass of H in electron masses (= 1.00794 amu)
MASS = 1.00794
STEPS, EQUIL, DT_FS, TAU_FS = 800, 150, 0.5, 5.0
NAMES = ("kinetic_cv", "kinetic_td", "potential", "r_gyration")


@pytest.mark.slow
@pytest.mark.skipif(not ipi_available(), reason="i-PI (PyPI ipi) is not installed")
def test_pimd_agrees_with_ipi(tmp_path) -> None:
    """Ours vs i-PI on the same trap: four estimators within 4 combined σ; both vs exact."""
    k_au = MASS_ME * HW_HARTREE**2
    ipi = start_ipi(
        tmp_path / "ipi",
        ["H"] * N,
        np.zeros((N, 3)),
        P,
        STEPS,
        T,
        DT_FS,
        TAU_FS,
        ["-m", "harmonic", "-o", f"{k_au:.12f}"],
    )
    try:
        omega = HW_HARTREE * units.Hartree / HBAR
        provider = LocalProvider(harmonic(k=MASS * omega**2))
        atoms = Atoms(f"H{N}", positions=np.zeros((N, 3)), masses=[MASS] * N)
        state = RingPolymerState.from_atoms(atoms, P, T, seeds=11)
        pimd = PathIntegralMD(
            provider, state, PIMDIntegrator(DT_FS * units.fs, PILE_L(TAU_FS * units.fs))
        )
        log = pimd.log(1, NAMES)
        q2_series: list[float] = []
        pimd.attach(lambda: q2_series.append(np.mean(np.sum(pimd.state.positions**2, -1))))
        pimd.run(STEPS)
    finally:
        theirs = ipi.wait(timeout=300)
    ours = log.arrays()
    assert len(theirs["step"]) == STEPS + 1, "i-PI did not complete its run"
    ref = exact(P, T, MASS, omega)
    q2 = block_mean(np.array(q2_series[EQUIL:]))
    assert abs(q2[0] - ref["q2"]) < 4 * q2[1] and q2[1] < 0.02 * ref["q2"], (q2, ref["q2"])
    for name in NAMES:
        scale = 1.0 if name == "r_gyration" else 1.0 / N
        a = block_mean(ours[name][EQUIL:, 0] * scale)
        b = block_mean(theirs[name][EQUIL:] * scale)
        print(f"{name}: ours {a[0]:.5f} ± {a[1]:.5f}, i-PI {b[0]:.5f} ± {b[1]:.5f}")
        assert a[1] < 0.02 * abs(a[0]) and b[1] < 0.02 * abs(b[0])
        assert abs(a[0] - b[0]) < 4 * np.hypot(a[1], b[1]), name
        if name != "r_gyration":
            for mean, err in (a, b):
                assert abs(mean - ref["kinetic"]) < 4 * err, (name, mean, ref, err)
