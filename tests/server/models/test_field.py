"""The field- and potential-conditioned family (painn-field) on biased weights: dipole and
Born charges equal finite differences of served results, forces = −∇F at E ≠ 0, mixed fields
batch, the electron number follows μe, and the request checks."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from mlipserve.client import Client, RemoteCalculator
from mlipserve.client.errors import InvalidInput as ClientInvalidInput
from mlipserve.server.config import Settings
from mlipserve.server.models.families import native_potential
from mlipserve.server.models.field import FieldConfig, FieldPaiNN
from mlipserve.server.serving.checks import InvalidInput
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore
from tests.conftest import ServerThread
from tests.server.models import conformance as conf

FIELD = np.array([0.02, -0.03, 0.05])  # V/Å


def field_module(seed: int = 0) -> FieldPaiNN:
    """A tiny two-member field model with every bias drawn from N(0, 1)."""
    torch.manual_seed(seed)
    module = FieldPaiNN(
        FieldConfig(cutoff=4.0, features=8, radial=6, layers=2, members=2, max_z=10)
    )
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("bias"):
                param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype))
    return module


@pytest.fixture(scope="module")
def provider():
    return LocalProvider(native_potential(field_module(), "field"))


def water(field=FIELD, seed: int = 1) -> Atoms:
    atoms = molecule("H2O")
    atoms.rattle(0.05, seed=seed)
    atoms.info["external_field"] = np.asarray(field, float)
    return atoms


def at_field(provider, atoms, field, props):
    shifted = atoms.copy()
    shifted.info["external_field"] = field
    return provider.evaluate([shifted], props)[0]


def test_dipole_and_born_charges_are_field_derivatives(provider):
    atoms = water()
    res = provider.evaluate([atoms], ["energy", "forces", "dipole", "born_charges", "charges"])[0]
    h = 1e-5
    steps = h * np.eye(3)
    dipole = [
        -(at_field(provider, atoms, FIELD + d, ["energy"])["energy"]
          - at_field(provider, atoms, FIELD - d, ["energy"])["energy"]) / (2 * h)
        for d in steps
    ]  # fmt: skip
    assert np.allclose(res["dipole"], dipole, atol=1e-8, rtol=1e-6)
    born = np.stack(
        [
            (
                at_field(provider, atoms, FIELD + d, ["forces"])["forces"]
                - at_field(provider, atoms, FIELD - d, ["forces"])["forces"]
            )
            / (2 * h)
            for d in steps
        ],
        axis=1,
    )  # fmt: skip  (atom, a, b) = ∂F_b/∂E_a
    assert np.allclose(res["born_charges"], born, atol=1e-7)
    assert np.abs(res["born_charges"].sum(0)).max() < 1e-10  # neutral: Σ_i Z*_i = 0
    assert abs(res["charges"].sum()) < 1e-12
    assert np.abs(res["dipole"]).max() > 1e-3  # the field and the charges do something


def test_polarizability_is_the_field_derivative_of_the_dipole(provider):
    """α_ab = ∂μ_a/∂E_b by central differences of served dipoles; symmetric (= −∂²F/∂E²),
    positive definite for a stable molecule; the same alone and in a batch of two fields."""
    atoms = water()
    props = ["energy", "dipole", "polarizability"]
    res = provider.evaluate([atoms], props)[0]
    h = 1e-4
    alpha = np.stack(
        [
            (
                at_field(provider, atoms, FIELD + d, ["dipole"])["dipole"]
                - at_field(provider, atoms, FIELD - d, ["dipole"])["dipole"]
            )
            / (2 * h)
            for d in h * np.eye(3)
        ],
        axis=1,
    )  # (a, b) = ∂μ_a/∂E_b
    assert res["polarizability"].shape == (3, 3)
    assert np.allclose(res["polarizability"], alpha, atol=1e-7, rtol=1e-5)
    assert np.allclose(res["polarizability"], res["polarizability"].T, atol=1e-10)
    assert np.linalg.eigvalsh(res["polarizability"]).min() > 0
    other = water(field=-FIELD, seed=3)
    both = provider.evaluate([other, atoms], props)
    assert np.allclose(both[1]["polarizability"], res["polarizability"], atol=1e-12)
    alone = provider.evaluate([other], props)[0]
    assert np.allclose(both[0]["polarizability"], alone["polarizability"], atol=1e-12)


def test_forces_are_the_gradient_at_a_field(provider):
    conf.check_forces_are_gradient(provider, water())
    atoms = water()
    ref = provider.evaluate([atoms], ["energy", "forces", "dipole"])[0]
    rotation = _rotation(np.array([1.0, 2.0, 3.0]), 0.7)
    turned = atoms.copy()
    turned.positions = atoms.positions @ rotation.T + [0.3, -0.7, 1.3]
    turned.info["external_field"] = rotation @ FIELD  # the field turns with the molecule
    res = provider.evaluate([turned], ["energy", "forces", "dipole"])[0]
    assert res["energy"] == pytest.approx(ref["energy"], abs=1e-9)
    assert np.allclose(res["forces"], ref["forces"] @ rotation.T, atol=1e-9)
    # the dipole turns too; translation adds Q·d = 0 for a neutral molecule
    assert np.allclose(res["dipole"], rotation @ ref["dipole"], atol=1e-9)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """The rotation matrix about `axis` by `angle` (Rodrigues)."""
    k = axis / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def test_a_batch_mixing_three_fields_equals_three_calls(provider):
    frames = [water(f, seed=k) for k, f in enumerate(([0, 0, 0], FIELD, [0.0, 0.08, 0.0]))]
    props = ["energy", "forces", "dipole", "charges"]
    together = provider.evaluate(frames, props)
    for atoms, res in zip(frames, together):
        alone = provider.evaluate([atoms], props)[0]
        for key in props:
            assert np.allclose(res[key], alone[key], atol=1e-10, rtol=0), key


def test_the_electron_number_follows_the_fermi_level(provider):
    atoms = water(np.zeros(3))
    del atoms.info["external_field"]

    def charge(mu: float) -> float:
        shifted = atoms.copy()
        shifted.info["fermi_level"] = mu
        return float(provider.evaluate([shifted], ["energy", "charges"])[0]["charges"].sum())

    q = [charge(mu) for mu in (-5.01, -5.0, -4.99)]
    capacitance = (q[0] - q[2]) / 0.02  # dQ/dμe < 0: a higher μe fills electrons
    assert capacitance > 0
    assert abs((q[0] - q[1]) - (q[1] - q[2])) < 1e-9  # QEq: Q linear in μe
    assert capacitance == pytest.approx(_capacitance(provider, atoms), rel=1e-6)


def _capacitance(provider: LocalProvider, atoms: Atoms) -> float:
    """1ᵀA⁻¹1 of the members' QEq matrices, averaged (the served charge is the mean)."""
    from mlipserve.server.models.batch import SystemBatch
    from mlipserve.server.models.field import _hardness_matrix
    from mlipserve.wire import SystemArrays

    module = provider.model.module
    graph = provider.model.graph(SystemBatch.single(SystemArrays.from_atoms(atoms)))
    s, _ = module.short.features(graph)
    hardness = torch.nn.functional.softplus(module.qeq(s)[..., 1]) + 1.0
    sigma = module.sigma[graph["numbers"]].to(graph["positions"].dtype)
    a = _hardness_matrix(hardness, graph["positions"], sigma)
    ones = torch.ones(a.shape[:-1] + (1,), dtype=a.dtype)
    return float((ones.transpose(-1, -2) @ torch.linalg.solve(a, ones)).mean())


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({"external_field": [np.nan, 0, 0]}, "NaN or inf"),
        ({"charge": 0.0, "fermi_level": -5.0}, "not both"),
    ],
)
def test_bad_conditions_are_refused(provider, info, message):
    atoms = molecule("H2O")
    atoms.info.update(info)
    with pytest.raises(InvalidInput, match=message):
        provider.evaluate([atoms], ["energy"])


