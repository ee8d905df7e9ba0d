"""The conformance suite every served model family must pass (import and parametrize it).

Checks: forces = -dE/dx and stress = (1/V) dE/dε by central finite differences;
translation, rotation and permutation invariance; a batch of two equals two calls;
float32 close to float64; no jump in energy or force when a neighbour crosses the cutoff
(a dimer pulled apart, and a periodic cell strained through a pair distance equal to the
cutoff: energy, forces and stress continuous there, the energy's second differences along
the scan free of spikes, and the stress equal to the scan's finite-difference dE/dε).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from mlipserve.server.serving.local import LocalProvider


def test_system(symbol: str = "Cu", a: float = 3.7, seed: int = 3) -> Atoms:
    """A rattled, slightly sheared periodic cell of 8 atoms."""
    atoms = bulk(symbol, "fcc", a=a, cubic=True) * (2, 1, 1)
    atoms.set_cell(
        atoms.cell.array @ np.array([[1, 0.04, 0], [0, 1, 0.03], [0.02, 0, 1]]), scale_atoms=True
    )
    atoms.rattle(0.1, seed=seed)
    return atoms


def energy(provider: LocalProvider, atoms: Atoms) -> float:
    return provider.evaluate([atoms], ["energy"])[0]["energy"]


def check_forces_are_gradient(provider: LocalProvider, atoms: Atoms, h=1e-5, rtol=1e-6) -> None:
    forces = provider.evaluate([atoms], ["energy", "forces"])[0]["forces"]
    numeric = np.zeros_like(forces)
    for i in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, k] += h
            minus.positions[i, k] -= h
            numeric[i, k] = -(energy(provider, plus) - energy(provider, minus)) / (2 * h)
    assert np.abs(forces - numeric).max() <= rtol * max(np.abs(numeric).max(), 1e-3)


def check_stress_is_strain_derivative(provider: LocalProvider, atoms: Atoms, h=1e-6, rtol=1e-6):
    stress = provider.evaluate([atoms], ["energy", "stress"])[0]["stress"]
    numeric = np.zeros((3, 3))
    cell = atoms.cell.array
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = h / 2 if a != b else h
            vals = []
            for sign in (1, -1):
                strained = atoms.copy()
                strained.set_cell(cell @ (np.eye(3) + sign * eps), scale_atoms=True)
                vals.append(energy(provider, strained))
            numeric[a, b] = (vals[0] - vals[1]) / (2 * h) / atoms.get_volume()
    voigt = numeric[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    assert np.abs(stress - voigt).max() <= rtol * max(np.abs(voigt).max(), 1e-4)


def check_invariances(provider: LocalProvider, atoms: Atoms, atol=1e-9) -> None:
    ref = provider.evaluate([atoms])[0]
    moved = atoms.copy()
    moved.positions += [0.31, -0.7, 1.3]
    rotated = atoms.copy()
    rotated.rotate(37, (1, 2, 3), rotate_cell=True)
    perm = np.random.default_rng(0).permutation(len(atoms))
    permuted = atoms[perm]
    res_moved, res_rot, res_perm = provider.evaluate([moved, rotated, permuted])
    scale = max(1.0, abs(ref["energy"]))
    for res in (res_moved, res_rot, res_perm):
        assert abs(res["energy"] - ref["energy"]) <= atol * scale
    assert np.allclose(res_moved["forces"], ref["forces"], atol=atol)
    R = rotated.cell.array.T @ np.linalg.inv(atoms.cell.array.T)
    assert np.allclose(res_rot["forces"], ref["forces"] @ R.T, atol=atol)
    assert np.allclose(res_perm["forces"], ref["forces"][perm], atol=atol)


def check_batch_equals_single_calls(provider: LocalProvider, a: Atoms, b: Atoms, atol=1e-10):
    props = ["energy", "forces", "stress", "energies"]
    pair = provider.evaluate([a, b], props)
    for system, res in zip((a, b), pair):
        single = provider.evaluate([system], props)[0]
        for key in props:
            assert np.allclose(res[key], single[key], atol=atol, rtol=0), key


def check_dtypes_agree(p64: LocalProvider, p32: LocalProvider, atoms: Atoms, rtol=1e-4) -> None:
    r64, r32 = p64.evaluate([atoms])[0], p32.evaluate([atoms])[0]
    assert abs(r32["energy"] - r64["energy"]) <= rtol * max(1.0, abs(r64["energy"]))
    assert np.abs(r32["forces"] - r64["forces"]).max() <= rtol * max(
        1.0, np.abs(r64["forces"]).max()
    )


def check_smooth_at_cutoff(provider: LocalProvider, symbol: str, cutoff: float) -> None:
    """A dimer pulled across the cutoff: energy and force join the isolated atoms' smoothly."""

    def res(r: float) -> dict:
        dimer = Atoms(f"{symbol}2", positions=[[0, 0, 0], [r, 0, 0]])
        return provider.evaluate([dimer])[0]

    far, inside, outside = res(3 * cutoff), res(cutoff - 1e-7), res(cutoff + 1e-7)
    assert outside["energy"] == far["energy"] and np.abs(outside["forces"]).max() == 0.0
    assert abs(inside["energy"] - far["energy"]) < 1e-9
    assert np.abs(inside["forces"]).max() < 1e-6


