"""The long-range family (PaiNN + Coulomb through torch-pme): Madelung constants, the Coulomb
stress, convergence with the pinned accuracy, the shared conformance suite on biased weights
(fixed and predicted charges), and the request checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from mlipserve.server.models.batch import SystemBatch
from mlipserve.server.models.electrostatics import COULOMB, EwaldParameters
from mlipserve.server.models.families import native_potential
from mlipserve.server.models.longrange import LongRangeConfig, LongRangePaiNN
from mlipserve.server.serving.checks import InvalidInput
from mlipserve.server.serving.local import LocalProvider
from mlipserve.wire import SystemArrays
from tests.server.models import conformance as conf

# Exact Madelung constants (nearest-neighbour distance units); the 1.6381 for
# zincblende is this value rounded to five digits.
MADELUNG = {"nacl": 1.747564594633, "cscl": 1.762674773070, "zincblende": 1.638055053388}
NACL = {"11": 1.0, "17": -1.0}


def model(
    charges="fixed", dtype="float64", biased=True, accuracy=1e-6, coulomb_cutoff=5.0, method="ewald"
):
    """A tiny two-member long-range ensemble; `biased`: every bias drawn from N(0, 1)."""
    torch.manual_seed(0)
    cfg = LongRangeConfig(
        cutoff=4.0, features=8, radial=6, layers=2, members=2, max_z=55, charges=charges,
        element_charges=NACL | {"55": 1.0, "30": 1.0, "16": -1.0} if charges == "fixed" else {},
        coulomb_cutoff=coulomb_cutoff, accuracy=accuracy, method=method,
    )  # fmt: skip
    module = LongRangePaiNN(cfg)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("bias") and biased:
                param.copy_(torch.randn(param.shape, generator=generator, dtype=torch.float64))
    return LocalProvider(native_potential(module, "lr", dtype=dtype))


def pure_coulomb(accuracy: float, cutoff: float = 6.0, method: str = "ewald") -> LocalProvider:
    """Fixed ±1 charges and no short-range energy at all."""
    provider = model(accuracy=accuracy, coulomb_cutoff=cutoff, method=method)
    module = provider.model.module
    with torch.no_grad():
        for p in module.short.readout.parameters():
            p.zero_()
        module.short.shift.zero_()
    return provider


def lattice(kind: str, d: float = 2.8) -> Atoms:
    """A cubic cell of the lattice with nearest-neighbour distance d, ≥ 6 Å wide."""
    if kind == "nacl":
        atoms = bulk("NaCl", "rocksalt", a=2 * d, cubic=True)
    elif kind == "cscl":
        atoms = bulk("CsCl", "cesiumchloride", a=2 * d / np.sqrt(3))
    else:
        atoms = bulk("ZnS", "zincblende", a=4 * d / np.sqrt(3), cubic=True)
    reps = int(np.ceil(6.0 / atoms.cell.lengths().min()))
    return atoms * (reps, reps, reps)


def madelung(provider: LocalProvider, atoms: Atoms, d: float = 2.8) -> float:
    energy = provider.evaluate([atoms], ["energy"])[0]["energy"]
    return -energy * d / (len(atoms) / 2) / COULOMB


@pytest.mark.parametrize("kind", list(MADELUNG))
def test_madelung_constants_to_1e_6(kind):
    value = madelung(pure_coulomb(1e-8), lattice(kind))
    assert abs(value - MADELUNG[kind]) / MADELUNG[kind] < 1e-6, value


def test_energy_converges_as_the_pinned_accuracy_says():
    atoms = lattice("cscl")
    errors = [
        abs(madelung(pure_coulomb(acc), atoms) - MADELUNG["cscl"]) / MADELUNG["cscl"]
        for acc in (1e-3, 1e-5, 1e-7)
    ]
    assert all(err <= acc for err, acc in zip(errors, (1e-3, 1e-5, 1e-7))), errors
    assert errors[0] > errors[1] > errors[2], errors
    # a shorter real-space cutoff at the same accuracy: same energy within it
    short = madelung(pure_coulomb(1e-7, cutoff=4.0), atoms)
    assert abs(short - MADELUNG["cscl"]) / MADELUNG["cscl"] < 1e-7


def test_pme_meets_the_pinned_accuracy_on_1000_ions():
    atoms = bulk("NaCl", "rocksalt", a=5.6, cubic=True) * (5, 5, 5)
    value = madelung(pure_coulomb(1e-6, cutoff=8.0, method="pme"), atoms)
    assert abs(value - MADELUNG["nacl"]) / MADELUNG["nacl"] < 1e-6, value


def test_stress_of_a_coulomb_lattice_is_minus_energy_over_3v():
    atoms = lattice("nacl")
    res = pure_coulomb(1e-8).evaluate([atoms], ["energy", "stress"])[0]
    expected = -res["energy"] / (3 * atoms.get_volume())
    assert np.allclose(res["stress"][:3], expected, rtol=1e-6, atol=0)
    assert np.abs(res["stress"][3:]).max() < 1e-9 * abs(expected)


def ionic_cell(seed: int = 3) -> Atoms:
    """A rattled, slightly sheared 16-ion NaCl cell."""
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (2, 1, 1)
    atoms.set_cell(
        atoms.cell.array @ np.array([[1, 0.04, 0], [0, 1, 0.03], [0.02, 0, 1]]), scale_atoms=True
    )
    atoms.rattle(0.1, seed=seed)
    return atoms


@pytest.fixture(params=["fixed", "predicted"], scope="module")
def charges(request):
    return request.param


def test_conformance_on_biased_weights(charges):
    provider, atoms = model(charges), ionic_cell()
    conf.check_forces_are_gradient(provider, atoms)
    conf.check_stress_is_strain_derivative(provider, atoms)
    conf.check_invariances(provider, atoms)
    conf.check_batch_equals_single_calls(provider, atoms, ionic_cell(11) * (1, 2, 1))
    conf.check_dtypes_agree(provider, model(charges, "float32"), atoms)


def test_smooth_through_both_cutoffs(charges):
    provider, atoms = model(charges), ionic_cell()
    for cutoff in (4.0, 5.0):  # short-range PaiNN, Ewald real space
        conf.check_smooth_through_cutoff_scan(provider, atoms, cutoff)


def test_a_cluster_uses_the_direct_sum_and_its_stated_charge():
    cluster = Atoms("Na2Cl", positions=[[0, 0, 0], [5.0, 0.3, 0], [2.4, 1.9, 0.2]])
    cluster.info["charge"] = 1.0
    provider = model("predicted")
    conf.check_forces_are_gradient(provider, cluster)
    out = provider.model.module(
        {**_graph(provider, cluster), "conditions": {"charge": torch.tensor([1.0])}}
    )
    assert torch.allclose(out["charges"].sum(-1), torch.ones(2, dtype=torch.float64))
    # fixed charges: the pure Coulomb model's cluster energy is the direct pair sum
    coulomb = pure_coulomb(1e-6)
    energy = coulomb.evaluate([cluster], ["energy"])[0]["energy"]
    q = np.array([1.0, 1.0, -1.0])
    d = cluster.get_all_distances()
    direct = COULOMB * sum(q[i] * q[j] / d[i, j] for i in range(3) for j in range(i + 1, 3))
    assert energy == pytest.approx(direct, rel=1e-12)


def _graph(provider: LocalProvider, atoms: Atoms) -> dict:
    """The served module's input for `atoms` alone."""
    return provider.model.graph(SystemBatch.single(SystemArrays.from_atoms(atoms)))


