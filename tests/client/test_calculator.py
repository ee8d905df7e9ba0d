"""RemoteCalculator: ASE dynamics on remote forces equal the in-process run."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from mlipserve.client import RemoteCalculator
from mlipserve.server.models.builtin import lennard_jones
from mlipserve.server.serving.local import LocalProvider


class LocalCalculator(Calculator):
    """The same model in-process, through the LocalProvider (the reference run)."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, provider):
        super().__init__()
        self.provider = provider

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        res = self.provider.evaluate([self.atoms], ["energy", "forces"])[0]
        self.results = {
            "energy": res["energy"],
            "free_energy": res["energy"],
            "forces": res["forces"],
        }


def start_atoms():
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=4)
    MaxwellBoltzmannDistribution(atoms, temperature_K=80, rng=np.random.default_rng(5))
    return atoms


def run_md(atoms, calc, steps=200):
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=5 * units.fs)
    frames = []
    dyn.attach(lambda: frames.append(atoms.positions.copy()), interval=1)
    dyn.run(steps)
    return np.array(frames)


@pytest.mark.parametrize("stream", [True, False])
def test_velocity_verlet_remote_equals_in_process(server, stream):
    remote = start_atoms()
    with RemoteCalculator(server.address, "lj", stream=stream) as calc:
        traj_remote = run_md(remote, calc)
    traj_local = run_md(start_atoms(), LocalCalculator(LocalProvider(lennard_jones())))
    assert traj_remote.shape == (201, 32, 3)
    assert np.abs(traj_remote - traj_local).max() <= 1e-12
    assert np.abs(traj_remote[-1] - traj_remote[0]).max() > 0.05  # the atoms did move


def test_results_cached_until_atoms_change(server):
    atoms = start_atoms()
    batcher = server.registry.get("lj").batcher
    with RemoteCalculator(server.address, "lj") as calc:
        atoms.calc = calc
        before = batcher.batches_run
        atoms.get_forces()
        atoms.get_potential_energy()
        atoms.get_forces()
        assert batcher.batches_run == before + 1
        atoms.positions[0, 0] += 0.01
        atoms.get_potential_energy()
        assert batcher.batches_run == before + 2


def test_stress_energies_and_uncertainty(server):
    atoms = start_atoms()
    with RemoteCalculator(server.address, "lj-ensemble", uncertainty=True) as calc:
        atoms.calc = calc
        stress = atoms.get_stress()
        energies = atoms.get_potential_energies()
        assert stress.shape == (6,)
        assert energies.sum() == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
        assert calc.results["energy_std"] > 0
        assert calc.results["forces_std"].shape == (32,)
        assert calc.results["model"] == "lj-ensemble"


def test_ase_optimizer_runs_unchanged(server):
    atoms = bulk("Cu", cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=1)
    with RemoteCalculator(server.address, "emt") as calc:
        atoms.calc = calc
        assert BFGS(atoms, logfile=None).run(fmax=0.01, steps=100)
        assert np.abs(atoms.get_forces()).max() < 0.01
