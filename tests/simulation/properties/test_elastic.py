"""Elastic constants against ASE/EMT energy curvature and a pair potential's analytic values."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.eos import EquationOfState
from ase.units import GPa
from scipy.optimize import brentq

from mlipserve.server.models.builtin import LJ_ARGON, lennard_jones
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation.properties.elastic import (
    cubic_born_criteria,
    elastic_moduli,
    elastic_tensor,
    strain_matrix,
)
from mlipserve.simulation.properties.stress import deformed


def emt_curvature(atoms, voigt_direction: np.ndarray, h: float = 1e-3) -> float:
    """d²(E/V)/dt² at t = 0 for the strain t·direction, 5-point stencil, ASE's EMT directly."""
    energies = []
    for k in (-2, -1, 1, 2, 0):
        strained = deformed(atoms, np.eye(3) + strain_matrix(k * h * voigt_direction))
        strained.calc = EMT()
        energies.append(strained.get_potential_energy())
    em2, em1, ep1, ep2, e0 = energies
    second = (-ep2 + 16 * ep1 - 30 * e0 + 16 * em1 - em2) / (12 * h * h)
    return second / atoms.get_volume() / GPa


def test_emt_copper_matches_energy_strain_curvature_and_eos(emt, cu_ref):
    atoms = bulk("Cu", "fcc", a=cu_ref[0], cubic=True)
    res = elastic_tensor(emt, atoms)
    C = res.C
    c11 = emt_curvature(atoms, np.array([1.0, 0, 0, 0, 0, 0]))
    c11_plus_c12 = emt_curvature(atoms, np.array([1.0, 1.0, 0, 0, 0, 0])) / 2
    c44 = emt_curvature(atoms, np.array([0, 0, 0, 1.0, 0, 0]))
    # stress–strain (code) vs energy–strain (ASE) on the same potential: 0.05 GPa
    for i in range(3):
        assert C[i, i] == pytest.approx(c11, abs=0.05)
        assert C[3 + i, 3 + i] == pytest.approx(c44, abs=0.05)
        for j in range(3):
            if i != j:
                assert C[i, j] == pytest.approx(c11_plus_c12 - c11, abs=0.05)
    # cubic: no coupling between normal and shear strains
    assert np.abs(C[:3, 3:]).max() < 1e-3 and np.abs(C[3:, :3]).max() < 1e-3
    assert np.abs(res.reference_stress).max() < 1e-3  # GPa: the reference is relaxed
    # bulk modulus from an independent E(V) fit with ASE's EMT (1 %)
    volumes, energies = [], []
    for s in np.linspace(0.98, 1.02, 9):
        cell = bulk("Cu", "fcc", a=cu_ref[0] * s)
        cell.calc = EMT()
        volumes.append(cell.get_volume())
        energies.append(cell.get_potential_energy())
    eos = EquationOfState(volumes, energies, eos="birchmurnaghan")
    _, _, bulk_modulus = eos.fit()
    assert res.moduli["K_V"] == pytest.approx(bulk_modulus / GPa, rel=0.01)
    assert res.moduli["K_R"] == pytest.approx(res.moduli["K_V"], rel=1e-6)  # cubic: K_V = K_R
    assert res.moduli["G_R"] < res.moduli["G_H"] < res.moduli["G_V"]  # Cu is anisotropic
    assert res.born_stable and all(cubic_born_criteria(C).values())
    # fcc: every atom a centre of inversion, no internal relaxation: relaxed-ion = clamped
    relaxed = elastic_tensor(emt, atoms * (2, 1, 1), relax_ions=True)
    assert np.abs(relaxed.C - C).max() < 0.05