def test_predicted_charges_give_the_long_range_part_a_spread():
    provider = model("predicted")
    with torch.no_grad():
        for p in provider.model.module.short.readout.parameters():
            p.zero_()
    pair = Atoms("NaCl", positions=[[0, 0, 0], [15.0, 0, 0]], info={"charge": 0.0})
    res = provider.evaluate([pair], ["energy", "uncertainty"])[0]
    assert res["energy_std"] > 1e-3  # members predict different charges: different energies


@pytest.mark.parametrize(
    ("charges", "atoms", "message"),
    [
        ("predicted", Atoms("NaCl", positions=[[0, 0, 0], [3, 0, 0]]), "needs 'charge'"),
        ("fixed", bulk("NaCl", "rocksalt", a=5.64, cubic=True)[:-1] * (2, 1, 1), "sum to"),
        ("fixed", bulk("NaCl", "rocksalt", a=5.64), "supercell of at least"),
        (
            "fixed",
            Atoms(
                "NaCl", positions=[[0, 0, 0], [3, 0, 0]], cell=[9, 9, 9], pbc=[True, True, False]
            ),
            "periodic along all three",
        ),  # fmt: skip
        (
            "fixed",
            Atoms("NaCl", positions=[[0, 0, 0], [3, 0, 0]], info={"charge": 1.0}),
            r"fixed charges of these atoms sum to \+0",
        ),  # fmt: skip
    ],
)
def test_bad_input_is_refused_with_a_reason(charges, atoms, message):
    with pytest.raises(InvalidInput, match=message):
        model(charges).evaluate([atoms], ["energy"])


@pytest.mark.parametrize(("method", "message"), [("ewald", "Ewald k-vectors"), ("pme", "PME mesh")])
def test_a_huge_sparse_cell_is_refused_before_k_space_exhausts_memory(method, message):
    pair = Atoms("NaCl", positions=[[0, 0, 0], [3, 0, 0]], cell=[1000, 1000, 1000], pbc=True)
    with pytest.raises(InvalidInput, match=message):
        model(method=method).evaluate([pair], ["energy"])


def test_a_charged_periodic_cell_is_refused_for_predicted_charges():
    atoms = ionic_cell()
    atoms.info["charge"] = 1.0
    with pytest.raises(InvalidInput, match="neutral cell"):
        model("predicted").evaluate([atoms], ["energy"])
    atoms.info["charge"] = 0.0
    assert np.isfinite(model("predicted").evaluate([atoms], ["energy"])[0]["energy"])


def test_pinned_parameters_are_stored_and_reused():
    cfg = LongRangeConfig(charges="fixed", element_charges=NACL, accuracy=1e-5)
    again = LongRangeConfig(**cfg.to_dict())
    assert again.ewald == cfg.ewald == EwaldParameters.pinned(8.0, 1e-5).to_dict()
    tampered = LongRangeConfig(**{**cfg.to_dict(), "ewald": {**cfg.ewald, "smearing": 1.0}})
    assert LongRangePaiNN(tampered).electrostatics.params.smearing == 1.0  # never re-tuned
