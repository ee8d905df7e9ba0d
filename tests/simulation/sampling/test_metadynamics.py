"""Well-tempered metadynamics of a served double well: F = −γ/(γ−1) V_bias against exact V(x)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units

from mlipserve.server.models.analytic import double_well
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation.sampling.cvs import Dihedral, Position
from mlipserve.simulation.sampling.metadynamics import (
    WellTemperedMetadynamics,
    run_metadynamics,
)
from tests.simulation.counting import CountingProvider

HEIGHT, A, T = 0.1, 1.0, 300.0
KT = units.kB * T


def potential(x):
    return HEIGHT * ((x / A) ** 2 - 1) ** 2


@pytest.fixture(scope="module")
def well():
    return LocalProvider(double_well(height=HEIGHT, a=A, k_perp=1.0))


@pytest.fixture(scope="module")
def metad(well):
    """4 independent copies × 4 walkers, all started in the left well, 1500 steps of 5 fs."""
    counting = CountingProvider(well)
    atoms = Atoms("H", positions=[[-1.0, 0.0, 0.0]], cell=[20.0, 20.0, 20.0])
    result = run_metadynamics(
        counting,
        atoms,
        [Position(0, 0)],
        sigma=0.1,
        height=0.005,
        bias_factor=6.0,
        temperature_K=T,
        dt=0.5,
        friction=1.0,
        steps=1500,
        pace=10,
        walkers=4,
        copies=4,
        seed=0,
    )
    return result, counting


def test_walkers_share_one_call_and_deposit(metad):
    result, counting = metad
    assert counting.sizes == [16] * 1501  # every walker of every copy in each call
    assert result.bias.n_gaussians == 16 * 151  # step 0 and every 10 steps, each walker
    assert result.values.shape == (151, 16, 1)
    # Later Gaussians are tempered: w = w0 exp(−V/kΔT) < w0 once the bias has grown.
    assert result.bias.heights[-16:].max() < 0.8 * 0.005
    # Walkers crossed the barrier: every copy visited the right well.
    x = result.values[:, :, 0]
    for copy in range(4):
        assert (x[:, copy * 4 : (copy + 1) * 4] > 0.8).any()


def test_double_well_free_energy_matches_exact(metad, tmp_path):
    """F(x) = −γ/(γ−1) V(x) against the exact V(x), relative to x = −1.

    σ is the standard error over the 4 independent copies. Barrier within 3σ (observed
    0.097 ± 0.005 eV vs 0.1 eV over seeds 1-3); every grid point in |x| ≤ 1.2 within
    4σ + 0.25 kT, the allowance for the Gaussian smoothing (σ_G = 0.1 Å) and the residual
    non-convergence of a 1500-step run (observed max deviation 0.3-0.6 kT, max |z| 2.6).
    """
    result, _ = metad
    grid = np.linspace(-1.4, 1.4, 29)
    prof = result.profile(grid, reference=-1.0)
    exact = potential(grid) - potential(-1.0)
    barrier, err = prof.barrier((-0.05, 0.05))
    assert 0.0 < err < 0.4 * KT
    assert abs(barrier - HEIGHT) < 3 * err
    inner = np.abs(grid) <= 1.2
    dev = np.abs(prof.free_energy - exact)[inner]
    assert np.all(dev < 4 * prof.error[inner] + 0.25 * KT), np.round(dev / KT, 2)
    png = prof.plot(tmp_path / "metad.png", reference=(grid, exact))
    assert png.stat().st_size > 5000


def test_two_cv_metadynamics_surface(well, tmp_path):
    """Two CVs (x, y), one copy of 6 walkers, 600 steps: against F(x, y) = V(x) + ½ k_perp y².

    Loose checks of a short run (observed in brackets): the left minimum on the grid at
    (−1, 0) ± one grid step [(−1.0, 0.0)], F(0, 0) − F(min) = 0.1 ± 0.04 eV [0.108], and the
    harmonic rise in y at x = −0.4, ½ k_perp 0.3² = 0.045 eV, within 0.02-0.08 eV [0.041].
    """
    atoms = Atoms("H", positions=[[-1.0, 0.0, 0.0]], cell=[20.0, 20.0, 20.0])
    result = run_metadynamics(
        well,
        atoms,
        [Position(0, 0), Position(0, 1)],
        sigma=[0.1, 0.1],
        height=0.005,
        bias_factor=6.0,
        temperature_K=T,
        dt=0.5,
        friction=1.0,
        steps=600,
        pace=10,
        walkers=6,
        copies=1,
        seed=3,
    )
    gx, gy = np.linspace(-1.4, 1.4, 29), np.linspace(-0.3, 0.3, 7)
    free, err = result.surface(gx, gy)
    assert free.shape == (29, 7) and err.shape == (29, 7)
    left = free[gx < 0]
    i, j = np.unravel_index(np.argmin(left), left.shape)
    assert abs(gx[gx < 0][i] + 1.0) <= 0.2 and abs(gy[j]) <= 0.1
    saddle = free[14, 3] - left.min()
    assert abs(saddle - HEIGHT) < 0.04
    rise = 0.5 * (free[10, 0] + free[10, -1]) - free[10, 3]
    assert 0.02 < rise < 0.08
    png = result.plot_surface(gx, gy, tmp_path / "surface.png")
    assert png.stat().st_size > 5000


def test_periodic_cv_gaussians_wrap():
    """A Gaussian at φ = π − 0.05 biases φ = −π + 0.05 as if 0.1 rad away (dihedral period)."""
    bias = WellTemperedMetadynamics(
        [Dihedral(0, 1, 2, 3)],
        sigma=0.1,
        height=0.01,
        bias_factor=5.0,
        temperature_K=300.0,
        n_replicas=1,
    )
    bias.deposit(np.array([[np.pi - 0.05]]))
    v, dv = bias.energy(np.array([[-np.pi + 0.05]]))
    assert v[0] == pytest.approx(0.01 * np.exp(-0.5), rel=1e-9)
    assert dv[0, 0] == pytest.approx(-0.01 * np.exp(-0.5) * 0.1 / 0.01, rel=1e-9)


def test_bad_input_raises(well):
    atoms = Atoms("H", positions=[[0.0, 0.0, 0.0]], cell=[20.0] * 3)
    cv = Position(0, 0)
    with pytest.raises(ValueError, match="bias factor"):
        WellTemperedMetadynamics([cv], 0.1, 0.01, 1.0, 300.0, 1)
    with pytest.raises(ValueError, match="one or two CVs"):
        WellTemperedMetadynamics([cv, cv, cv], 0.1, 0.01, 5.0, 300.0, 1)
    with pytest.raises(ValueError, match="evenly"):
        WellTemperedMetadynamics([cv], 0.1, 0.01, 5.0, 300.0, 3, copies=2)
    with pytest.raises(ValueError, match="sigma"):
        WellTemperedMetadynamics([cv], [0.1, 0.2], 0.01, 5.0, 300.0, 1)
    with pytest.raises(ValueError, match="pace"):
        run_metadynamics(
            well, atoms, [cv], 0.1, 0.01, 5.0, 300.0, dt=0.5, friction=1.0, steps=10, pace=0
        )
