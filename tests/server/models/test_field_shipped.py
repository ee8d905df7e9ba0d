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

# v2's bounds: its held-out figures (metadata) are 78 meV/Å, 0.0096 e·Å, a field response
# error 0.16 of its size and capacitances within 6 % of xTB's (v1: 170 meV/Å, 0.044 e·Å,
# 0.53 and 1.8x); the aim was 60 meV/Å, not reached by this trunk and data
FORCE_MAE = 90.0  # meV/Å, held out at E ≠ 0
DIPOLE_MAE = 0.03  # e·Å
CHANGE_RATIO = 0.3  # field-induced force change: MAE / mean size
CAPACITANCE_REL = 0.3  # |C_model / C_xTB − 1| for H2O


def test_shipped_served_by_default_with_its_held_out_figures():
    """v2 is the default; its recorded held-out figures (build/field/report.json of `make
    field-model`) are within the bounds above."""
    assert "field-molecules-xtb" in DEFAULT_MODELS
    store = ModelStore(SHIPPED)
    assert store.default_version("field-molecules-xtb") == "v2"
    assert "v1" in store.versions("field-molecules-xtb")
    meta = store.metadata("field-molecules-xtb")
    assert meta["family"] == "painn-field" and "xTB" in meta["labels"]
    assert meta["trunk_from"] == "default-molecular@v3"
    held = meta["metrics"]["held_out"]
    assert held["force_mae_meV_per_A_at_field"] <= FORCE_MAE
    assert held["dipole_mae_eA"] <= DIPOLE_MAE
    assert held["born_sum_rule_max_e"] < 1e-10
    response = meta["metrics"]["field_response"]
    ratio = response["force_change_mae_meV_per_A"] / response["force_change_mean_size_meV_per_A"]
    assert ratio <= CHANGE_RATIO
    cap = response["capacitance_e_per_V"]
    assert abs(cap["model"] / cap["xtb"] - 1) <= CAPACITANCE_REL


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
    """Held-out molecules at zero field: dipoles along xTB's within 0.05 e·Å; the change of
    the forces from 0 to ±0.1 V/Å: error below 0.4 × its size (a model blind to the field
    scores 1.0; v1 scored 0.53)."""
    from mlipserve.server.training.field_data import MOLECULES, _base, _label, field_response

    provider = LocalProvider(load_builtin("field-molecules-xtb:float64"))
    for name in (*MOLECULES, "dimer"):
        atoms = _base(name)
        ref = _label(atoms, np.zeros(3)).info["dipole_xtb"]
        got = provider.evaluate([atoms], ["dipole"])[0]["dipole"]
        assert np.linalg.norm(got - ref) < 0.05, (name, got, ref)
    response = field_response(provider)
    ratio = response["force_change_mae_meV_per_A"] / response["force_change_mean_size_meV_per_A"]
    assert ratio < 0.4, response
    # capacitance dQ/dμe against xTB's charge-scan curvature, each CHARGED molecule: within
    # 30 % (v1: H2O 1.8×)
    for name, cap in response["capacitance_by_molecule"].items():
        assert abs(cap["model"] / cap["xtb"] - 1) < 0.3, (name, cap)


def test_held_out_forces_and_dipoles_in_fields():
    """Fresh xTB labels (seed 11, never trained on) of the five systems in random fields:
    force MAE below 1.3 × the bound (a 30-frame sample scatters) and dipole MAE below the
    bound (v1: 170 meV/Å)."""
    from mlipserve.server.training.field_data import dataset, held_out

    provider = LocalProvider(load_builtin("field-molecules-xtb:float64"))
    figures = held_out(provider, dataset(11, per_molecule=6, charged=0))
    assert figures["force_mae_meV_per_A_at_field"] < 1.3 * FORCE_MAE, figures
    assert figures["dipole_mae_eA"] < DIPOLE_MAE, figures
    assert figures["born_sum_rule_max_e"] < 1e-10
