"""Batched FIRE relaxation against ASE's own optimizers on the same potential (EMT)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE

from mlipserve.server.models.builtin import emt_model
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.relax import relax_batch


class CountingProvider:
    """A real provider that records every call's batch size and properties."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[tuple[int, tuple[str, ...]]] = []

    def evaluate(self, systems, properties=("energy", "forces")):
        self.calls.append((len(systems), tuple(properties)))
        return self.inner.evaluate(systems, properties)


@pytest.fixture(scope="module")
def emt():
    return LocalProvider(emt_model())


def vacancy_cell(symbol: str, seed: int, site: int = 0):
    atoms = bulk(symbol, "fcc", cubic=True) * (2, 2, 1)
    del atoms[site]
    atoms.rattle(0.05, seed=seed)
    return atoms


def ase_fire(atoms, fmax=0.05, steps=500, cell=False):
    atoms = atoms.copy()
    atoms.calc = EMT()
    opt = FIRE(FrechetCellFilter(atoms) if cell else atoms, logfile=None)
    opt.run(fmax=fmax, steps=steps)
    return atoms, opt.nsteps


def test_single_system_follows_ase_fire_step_for_step(emt):
    atoms = vacancy_cell("Cu", seed=3)
    for steps in (1, 2, 7):
        ref, _ = ase_fire(atoms, steps=steps)
        (res,) = relax_batch(emt, [atoms], max_steps=steps, progress=False)
        assert res.steps == steps and not res.converged
        assert np.abs(res.atoms.positions - ref.positions).max() < 1e-12
    ref, nsteps = ase_fire(atoms)
    (res,) = relax_batch(emt, [atoms], progress=False)
    assert res.converged and res.steps == nsteps > 10
    assert np.abs(res.atoms.positions - ref.positions).max() < 1e-10
    assert res.energy == pytest.approx(ref.get_potential_energy(), abs=1e-10)
    assert res.fmax < 0.05 and res.fmax == pytest.approx(
        np.linalg.norm(ref.get_forces(), axis=1).max()
    )
    assert np.array_equal(atoms.positions, vacancy_cell("Cu", seed=3).positions)  # input untouched


def test_energies_match_ase_fire_and_bfgs_per_system(emt):
    systems = [vacancy_cell(s, seed=i, site=i) for i, s in enumerate(["Cu", "Au", "Ni", "Pt"])]
    results = relax_batch(emt, systems, fmax=0.01, progress=False)
    for atoms, res in zip(systems, results):
        ref, nsteps = ase_fire(atoms, fmax=0.01)
        assert res.converged and res.steps == nsteps
        assert res.energy == pytest.approx(ref.get_potential_energy(), abs=1e-8)
        bfgs = atoms.copy()
        bfgs.calc = EMT()
        BFGS(bfgs, logfile=None).run(fmax=0.01)
        assert abs(res.energy - bfgs.get_potential_energy()) < 1e-3  # 1 meV
        assert res.energy < emt.evaluate([atoms])[0]["energy"] - 1e-3
        assert res.atoms.get_potential_energy() == res.energy
        assert (
            np.abs(res.atoms.get_forces()).max()
            < 0.01
            < np.abs(atoms.positions - res.atoms.positions).max()
        )


def test_converged_system_takes_no_steps_and_leaves_the_batch(emt):
    perfect = bulk("Cu", "fcc", cubic=True) * (2, 2, 1)  # forces vanish by symmetry
    systems = [perfect, vacancy_cell("Cu", seed=1), vacancy_cell("Au", seed=2)]
    counting = CountingProvider(emt)
    results = relax_batch(counting, systems, progress=False)
    assert results[0].steps == 0 and results[0].converged and results[0].fmax < 1e-10
    assert np.array_equal(results[0].atoms.positions, perfect.positions)
    assert results[1].steps > 5 and results[2].steps > 5
    sizes = [n for n, _ in counting.calls]
    assert sizes[0] == 3 and max(sizes[1:]) == 2  # the converged cell left after call 1
    assert len(counting.calls) == max(r.steps for r in results) + 1  # one call per iteration
    assert counting.calls[0][1] == ("energy", "forces")  # no stress without relax_cell


