"""The shipped field-molecules-xtb model: served by default, its figures in its metadata,
and the field derivatives exact on its trained weights."""

from __future__ import annotations

import numpy as np
from ase.build import molecule

from mlipserve.server.models.builtin import DEFAULT_MODELS, SHIPPED, load_builtin
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore
from tests.server.models import conformance as conf
from tests.server.models.test_field import FIELD, at_field


def test_shipped_served_by_default_with_its_held_out_figures():
    assert "field-molecules-xtb" in DEFAULT_MODELS
    meta = ModelStore(SHIPPED).metadata("field-molecules-xtb")
    assert meta["family"] == "painn-field" and "xTB" in meta["labels"]
    held = meta["metrics"]["held_out"]
    for key in (
        "force_mae_meV_per_A_at_field",
        "dipole_mae_eA",
        "energy_mae_meV_per_atom_at_field",
    ):
        assert np.isfinite(held[key])
    assert held["born_sum_rule_max_e"] < 1e-10
    response = meta["metrics"]["field_response"]
    assert response["capacitance_e_per_V"]["model"] > 0


def test_field_derivatives_on_trained_weights():
    provider = LocalProvider(load_builtin("field-molecules-xtb:float64"))
    water = molecule("H2CO")
    water.rattle(0.03, seed=4)
    water.info["external_field"] = FIELD
    conf.check_forces_are_gradient(provider, water)
    res = provider.evaluate([water], ["dipole", "born_charges"])[0]
    h = 1e-5
    dipole = [
        -(at_field(provider, water, FIELD + d, ["energy"])["energy"]
          - at_field(provider, water, FIELD - d, ["energy"])["energy"]) / (2 * h)
        for d in h * np.eye(3)
    ]  # fmt: skip
    assert np.allclose(res["dipole"], dipole, atol=1e-7)
    assert np.abs(res["born_charges"].sum(0)).max() < 1e-10


def test_dipoles_and_the_field_response_of_forces_follow_xtb():
    """Held-out molecules at zero field: dipoles along xTB's within 0.15 e·Å; the change of
    the forces from 0 to ±0.1 V/Å: error below 0.8 × its size (a model blind to the field
    scores 1.0)."""
    from mlipserve.server.training.field_data import MOLECULES, _base, _label, field_response

    provider = LocalProvider(load_builtin("field-molecules-xtb:float64"))
    for name in (*MOLECULES, "dimer"):
        atoms = _base(name)
        ref = _label(atoms, np.zeros(3)).info["dipole_xtb"]
        got = provider.evaluate([atoms], ["dipole"])[0]["dipole"]
        assert np.linalg.norm(got - ref) < 0.15, (name, got, ref)
    response = field_response(provider)
    ratio = response["force_change_mae_meV_per_A"] / response["force_change_mean_size_meV_per_A"]
    assert ratio < 0.8, response
