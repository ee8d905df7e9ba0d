"""g(r) against ASE's own rdf and the ideal gas; first-shell figures against an analytic g(r);
the water checks (molecules intact, temperature, drift) on constructed frames."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.geometry.rdf import get_rdf
from scipy.integrate import quad

from mlipserve.simulation.properties.rdf import first_shell, rdf
from mlipserve.simulation.properties.water import (
    energy_drift,
    hydrogen_owners,
    oh_lengths,
    temperature_stats,
    water_integrity,
    water_lattice,
)


def _frames(n: int = 3) -> list[Atoms]:
    frames = []
    for seed in range(n):
        box = water_lattice(3, seed=seed)  # 27 waters, L = 9.32 Å
        box.rattle(0.15, seed=seed)
        frames.append(box)
    return frames


@pytest.mark.parametrize("elements", [("O", "O"), ("O", "H"), None])
def test_rdf_matches_ase_within_half_the_box(elements):
    frames = _frames()
    r_max = 0.49 * frames[0].cell[0, 0]
    r, g = rdf(frames, r_max, 60, elements)
    g_ase, r_ase = get_rdf(frames, r_max, 60, elements=elements)
    assert np.allclose(r, r_ase) and np.allclose(g, g_ase, rtol=1e-12, atol=1e-12)
    assert g.max() > 1.0  # not trivially zero


def test_ideal_gas_tends_to_one_past_half_the_box():
    rng = np.random.default_rng(0)
    n, side = 60, 7.0
    frames = [
        Atoms(f"Ar{n}", positions=rng.uniform(0, side, (n, 3)), cell=[side] * 3, pbc=True)
        for _ in range(15)
    ]
    r, g = rdf(frames, 6.5, 13)  # past L/2 = 3.5 (and below L: no self-image at r = L)
    far = r > 4.0  # needs pairs beyond the minimum image; a minimum-image count drops there
    expected = (n - 1) / n  # independent uniform points: each atom sees N - 1 others
    assert np.mean(g[far]) == pytest.approx(expected, abs=0.01)
    assert np.all(np.abs(g[r > 2.0] - expected) < 0.06)


def test_first_shell_of_an_analytic_g():
    def g_of(x):
        return 1 + 1.6 * np.exp(-((x - 2.8) ** 2) / 0.02) - 0.7 * np.exp(-((x - 3.45) ** 2) / 0.05)

    r = np.arange(0.025, 6.0, 0.05)
    shell = first_shell(r, g_of(r), density=0.033)
    assert shell["peak_r_A"] == pytest.approx(2.8, abs=0.03)
    assert shell["peak_g"] == pytest.approx(g_of(r).max(), abs=1e-9)
    x = np.linspace(3.2, 3.7, 5001)
    r_min = x[np.argmin(g_of(x))]
    assert shell["min_r_A"] == pytest.approx(r_min, abs=0.06)
    coordination = 4 * np.pi * 0.033 * quad(lambda s: g_of(s) * s * s, 0, shell["min_r_A"])[0]
    assert shell["coordination"] == pytest.approx(coordination, rel=0.03)


def test_water_integrity_sees_a_broken_bond_and_survives_wrapping():
    mono = molecule("H2O").positions
    bond = np.linalg.norm(mono[1] - mono[0])  # ASE's g2 water, 0.969 Å
    box = water_lattice(2, seed=1)
    box.positions += 2.9  # molecules cross the faces
    box.wrap()
    owners = hydrogen_owners(box)
    assert owners.tolist() == [0, 0, 3, 3, 6, 6, 9, 9, 12, 12, 15, 15, 18, 18, 21, 21]
    assert np.allclose(oh_lengths([box]), bond)
    frames = [water_lattice(2, seed=1) for _ in range(6)]
    for f in frames[2:4]:
        f.positions[4] += 0.5 * (f.positions[4] - f.positions[3])  # O-H 4 stretched to 1.45
    report = water_integrity(frames)
    assert not report["molecules_intact"] and report["longest_broken_run_frames"] == 2
    assert report["broken_frame_fraction"] == pytest.approx(2 / 6)
    assert report["max_oh_A"] > 1.35
    assert water_integrity(frames, hold=3)["molecules_intact"]  # not held for 3 frames
    assert water_integrity(frames[:2])["max_oh_A"] == pytest.approx(bond)


def test_water_lattice_density_and_temperature_and_drift_figures():
    box = water_lattice(2)
    grams = box.get_masses().sum() / 6.02214076e23
    assert grams / (box.get_volume() * 1e-24) == pytest.approx(1.0, rel=2e-3)  # ASE masses
    t = 300 + np.tile([-10.0, 10.0], 50)
    stats = temperature_stats(t, 300.0, block=10)
    assert stats["mean_K"] == pytest.approx(300) and stats["std_K"] == pytest.approx(10)
    assert stats["max_abs_dev_K"] == pytest.approx(10) and stats["max_abs_block_dev_K"] < 1e-9
    time_ps = np.linspace(0, 2, 21)
    drift = energy_drift(time_ps, 0.024 * time_ps - 5.0, n_atoms=24)  # 1 meV/atom/ps
    assert drift["drift_meV_per_atom_per_ps"] == pytest.approx(1.0)