def test_refilling_from_the_queue_gives_the_same_results(emt):
    systems = [vacancy_cell("Cu", seed=s, site=s) for s in range(5)]
    whole = relax_batch(emt, systems, progress=False)
    counting = CountingProvider(emt)
    queued = relax_batch(counting, systems, batch_size=2, progress=True)
    assert max(n for n, _ in counting.calls) == 2
    assert len(counting.calls) > max(r.steps for r in whole) + 1  # queue made more calls
    for a, b in zip(whole, queued):
        assert a.steps == b.steps and a.converged and b.converged
        assert np.abs(a.atoms.positions - b.atoms.positions).max() < 1e-12
        assert a.energy == pytest.approx(b.energy, abs=1e-12)


def test_max_steps_stops_without_convergence(emt):
    (res,) = relax_batch(emt, [vacancy_cell("Pt", seed=5)], fmax=1e-4, max_steps=4, progress=False)
    assert res.steps == 4 and not res.converged and res.fmax > 1e-4


def test_cell_relaxation_matches_ase_frechet_cell_filter(emt):
    strained = bulk("Cu", "fcc", a=3.75, cubic=True)
    strained.rattle(0.01, seed=4)
    counting = CountingProvider(emt)
    (res,) = relax_batch(counting, [strained], relax_cell=True, fmax=0.005, progress=False)
    ref, nsteps = ase_fire(strained, fmax=0.005, cell=True)
    a_ours = np.cbrt(res.atoms.get_volume())
    a_ref = np.cbrt(ref.get_volume())
    assert res.converged and res.steps == nsteps
    assert abs(a_ours - a_ref) < 1e-3  # Å, lattice constant of the 4-atom cubic cell
    assert np.abs(res.atoms.cell.array - ref.cell.array).max() < 1e-8
    assert abs(a_ref - 3.75) > 0.1  # it really moved (EMT Cu: a ≈ 3.59 Å)
    assert counting.calls[0][1] == ("energy", "forces", "stress")
    assert np.abs(res.atoms.get_stress()).max() < 0.005 / res.atoms.get_volume() * 4
    (shape,) = relax_batch(
        emt,
        [strained],
        relax_cell=True,
        max_steps=5,
        progress=False,
        cell_filter_kwargs={"hydrostatic_strain": True},
    )
    ratios = shape.atoms.cell.lengths() / strained.cell.lengths()
    assert shape.steps == 5 and np.ptp(ratios) < 1e-10 and ratios[0] < 0.99  # shrinks, stays cubic


def test_remote_provider_relaxes_like_the_local_one(server, emt):
    systems = [vacancy_cell("Cu", seed=7), vacancy_cell("Ag", seed=8)]
    local = relax_batch(emt, systems, progress=False)
    remote_provider = RemoteProvider(server.address, "emt")
    try:
        remote = relax_batch(remote_provider, systems, progress=False)
    finally:
        remote_provider.close()
    for a, b in zip(local, remote):
        assert a.steps == b.steps and a.energy == b.energy


def test_bad_input_is_refused(emt):
    cell = vacancy_cell("Cu", seed=0)
    with pytest.raises(ValueError, match="fmax"):
        relax_batch(emt, [cell], fmax=0.0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        relax_batch(emt, [cell], batch_size=0, progress=False)
    with pytest.raises(ValueError, match="periodic"):
        relax_batch(emt, [molecule("N2")], relax_cell=True, progress=False)
    with pytest.raises(ValueError, match="ase.Atoms"):
        relax_batch(emt, [cell.positions], progress=False)
    assert relax_batch(emt, [], progress=False) == []