def test_a_molecule_too_big_for_charge_equilibration_is_refused(provider):
    big = Atoms("H2001", positions=np.random.default_rng(0).uniform(0, 60, (2001, 3)))
    with pytest.raises(InvalidInput, match="2001 atoms exceed 2000"):
        provider.evaluate([big], ["energy"])


def test_periodic_systems_are_refused_and_odd_conditions_flagged(provider):
    box = molecule("H2O", vacuum=4.0)
    box.pbc = True
    with pytest.raises(InvalidInput, match="molecules and clusters"):
        provider.evaluate([box], ["energy"])
    far = water([0.5, 0, 0])
    far.info["fermi_level"] = -20.0
    del far.info["external_field"]
    far.info["conditions"] = {"external_field": [0.5, 0, 0]}
    flags = provider.evaluate([far], ["energy"])[0]["warnings"]
    assert any("external_field" in f and "beyond" in f for f in flags), flags
    assert any("fermi_level" in f and "outside the trained range" in f for f in flags), flags


def test_over_grpc_the_client_gets_dipole_born_charges_and_charges(tmp_path):
    store = ModelStore(tmp_path)
    module = field_module()
    store.save(
        "field", module, {"family": "painn-field", "config": module.cfg.to_dict(),
                          "cutoff": module.cutoff, "ensemble_size": 2, "dtype": "float64"},
    )  # fmt: skip
    settings = Settings(port=0, models=["store:field", "lj"], store_dir=str(tmp_path))
    srv = ServerThread(settings.model_copy(update={"data_dir": tmp_path}))
    try:
        client = Client(srv.address, "field")
        info = next(m for m in client.list_models() if m["name"] == "field")
        assert {"external_field", "fermi_level", "charge"} <= set(info["accepted_conditions"])
        keys = ("dipole", "born_charges", "charges", "polarizability")
        assert set(keys) <= set(info["properties"])
        res = client.evaluate(water(), ["energy", "forces", *keys])
        local = LocalProvider(store.load("field", dtype="float64", device="cpu"))
        ref = local.evaluate([water()], list(keys))[0]
        assert res["born_charges"].shape == (3, 3, 3)
        assert res["polarizability"].shape == (3, 3)
        for key in keys:
            assert np.allclose(res[key], ref[key], atol=1e-12), key
        pair = client.evaluate([water(seed=4), water()], ["energy", "polarizability"])
        assert np.allclose(pair[1]["polarizability"], ref["polarizability"], atol=1e-12)
        calc = RemoteCalculator(srv.address, "field")
        assert np.allclose(calc.get_property("polarizability", water()), ref["polarizability"])
        calc.close()
        with pytest.raises(ClientInvalidInput, match="does not accept 'external_field'"):
            Client(srv.address, "lj").evaluate(water(), ["energy"])
        body = {
            "systems": [{"positions": water().positions.tolist(), "numbers": [8, 1, 1],
                         "conditions": {"external_field": FIELD.tolist()}}],
            "properties": ["energy", "dipole", "born_charges", "charges", "polarizability"],
        }  # fmt: skip
        reply = httpx.post(f"{srv.rest_url}/v1/models/field/evaluate", json=body)
        assert reply.status_code == 200, reply.text
        rest = reply.json()["results"][0]
        assert np.allclose(rest["dipole"], ref["dipole"], atol=1e-12)
        assert np.array(rest["born_charges"]).shape == (3, 3, 3)
        assert np.allclose(rest["polarizability"], ref["polarizability"], atol=1e-12)
    finally:
        srv.stop()
