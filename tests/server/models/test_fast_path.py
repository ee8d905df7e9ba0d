"""The served PaiNN path against a plain reference, and the reused Verlet neighbour list.

The reference evaluates each member on its own with straightforward tensor code (ASE's
neighbour list, the PaiNN equations written out, one autograd call per member for forces
and stress) on the committed default weights in float64: the served, batched path must
give the same numbers to 1e-10.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.neighborlist import neighbor_list
from ase.stress import full_3x3_to_voigt_6_stress

from mlipserve.server.models.batch import SystemBatch
from mlipserve.server.models.builtin import SHIPPED
from mlipserve.server.models.neighbors import VerletNeighbors, batch_neighbors
from mlipserve.server.models.torch_potential import TorchPotential
from mlipserve.server.store import ModelStore
from mlipserve.wire import SystemArrays

PROPS = frozenset({"energy", "forces", "stress", "uncertainty"})


@pytest.fixture(scope="module")
def model() -> TorchPotential:
    return ModelStore(SHIPPED).load("default", dtype="float64", device="cpu")


def _mlp(mlp, k: int, x: torch.Tensor) -> torch.Tensor:
    hidden = torch.nn.functional.silu(x @ mlp.a.weight[k] + mlp.a.bias[k])
    return hidden @ mlp.b.weight[k] + mlp.b.bias[k]


def member_energy(net, k: int, z, pos, cell, i, j, shift) -> torch.Tensor:
    """Member k's energy, the PaiNN equations written out (architecture 2)."""
    cfg = net.cfg
    vec = pos[j] - pos[i] + shift @ cell
    r = torch.sqrt((vec * vec).sum(1))
    unit, d = vec / r[:, None], r / cfg.cutoff
    u = 1 - 28 * d**6 + 48 * d**7 - 21 * d**8  # p = 6 envelope, all d < 1 here
    basis = torch.sin(net.frequencies * d[:, None]) / d[:, None]  # nπ as stored (float32)
    f = cfg.features
    s = net.embedding[k][z]
    v = torch.zeros(len(z), 3, f, dtype=pos.dtype)
    for layer in net.layers:
        phi = _mlp(layer.phi, k, s) / cfg.avg_neighbors
        filt = (basis @ layer.filter.weight[k] + layer.filter.bias[k]) * u[:, None]
        ds = phi[j, :f] * filt[:, :f]
        dvv = phi[j, f : 2 * f] * filt[:, f : 2 * f]
        dvs = phi[j, 2 * f :] * filt[:, 2 * f :]
        msg = dvs[:, None, :] * unit[:, :, None] + v[j] * dvv[:, None, :]
        s = s + torch.zeros_like(s).index_add(0, i, ds)
        v = v + torch.zeros_like(v).index_add(0, i, msg)
        mu, mv = v @ layer.mix_u.weight[k], v @ layer.mix_v.weight[k]
        a = _mlp(layer.update, k, torch.cat([s, torch.sqrt((mv * mv).sum(1) + 1e-8)], 1))
        v = v + a[:, None, :f] * mu
        s = s + a[:, 2 * f :] + a[:, f : 2 * f] * (mu * mv).sum(1)
    energies = _mlp(net.readout, k, s)[:, 0] * net.scale + net.shift[z]
    return energies.sum()


def reference(net, atoms: Atoms) -> dict[str, np.ndarray]:
    """Energy, forces, stress and their spread, one member and one autograd call at a time."""
    i, j, shift = neighbor_list("ijS", atoms, net.cfg.cutoff)
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    z, i, j = (torch.tensor(x, dtype=torch.long) for x in (atoms.numbers, i, j))
    energies, forces, stresses = [], [], []
    for k in range(net.cfg.members):
        pos = t(atoms.positions).requires_grad_(True)
        strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
        sym = 0.5 * (strain + strain.T)
        cell = t(atoms.cell.array)
        e = member_energy(net, k, z, pos + pos @ sym, cell + cell @ sym, i, j, t(shift))
        g_pos, g_strain = torch.autograd.grad(e, [pos, strain])
        energies.append(e.item())
        forces.append(-g_pos.numpy())
        if atoms.pbc.all():
            stresses.append(g_strain.numpy() / atoms.get_volume())
    f = np.array(forces)
    out = {
        "energy": np.mean(energies),
        "energy_std": np.std(energies),
        "forces": f.mean(0),
        "forces_std": np.sqrt(((f - f.mean(0)) ** 2).sum(-1).mean(0)),
    }
    if stresses:
        out["stress"] = full_3x3_to_voigt_6_stress(np.mean(stresses, 0))
    return out


def alloy_cell() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    atoms.numbers[::3], atoms.numbers[1::5] = 79, 28  # Au and Ni on some sites
    atoms.rattle(0.08, seed=3)
    return atoms