def strain_scan(
    provider: LocalProvider, atoms: Atoms, strains: np.ndarray, axes=(1.0, 1.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Energies along cells C(I + ε diag(axes)) and dE/dε at each ε from the stress."""
    d = np.diag(np.asarray(axes, float))
    frames = []
    for eps in strains:
        strained = atoms.copy()
        strained.set_cell(atoms.cell.array @ (np.eye(3) + eps * d), scale_atoms=True)
        frames.append(strained)
    results = provider.evaluate(frames, ["energy", "stress"])
    energies = np.array([r["energy"] for r in results])
    slope = np.array(
        [
            f.get_volume() * sum(r["stress"][a] * d[a, a] / (1 + e * d[a, a]) for a in range(3))
            for f, r, e in zip(frames, results, strains)
        ]
    )
    return energies, slope


def scan_roughness(energies: np.ndarray) -> tuple[float, float]:
    """(largest deviation of the energy's second differences from a quadratic in ε, their
    typical size): a jump Δ in E shows as a ±Δ pair of deviations."""
    d2 = np.diff(energies, 2)
    x = np.linspace(-1, 1, len(d2))
    smooth = np.polyval(np.polyfit(x, d2, 2), x)
    return float(np.abs(d2 - smooth).max()), float(np.median(np.abs(d2)))


def scan_stress_error(energies: np.ndarray, slope: np.ndarray, h: float) -> float:
    """Largest |dE/dε from the stress − central finite difference of the scan (step h)|."""
    return float(np.abs(slope[1:-1] - (energies[2:] - energies[:-2]) / (2 * h)).max())


def crossing_scale(atoms: Atoms, cutoff: float) -> float:
    """The isotropic scale at which the pair distance nearest the cutoff equals it."""
    dist = neighbor_list("d", atoms, 1.2 * cutoff)
    return cutoff / dist[np.argmin(np.abs(dist - cutoff))]


def check_continuous_at(provider: LocalProvider, atoms: Atoms, delta: float = 1e-9) -> None:
    """Energy, forces and stress just inside and just outside a scale (1 ∓ delta) agree."""
    pair = []
    for sign in (-1, 1):
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell.array * (1 + sign * delta), scale_atoms=True)
        pair.append(scaled)
    inside, outside = provider.evaluate(pair, ["energy", "forces", "stress"])
    smooth_change = 2 * delta * atoms.get_volume() * sum(inside["stress"][:3])  # dE/dε · 2δ
    change = outside["energy"] - inside["energy"]
    assert abs(change - smooth_change) <= 1e-9 + 0.1 * abs(smooth_change), (change, smooth_change)
    assert np.abs(inside["forces"] - outside["forces"]).max() <= 1e-6
    assert np.abs(inside["stress"] - outside["stress"]).max() <= 1e-7


def check_smooth_through_cutoff_scan(
    provider: LocalProvider, atoms: Atoms, cutoff: float, width: float = 2e-3, steps: int = 41
) -> None:
    """A periodic cell scaled through a pair distance equal to the cutoff: E, F and stress
    continuous at the crossing, no spikes in the second differences, stress = dE/dε."""
    base = atoms.copy()
    base.set_cell(atoms.cell.array * crossing_scale(atoms, cutoff), scale_atoms=True)
    check_continuous_at(provider, base)
    strains = np.linspace(-width, width, steps)
    energies, slope = strain_scan(provider, base, strains)
    rough, typical = scan_roughness(energies)
    assert rough <= 0.25 * typical + 1e-9, (rough, typical)
    err = scan_stress_error(energies, slope, strains[1] - strains[0])
    assert err <= 1e-4 * np.abs(slope).max() + 1e-7, err
