"""RemoteCalculator: ASE dynamics on remote forces equal the in-process run."""

from __future__ import annotations

import copy
import gc
import threading

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
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
        assert calc.extras["energy_std"] > 0
        assert calc.extras["forces_std"].shape == (32,)
        assert calc.extras["model"] == "lj-ensemble"
        assert set(calc.results) <= set(calc.implemented_properties)


def test_ase_optimizer_runs_unchanged(server):
    atoms = bulk("Cu", cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=1)
    with RemoteCalculator(server.address, "emt") as calc:
        atoms.calc = calc
        assert BFGS(atoms, logfile=None).run(fmax=0.01, steps=100)
        assert np.abs(atoms.get_forces()).max() < 0.01


def test_results_hold_only_ase_names_so_single_point_copies_work(server):
    atoms = start_atoms()
    with RemoteCalculator(server.address, "lj-ensemble", uncertainty=True) as calc:
        atoms.calc = calc
        energy = atoms.get_potential_energy()
        frozen = atoms.copy()
        frozen.calc = SinglePointCalculator(frozen, **calc.results)  # ASE's own NEB tests do this
        assert frozen.get_potential_energy() == energy
        assert set(calc.results) == {"energy", "free_energy", "forces", "stress", "energies"}


def test_one_call_per_state_brings_stress_and_energies(server):
    atoms = start_atoms()
    batcher = server.registry.get("lj").batcher
    with RemoteCalculator(server.address, "lj") as calc:
        atoms.calc = calc
        before = batcher.batches_run
        atoms.get_forces()
        atoms.get_stress()
        atoms.get_potential_energies()
        assert batcher.batches_run == before + 1  # EMT does the same: one calculation


def test_changed_conditions_are_a_new_state(server):
    atoms = start_atoms()
    batcher = server.registry.get("lj").batcher
    with RemoteCalculator(server.address, "lj") as calc:
        atoms.calc = calc
        atoms.get_potential_energy()
        before = batcher.batches_run
        atoms.info["charge"] = 1.0
        atoms.get_potential_energy()
        atoms.get_potential_energy()
        assert batcher.batches_run == before + 1


def test_a_calculator_shared_by_threads_gives_each_its_own_results(server):
    """8 threads, 8 different structures, one calculator: every energy is its structure's."""
    systems = []
    for i in range(8):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.rattle(0.05, seed=i)
        systems.append(atoms)
    expected = []
    for atoms in systems:
        ref = atoms.copy()
        ref.calc = EMT()
        expected.append(ref.get_potential_energy())
    calc = RemoteCalculator(server.address, "emt")
    wrong: list[tuple[int, float, float]] = []

    def work(i: int) -> None:
        for _ in range(10):
            mine = systems[i].copy()
            energy = calc.get_property("energy", mine)
            if abs(energy - expected[i]) > 1e-9:
                wrong.append((i, energy, expected[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    calc.close()
    assert not any(th.is_alive() for th in threads)
    assert not wrong, wrong[:3]


def test_unsupported_properties_and_elements_are_ase_errors(server):
    atoms = bulk("Cu", "fcc", a=3.61)
    with RemoteCalculator(server.address, "emt") as calc:
        atoms.calc = calc
        with pytest.raises(PropertyNotImplementedError):
            atoms.calc.get_property("magmom", atoms)
        iron = bulk("Fe", "bcc", a=2.87)
        iron.calc = calc
        with pytest.raises(NotImplementedError, match=r"\['Fe'\]"):
            iron.get_potential_energy()


def test_deepcopy_and_todict(server):
    atoms = start_atoms()
    with RemoteCalculator(server.address, "lj", uncertainty=False) as calc:
        atoms.calc = calc
        energy = atoms.get_potential_energy()
        twin = copy.deepcopy(calc)
        assert (
            twin.todict()
            == calc.todict()
            == {
                "target": [server.address],
                "model": "lj",
                "stream": True,
                "uncertainty": False,
                "harvest": True,
            }
        )
        other = start_atoms()
        other.calc = twin
        assert other.get_potential_energy() == energy
    twin.close()


def test_forgotten_calculators_release_their_streams(server):
    atoms = start_atoms()
    baseline = threading.active_count()
    for _ in range(20):
        atoms.calc = RemoteCalculator(server.address, "lj")
        atoms.get_potential_energy()
    atoms.calc = None
    gc.collect()
    for _ in range(50):  # the watchdog threads end within their 0.1 s period
        if threading.active_count() <= baseline + 2:
            break
        threading.Event().wait(0.1)
    assert threading.active_count() <= baseline + 2


def test_flags_reach_python_users_once_per_calculator(server):
    """Cu on the argon committee: zero forces by symmetry, energy std of tens of eV/atom; the
    flag arrives as one TrustWarning per kind, not one per step."""
    from mlipserve.client import TrustWarning

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    with RemoteCalculator(server.address, "lj-ensemble", uncertainty=True) as calc:
        atoms.calc = calc
        with pytest.warns(TrustWarning, match="untrusted: energy std") as caught:
            for i in range(5):
                atoms.positions[0, 0] += 1e-3 * i
                atoms.get_potential_energy()
        assert len([w for w in caught if "energy std" in str(w.message)]) == 1
        assert any("energy std" in f for f in calc.extras["warnings"])
