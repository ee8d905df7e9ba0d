"""Batched MD against independent references: ASE's Verlet, dt² error, equipartition, P → 0."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.morse import MorsePotential
from ase.cluster import Icosahedron
from ase.io import read
from ase.md.verlet import VelocityVerlet
from scipy.optimize import brentq

from mlipserve.server.models.builtin import MORSE_CU
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import (
    BerendsenBarostat,
    Integrator,
    langevin_baoab,
    velocity_verlet,
)
from mlipserve.simulation.md.state import MDState

FS = units.fs


def cluster(seed: int = 1, rattle: float = 0.05):
    """A 13-atom Cu icosahedron (Morse), rattled, in vacuum."""
    atoms = Icosahedron("Cu", 2)
    atoms.center(vacuum=5.0)
    atoms.rattle(rattle, seed=seed)
    return atoms


@pytest.fixture(scope="module")
def morse():
    return LocalProvider("morse")


def test_velocity_verlet_matches_ase_verlet(morse):
    # Reference: ASE's VelocityVerlet driving ASE's own MorsePotential (independent forces).
    atoms = cluster()
    state = MDState.from_atoms(atoms, temperature_K=300, seeds=7)
    ref = state.to_atoms(0)
    ref.calc = MorsePotential(**MORSE_CU)
    VelocityVerlet(ref, timestep=2 * FS).run(200)
    md = MolecularDynamics(morse, state, velocity_verlet(2 * FS))
    md.run(200)
    assert md.calls == 201  # one force call per step plus the initial one
    assert np.abs(md.state.positions - ref.positions).max() < 1e-10
    assert np.abs(md.state.momenta - ref.get_momenta()).max() < 1e-10
    assert md.state.energy[0] == pytest.approx(ref.get_potential_energy(), abs=1e-10)


def energy_error(provider, atoms, dt: float, total: float) -> float:
    """max |E(t) − E(0)| over a run of `total` time with VV at step dt."""
    md = MolecularDynamics(
        provider, MDState.from_atoms(atoms, temperature_K=600, seeds=3), velocity_verlet(dt)
    )
    log = md.log_energies(1)
    md.run(round(total / dt))
    e = log.arrays()["conserved"][:, 0]
    return float(np.abs(e - e[0]).max())


def test_nve_energy_error_is_second_order_and_drift_bounded(morse):
    atoms = cluster()
    errors = [energy_error(morse, atoms, dt * FS, 160 * FS) for dt in (4.0, 2.0, 1.0)]
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(3.0 < r < 5.0 for r in ratios), (errors, ratios)  # dt² → 4 per halving
    md = MolecularDynamics(
        morse, MDState.from_atoms(atoms, temperature_K=600, seeds=3), velocity_verlet(4 * FS)
    )
    log = md.log_energies(1)
    md.run(1500)  # 6 ps
    e = log.arrays()["conserved"][:, 0]
    drift = abs(e[-300:].mean() - e[:300].mean())
    assert drift < 0.5 * errors[0]  # over 6 ps the mean moves less than the dt² oscillation
    assert np.abs(e - e[0]).max() < 1.5 * errors[0]  # and the oscillation does not grow


def test_langevin_equipartition_over_batched_replicas(morse):
    replicas, target = 16, 300.0
    state = MDState.from_atoms(
        [cluster(seed=s) for s in range(replicas)], temperature_K=target, seeds=range(replicas)
    )
    md = MolecularDynamics(morse, state, langevin_baoab(2 * FS, target, 0.1 / FS))
    log = md.log_energies(1)
    md.run(250)
    assert md.calls == 251  # 16 replicas, one call per step
    temps = log.arrays()["temperature"][50:]  # after 10 relaxation times 1/γ
    per_replica = temps.mean(0)
    stderr = per_replica.std(ddof=1) / np.sqrt(replicas)  # replicas are independent
    assert stderr < 0.03 * target  # the test can tell a 10 % error
    assert abs(per_replica.mean() - target) < 3.5 * stderr, (per_replica.mean(), stderr)


def test_langevin_thermostat_energy_closes_the_balance(morse):
    # i-PI's check: E_pot + E_kin + (energy taken by the thermostat) stays constant.
    state = MDState.from_atoms([cluster(1), cluster(2)], temperature_K=50, seeds=[1, 2])
    md = MolecularDynamics(morse, state, langevin_baoab(1 * FS, [600.0, 900.0], 0.02 / FS))
    log = md.log_energies(1)
    md.run(300)
    data = log.arrays()
    exchanged = np.abs(data["conserved"] - data["energy"] - data["kinetic"]).max(0)
    drift = np.abs(data["conserved"] - data["conserved"][0]).max(0)
    assert np.all(exchanged > 0.5)  # heating 50 K → 600/900 K moves > 0.5 eV through O
    assert np.all(drift < 1e-3 * exchanged), (drift, exchanged)


def test_batched_replicas_equal_separate_runs(morse):
    images = [cluster(1), cluster(2, rattle=0.1), bulk("Cu", "fcc", a=3.62, cubic=True)]
    images[2].rattle(0.05, seed=3)
    temps, frictions, seeds = [300.0, 500.0, 100.0], [0.01 / FS, 0.05 / FS, 0.002 / FS], [4, 5, 6]
    batched = MolecularDynamics(
        morse,
        MDState.from_atoms(images, temperature_K=temps, seeds=seeds),
        langevin_baoab(2 * FS, temps, frictions),
    )
    batched.run(40)
    for r, atoms in enumerate(images):
        alone = MolecularDynamics(
            morse,
            MDState.from_atoms(atoms, temperature_K=temps[r], seeds=seeds[r]),
            langevin_baoab(2 * FS, temps[r], frictions[r]),
        )
        alone.run(40)
        sl = batched.state.replica_slice(r)
        assert np.abs(batched.state.positions[sl] - alone.state.positions).max() < 1e-10
        assert np.abs(batched.state.momenta[sl] - alone.state.momenta).max() < 1e-10
        assert batched.state.thermostat_energy[r] == pytest.approx(
            alone.state.thermostat_energy[0], abs=1e-10
        )


def test_remote_and_in_process_give_the_same_trajectory(server, morse):
    images = [cluster(1), cluster(2)]
    integrator = langevin_baoab(2 * FS, [300.0, 600.0], 0.02 / FS)
    remote = RemoteProvider(server.address, "morse")
    try:
        far = MolecularDynamics(remote, MDState.from_atoms(images, 300, seeds=[1, 2]), integrator)
        far.run(60)
    finally:
        remote.close()
    near = MolecularDynamics(morse, MDState.from_atoms(images, 300, seeds=[1, 2]), integrator)
    near.run(60)
    assert np.abs(far.state.positions - near.state.positions).max() <= 1e-10
    assert np.abs(far.state.energy - near.state.energy).max() <= 1e-10


def test_berendsen_npt_relaxes_to_the_zero_pressure_lattice(morse):
    # Reference: the lattice constant where ASE's MorsePotential gives zero static pressure.
    def static_pressure(a: float) -> float:
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        atoms.calc = MorsePotential(**MORSE_CU)
        return -atoms.get_stress()[:3].mean()

    a0 = brentq(static_pressure, 3.5, 3.8, xtol=1e-8)
    start = bulk("Cu", "fcc", a=3.55, cubic=True)  # 4 atoms, ~9 GPa
    state = MDState.from_atoms(start, temperature_K=10, seeds=0)
    md = MolecularDynamics(
        morse,
        state,
        langevin_baoab(2 * FS, 10.0, 0.02 / FS),
        barostat=BerendsenBarostat(0.0, tau=100 * FS, compressibility=1 / (140 * units.GPa)),
    )
    assert md.properties == ("energy", "forces", "stress")
    log = md.log_energies(1)
    md.run(250)
    data = log.arrays()
    assert data["pressure"][0, 0] > 5 * units.GPa
    assert abs(data["pressure"][-100:, 0].mean()) < 0.2 * units.GPa
    assert data["volume"][-100:, 0].mean() == pytest.approx(a0**3, rel=2e-3)  # from 6 % off


def test_observers_trajectories_and_progress(morse, tmp_path):
    images = [cluster(1), cluster(2)]
    md = MolecularDynamics(
        morse,
        MDState.from_atoms(images, 300, seeds=[1, 2]),
        langevin_baoab(2 * FS, 300.0, 0.02 / FS),
    )
    seen: list[int] = []
    md.attach(lambda tag: seen.append((tag, md.state.step)), 5, "x")
    xyz = md.write_trajectory(tmp_path / "run_{replica}.extxyz", interval=5)
    traj = md.write_trajectory([tmp_path / "a.traj", tmp_path / "b.traj"], interval=10)
    md.run(20, progress=True)
    xyz.close()
    traj.close()
    assert [s for _, s in seen] == [0, 5, 10, 15, 20]
    for r, name in enumerate(["a.traj", "b.traj"]):
        frames = read(tmp_path / name, index=":")
        assert len(frames) == 3
        assert np.array_equal(frames[-1].positions, md.state.positions[md.state.replica_slice(r)])
        assert frames[-1].get_potential_energy() == md.state.energy[r]
        frames = read(tmp_path / f"run_{r}.extxyz", index=":")
        assert len(frames) == 5
        assert np.allclose(
            frames[-1].positions, md.state.positions[md.state.replica_slice(r)], atol=1e-6
        )
        assert np.allclose(
            frames[-1].get_momenta(), md.state.momenta[md.state.replica_slice(r)], atol=1e-6
        )


def test_bad_input_is_refused_clearly(morse):
    atoms = cluster()
    with pytest.raises(ValueError, match="time step must be positive"):
        velocity_verlet(0.0)
    with pytest.raises(ValueError, match="force calls per step"):
        Integrator(1 * FS, "ABOBA")
    state = MDState.from_atoms([atoms, atoms], 300)
    with pytest.raises(ValueError, match="temperature_K has 3 values for 2 replicas"):
        MolecularDynamics(morse, state, langevin_baoab(1 * FS, [300, 300, 300], 0.01))
    with pytest.raises(ValueError, match="momenta has shape"):
        state.replace(momenta=state.momenta[:-1])
    with pytest.raises(ValueError, match="seeds has 1 values for 2 replicas"):
        MDState.from_atoms([atoms, atoms], 300, seeds=[1])
    with pytest.raises(ValueError, match="periodic"):
        MolecularDynamics(morse, state, velocity_verlet(FS), barostat=BerendsenBarostat())
    with pytest.raises(ValueError, match="pattern"):
        MolecularDynamics(morse, state, velocity_verlet(FS)).write_trajectory("one.extxyz")