def smooth_lj(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """φ, φ', φ'' of the served LJ: 4ε[(σ/r)¹²−(σ/r)⁶] × ASE's cutoff of r² (rc, ro = 0.66 rc)."""
    sig, eps, rc = LJ_ARGON["sigma"], LJ_ARGON["epsilon"], LJ_ARGON["rc"]
    ro = 0.66 * rc
    s6 = (sig / r) ** 6
    u = 4 * eps * (s6 * s6 - s6)
    du = 4 * eps * (-12 * s6 * s6 + 6 * s6) / r
    d2u = 4 * eps * (156 * s6 * s6 - 42 * s6) / r**2
    x, rc2, ro2 = r * r, rc * rc, ro * ro
    inside = x < ro2
    norm = (rc2 - ro2) ** 3
    f = np.where(inside, 1.0, (rc2 - x) ** 2 * (rc2 + 2 * x - 3 * ro2) / norm)
    df_dx = np.where(
        inside, 0.0, (-2 * (rc2 - x) * (rc2 + 2 * x - 3 * ro2) + 2 * (rc2 - x) ** 2) / norm
    )
    d2f_dx2 = np.where(inside, 0.0, (2 * (rc2 + 2 * x - 3 * ro2) - 8 * (rc2 - x)) / norm)
    df = df_dx * 2 * r
    d2f = d2f_dx2 * 4 * x + df_dx * 2
    return u * f, du * f + u * df, d2u * f + 2 * du * df + u * d2f


def fcc_shells(a: float, rc: float) -> np.ndarray:
    """Every fcc lattice vector (a/2)(h, k, l), h + k + l even, with 0 < |r| < rc."""
    n = int(np.ceil(2 * rc / a)) + 1
    grid = np.array(np.meshgrid(*[np.arange(-n, n + 1)] * 3, indexing="ij")).reshape(3, -1).T
    grid = grid[(grid.sum(axis=1) % 2 == 0) & (np.abs(grid).sum(axis=1) > 0)]
    vectors = grid * a / 2
    r = np.linalg.norm(vectors, axis=1)
    return vectors[r < rc]


def test_lennard_jones_matches_analytic_born_constants_and_cauchy():
    rc = LJ_ARGON["rc"]

    def pressure_term(a: float) -> float:  # Σ φ'(r) r, zero at the equilibrium a
        r = np.linalg.norm(fcc_shells(a, rc), axis=1)
        return float((smooth_lj(r)[1] * r).sum())

    a0 = brentq(pressure_term, 5.0, 5.6, xtol=1e-12)
    vec = fcc_shells(a0, rc)
    r = np.linalg.norm(vec, axis=1)
    _, d1, d2 = smooth_lj(r)
    weight = (d2 - d1 / r) / r**2 / (2 * a0**3 / 4) / GPa  # per-atom volume a³/4
    c11 = float((weight * vec[:, 0] ** 4).sum())
    c12 = float((weight * vec[:, 0] ** 2 * vec[:, 1] ** 2).sum())
    provider = LocalProvider(lennard_jones())
    res = elastic_tensor(provider, bulk("Ar", "fcc", a=a0, cubic=True) * (2, 2, 2))
    C = res.C
    assert C[0, 0] == pytest.approx(c11, rel=1e-6)
    assert C[0, 1] == pytest.approx(c12, rel=1e-6)
    assert C[3, 3] == pytest.approx(c12, rel=1e-6)  # Cauchy relation of central pair forces
    assert C[3, 3] == pytest.approx(C[0, 1], rel=1e-6)


def test_moduli_of_an_isotropic_tensor_and_born_criteria():
    lam, mu = 100.0, 40.0
    C = np.zeros((6, 6))
    C[:3, :3] = lam
    C[np.arange(3), np.arange(3)] = lam + 2 * mu
    C[np.arange(3, 6), np.arange(3, 6)] = mu
    moduli = elastic_moduli(C)
    for kind in ("V", "R", "H"):
        assert moduli[f"K_{kind}"] == pytest.approx(lam + 2 * mu / 3, rel=1e-12)
        assert moduli[f"G_{kind}"] == pytest.approx(mu, rel=1e-12)
    unstable = C.copy()
    unstable[np.arange(3), np.arange(3)] = lam - 10  # C11 < C12
    crit = cubic_born_criteria(unstable)
    assert crit == {"C11-C12>0": False, "C11+2C12>0": True, "C44>0": True}
    assert np.linalg.eigvalsh(unstable).min() < 0


def test_bad_input(emt):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    for strains in ((), (0.2,), (0.01, 0.01), (-0.01,)):
        with pytest.raises(ValueError, match="strains"):
            elastic_tensor(emt, atoms, strains)
    with pytest.raises(ValueError, match="6×6"):
        elastic_moduli(np.eye(3))