def cluster() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 1)
    atoms.numbers[::4] = 46
    atoms.pbc = False
    atoms.rattle(0.05, seed=4)
    return atoms


@pytest.mark.parametrize("make", [alloy_cell, cluster], ids=["periodic", "cluster"])
def test_served_path_matches_the_plain_reference(model, make):
    atoms = make()
    got = model.compute(SystemBatch.single(SystemArrays.from_atoms(atoms)), PROPS)
    want = reference(model.module, atoms)
    assert abs(want["energy_std"]) > 1e-4  # the members differ: the spread is not trivial
    for key, value in want.items():
        np.testing.assert_allclose(np.ravel(got[key]), np.ravel(value), rtol=0, atol=1e-10)
    if atoms.pbc.all():
        assert np.abs(got["stress"]).max() > 1e-4


def pair_set(edge_index: np.ndarray, edge_shift: np.ndarray) -> set:
    return {(a, b, *s) for a, b, s in zip(*edge_index.tolist(), edge_shift.astype(int).tolist())}


def hot_trajectory(steps: int) -> list[Atoms]:
    """A 32-atom Cu cell under EMT at 3000 K: atoms move well beyond the skin."""
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=3000, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, timestep=2.0 * 1e-15 * 1e15 * 0.09822694788464063)  # 2 fs
    frames = []
    for _ in range(steps):
        dyn.run(1)
        frames.append(atoms.copy())
    return frames


def test_verlet_list_is_exact_and_rebuilds_only_when_needed(model):
    frames = hot_trajectory(40)
    travel = np.linalg.norm(frames[-1].positions - frames[0].positions, axis=1).max()
    skin = 0.3
    assert travel > 2 * skin  # rebuilds are needed along the way
    verlet = VerletNeighbors(model.info.cutoff, skin)
    plain = TorchPotential(model.module, model.info)
    plain.neighbors = VerletNeighbors(model.info.cutoff, 0.0)
    model.neighbors = VerletNeighbors(model.info.cutoff, skin)
    for atoms in frames:
        batch = SystemBatch.single(SystemArrays.from_atoms(atoms))
        fresh = batch_neighbors(batch, model.info.cutoff)
        assert pair_set(*verlet(batch)) == pair_set(*fresh)
        a, b = model.compute(batch, PROPS), plain.compute(batch, PROPS)
        for key in ("energy", "forces", "stress", "forces_std"):
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-10)
    assert 2 <= verlet.rebuilds < len(frames) // 2
    assert model.neighbors.rebuilds == verlet.rebuilds


def test_verlet_list_rebuilds_on_a_new_cell_or_new_atoms():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    verlet = VerletNeighbors(4.0, 0.5)
    verlet(SystemBatch.single(SystemArrays.from_atoms(atoms)))
    verlet(SystemBatch.single(SystemArrays.from_atoms(atoms)))
    assert verlet.rebuilds == 1
    strained = atoms.copy()
    strained.set_cell(atoms.cell.array * 1.01, scale_atoms=False)
    batch = SystemBatch.single(SystemArrays.from_atoms(strained))
    assert pair_set(*verlet(batch)) == pair_set(*batch_neighbors(batch, 4.0))
    alloy = atoms.copy()
    alloy.numbers[0] = 79
    verlet(SystemBatch.single(SystemArrays.from_atoms(alloy)))
    assert verlet.rebuilds == 3


def test_negative_skin_is_refused(monkeypatch, model):
    with pytest.raises(ValueError, match="skin"):
        VerletNeighbors(5.0, -0.1)
    monkeypatch.setenv("MLIPSERVE_NEIGHBOR_SKIN", "wide")
    with pytest.raises(ValueError, match="MLIPSERVE_NEIGHBOR_SKIN"):
        TorchPotential(model.module, model.info)


def test_a_failing_compiled_model_falls_back_to_eager(model, monkeypatch):
    monkeypatch.setenv("MLIPSERVE_COMPILE", "maybe")
    with pytest.raises(ValueError, match="MLIPSERVE_COMPILE"):
        TorchPotential(model.module, model.info)
    monkeypatch.setenv("MLIPSERVE_COMPILE", "1")  # compiles lazily: nothing is built yet
    assert TorchPotential(model.module, model.info).compiled is not None
    monkeypatch.delenv("MLIPSERVE_COMPILE")
    batch = SystemBatch.single(SystemArrays.from_atoms(alloy_cell()))
    want = model.compute(batch, PROPS)
    served = TorchPotential(model.module, model.info)
    assert served.compiled is None  # opt-in only

    def broken(graph):
        raise RuntimeError("inductor could not build a kernel")

    served.compiled = broken
    got = served.compute(batch, PROPS)
    assert served.compiled is None  # eager from now on
    np.testing.assert_allclose(got["forces"], want["forces"], rtol=0, atol=1e-12)
