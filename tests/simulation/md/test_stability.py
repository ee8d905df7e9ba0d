"""Stability tool: Hessian vs analytic/ASE, the 2/ω bound, and a Morse dimer experiment."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.morse import MorsePotential
from ase.cluster import Icosahedron

from mlipserve.server.models.builtin import MORSE_CU
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import Integrator, langevin_baoab, velocity_verlet
from mlipserve.simulation.md.stability import (
    hessians,
    max_angular_frequency,
    max_stable_timestep,
    propagation_matrix,
)
from mlipserve.simulation.md.state import MDState

EPS, R0, RHO0 = MORSE_CU["epsilon"], MORSE_CU["r0"], MORSE_CU["rho0"]
K_MORSE = 2 * EPS * RHO0**2 / R0**2  # d²E/dr² at r0 for ε[e^{−2ρ(r/r0−1)} − 2e^{−ρ(r/r0−1)}]


class CountingProvider:
    """A real provider that counts its evaluate calls and systems."""

    def __init__(self, inner) -> None:
        self.inner, self.calls, self.systems = inner, 0, 0

    def evaluate(self, systems, properties=("energy", "forces")):
        self.calls += 1
        self.systems += len(systems)
        return self.inner.evaluate(systems, properties)


@pytest.fixture(scope="module")
def morse():
    return LocalProvider("morse")


def dimer(stretch: float = 0.0, masses=None) -> Atoms:
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [R0 + stretch, 0, 0]], masses=masses)
    atoms.center(vacuum=6.0)
    return atoms


def test_hessians_match_ase_and_analytic_in_one_call(morse):
    cluster = Icosahedron("Cu", 2)
    cluster.center(vacuum=5.0)
    cluster.rattle(0.05, seed=2)
    provider = CountingProvider(morse)
    h_cluster, h_dimer = hessians(provider, [cluster, dimer()], delta=1e-3)
    assert provider.calls == 1 and provider.systems == 6 * 13 + 6 * 2
    # Reference 1: central differences of ASE's own MorsePotential (independent code).
    ref = cluster.copy()
    ref.calc = MorsePotential(**MORSE_CU)
    x0 = ref.positions.copy().reshape(-1)
    columns = []
    for j in range(x0.size):
        f = []
        for sign in (1, -1):
            x = x0.copy()
            x[j] += sign * 1e-3
            ref.positions = x.reshape(-1, 3)
            f.append(ref.get_forces().reshape(-1))
        columns.append(-(f[0] - f[1]) / 2e-3)
    ref_h = np.array(columns).T
    assert np.abs(h_cluster - 0.5 * (ref_h + ref_h.T)).max() < 1e-8  # eV/Å²
    # Reference 2: the dimer's stretch constant, analytically; the rest are zero modes.
    eig = np.linalg.eigvalsh(h_dimer)
    assert eig[-1] == pytest.approx(2 * K_MORSE, rel=1e-5)
    assert np.abs(eig[:-1]).max() < 1e-5


def test_mass_weighted_frequency_of_an_unequal_dimer(morse):
    m1, m2 = 63.546, 7.0
    omega = max_angular_frequency(morse, [dimer(masses=[m1, m2])])
    assert omega[0] == pytest.approx(np.sqrt(K_MORSE * (1 / m1 + 1 / m2)), rel=1e-5)
    with pytest.raises(ValueError, match="1 mass arrays for 2 systems"):
        max_angular_frequency(morse, [dimer(), dimer()], masses=[[m1, m2]])
    with pytest.raises(ValueError, match="delta must be positive"):
        hessians(morse, [dimer()], delta=0.0)


@pytest.mark.parametrize("splitting", ["BAB", "BAOAB", "OBABO"])
@pytest.mark.parametrize("gamma_over_omega", [0.0, 0.01, 0.3, 2.0, 50.0])
def test_bound_is_two_over_omega_for_any_friction(splitting, gamma_over_omega):
    omega = 0.37
    h = max_stable_timestep(omega, splitting, gamma_over_omega * omega)
    assert h == pytest.approx(2 / omega, rel=1e-8)


def test_baoab_mean_map_has_the_closed_form_trace_and_determinant():
    # Independent derivation: det M = c, tr M = (1 + c)(1 − ω²h²/2), c = e^{−γh}.
    rng = np.random.default_rng(0)
    for wh, gh in rng.uniform(0, 3, size=(20, 2)):
        m = propagation_matrix(1.0, wh, "BAOAB", gh / wh)
        c = np.exp(-gh)
        assert np.linalg.det(m) == pytest.approx(c, rel=1e-12)
        assert np.trace(m) == pytest.approx((1 + c) * (1 - wh**2 / 2), abs=1e-12)
    vv = propagation_matrix(1.0, 1.5, "BAB")
    assert np.allclose(vv, [[1 - 1.5**2 / 2, 1.5], [-1.5 * (1 - 1.5**2 / 4), 1 - 1.5**2 / 2]])


def excursion(
    provider, integrator: Integrator, replicas: int, steps: int, stop: float = np.inf
) -> np.ndarray:
    """Largest |r − r0| per replica of a dimer started 2e-4 Å stretched (ends once all > stop)."""
    state = MDState.from_atoms([dimer(2e-4) for _ in range(replicas)], seeds=range(replicas))
    md = MolecularDynamics(provider, state, integrator)
    worst = np.zeros(replicas)
    for _ in range(steps // 20):
        md.run(20)
        pos = md.state.positions.reshape(replicas, 2, 3)
        worst = np.maximum(worst, np.abs(np.linalg.norm(pos[:, 1] - pos[:, 0], axis=1) - R0))
        if worst.min() > stop or not np.isfinite(worst).all():
            break
    return worst


def test_dimer_just_below_the_bound_is_stable_and_just_above_diverges(morse):
    # The bound comes from the tool (provider Hessian at the minimum), not from the formula.
    probe = MolecularDynamics(morse, MDState.from_atoms(dimer()), velocity_verlet(1 * units.fs))
    report = probe.check_timestep()
    m = dimer().get_masses()[0]
    assert report.omega_max[0] == pytest.approx(np.sqrt(2 * K_MORSE / m), rel=1e-5)
    bound = report.dt_max[0]
    frictions = [0.05 / bound, 0.5 / bound]  # γh ≈ 0.05 and 0.5: weak and strong friction
    # 0.98×: 500 steps (~160 periods) stay within the linear regime (start 2e-4 Å; the VV
    # amplitude near the bound is ~5× the start, the noise at 0.01 K adds ~1e-3 Å).
    vv = excursion(morse, velocity_verlet(0.98 * bound), 1, 500)
    lang = excursion(morse, langevin_baoab(0.98 * bound, 0.01, frictions), 2, 500)
    assert vv.max() < 5e-3 and lang.max() < 5e-3, (vv, lang)
    # 1.02×: the mode grows by |λ| ≈ 1.2–1.5 per step. Without friction the dimer blows
    # apart; with friction Morse's softening saturates the growth near 0.1 Å, so the test
    # asks for growth past 0.05 Å (250× the start) rather than for an explosion.
    vv = excursion(morse, velocity_verlet(1.02 * bound), 1, 500, stop=1.0)
    lang = excursion(morse, langevin_baoab(1.02 * bound, 0.01, frictions), 2, 500, stop=0.05)
    assert vv.min() > 1.0, vv
    assert lang.min() > 0.05, lang


def test_run_warns_only_when_dt_exceeds_the_bound(morse):
    bound = 2 / np.sqrt(2 * K_MORSE / dimer().get_masses()[0])
    state = MDState.from_atoms([dimer(1e-4), dimer(-1e-4)])
    over = MolecularDynamics(
        morse, state, langevin_baoab(1.02 * bound, 1.0, [0.0, 0.01]), check_stability=True
    )
    with pytest.warns(RuntimeWarning, match="exceeds the linear stability bound"):
        over.run(1)
    assert not over.stability.stable.any()
    under = MolecularDynamics(morse, state, velocity_verlet(0.98 * bound), check_stability=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        under.run(1)
    assert under.stability.stable.all()
    assert "dt_max" in under.stability.summary()
