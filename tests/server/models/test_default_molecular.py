"""The shipped default-molecular ensemble (H, C, N, O; GFN2-xTB labels): served by default
over real gRPC, forces exact gradients on its trained weights, tracks xTB on new frames, and
more uncertain on a stretched bond than at equilibrium."""

from __future__ import annotations

import numpy as np
import pytest
from ase.collections import s22

from mlipserve.client import Client
from mlipserve.server.config import Settings
from mlipserve.server.models.base import trust_levels
from mlipserve.server.models.builtin import DEFAULT_MODELS, SHIPPED, load_builtin
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore
from mlipserve.server.training import molecular_data as md
from mlipserve.server.training import molecular_frames as mf
from tests.conftest import ServerThread

# held-out figures (metadata): 45 meV/Å, 2.7 meV/atom; on the four frames below the shipped
# weights give 46 meV/Å and 1.4 meV/atom: the tolerances leave room for a few frames' scatter
FORCE_TOL = 0.08  # eV/Å, mean absolute force error over the frames below
ENERGY_TOL = 0.006  # eV/atom, mean absolute energy error per atom


def _dimer():
    dimer = s22["Water_dimer"].copy()
    dimer.positions -= dimer.positions.mean(0)
    return dimer


@pytest.fixture(scope="module")
def provider():
    return LocalProvider(load_builtin("default-molecular"))


def test_shipped_small_served_by_default_with_its_figures():
    assert "default-molecular" in DEFAULT_MODELS
    meta = ModelStore(SHIPPED).metadata("default-molecular")
    assert meta["elements"] == [1, 6, 7, 8] and meta["ensemble_size"] == 4
    assert "xTB" in meta["labels"] and set(meta["sets"]) == {"train", "held_out", "ood"}
    metrics = meta["metrics"]
    held, ood = metrics["held_out"], metrics["ood"]
    assert 0 < held["force_mae_meV_per_A"] <= 50  # the target, met
    assert 0 < held["energy_mae_meV_per_atom"] <= 2  # target, met after the energy fine-tune
    assert ood["spearman_max_force_std_vs_error"] >= 0.6  # target, met
    assert all(metrics["targets"].values()), metrics["targets"]
    assert meta["parent_version"] in ("v1", "v2") and "version" in metrics["first_stage"]
    # its own trust levels (held-out 90th / 98th percentile of the max force std), served
    assert 0.1 < meta["trust_lo"] < meta["trust_hi"] < 1.0
    info = load_builtin("default-molecular").info
    assert trust_levels(info)[:2] == (meta["trust_lo"], meta["trust_hi"])
    assert sum(metrics["labels"]["train"].values()) > 500
    # the chemistry checks' figures (benchmarks/), recorded beside the held-out errors
    chem = metrics["chemistry"]
    for row in chem["screen_refine"]["barriers_eV"].values():
        if row["trusted"] and row["xtb_scratch"] is not None:
            assert abs(row["model"] - row["xtb_scratch"]) < 0.05, row
        if row["refined"] is not None:
            assert abs(row["refined"] - row["xtb_scratch"]) < 0.02, row
    assert chem["water_nvt"]["molecules_intact"] and chem["water_nvt"]["simulated_ps"] >= 10
    pimd = chem["water_pimd"]
    ke, classical = pimd["KE_H_meV_by_beads"], pimd["classical_3_2_kT_meV"]
    assert ke["8"] < ke["16"] < ke["32"] and ke["8"] > 2 * classical
    weights = SHIPPED / "default-molecular" / meta["version"] / "model.safetensors"
    assert weights.stat().st_size < 2 * 1024**2


def test_served_over_grpc_as_in_process():
    srv = ServerThread(Settings(port=0, models=["default-molecular", "lj"]))
    try:
        with Client(srv.address, "default-molecular") as client:
            got = client.evaluate(_dimer(), ["energy", "forces", "uncertainty"])
            listed = {e["name"]: e for e in client.list_models()}
    finally:
        srv.stop()
    # ListModels reports the levels its warnings use: the model's own (metadata), not the
    # defaults (0.05 / 0.15 eV/Å); a single model (LJ) has none
    meta = ModelStore(SHIPPED).metadata("default-molecular")
    trust = listed["default-molecular"]["trust"]
    assert trust["trust_lo"] == meta["trust_lo"] and trust["trust_hi"] == meta["trust_hi"]
    assert set(trust) == {"trust_lo", "trust_hi", "energy_trust_lo", "energy_trust_hi"}
    assert listed["lj"]["trust"] == {}
    local = LocalProvider(load_builtin("default-molecular")).evaluate(
        [_dimer()], ["energy", "forces", "uncertainty"]
    )[0]
    assert got["energy"] == local["energy"]
    assert np.array_equal(got["forces"], local["forces"])
    assert got["max_force_std"] == local["max_force_std"] > 0


def test_forces_are_the_energy_gradient_in_float64():
    provider = LocalProvider(load_builtin("default-molecular:float64"))
    dimer = _dimer()
    dimer.rattle(0.02, seed=3)
    forces = provider.evaluate([dimer], ["energy", "forces"])[0]["forces"]
    h, numeric = 1e-5, np.zeros_like(forces)
    for i in range(len(dimer)):
        for k in range(3):
            e = []
            for sign in (1, -1):
                moved = dimer.copy()
                moved.positions[i, k] += sign * h
                e.append(provider.evaluate([moved], ["energy"])[0]["energy"])
            numeric[i, k] = -(e[0] - e[1]) / (2 * h)
    assert np.abs(forces - numeric).max() < 1e-6 * max(np.abs(numeric).max(), 1e-3)


def test_tracks_xtb_on_new_frames(provider):
    rng = np.random.default_rng(31)  # a seed no set was drawn from
    frames = [
        mf.rattle(mf.organic("ethanol"), rng, 0.05),
        mf.rattle(mf.water_cluster(rng, 5), rng, 0.04),
        mf.rattle(mf.proton_transfer("malonaldehyde", 0.3), rng, 0.03),
        mf.rattle(mf.organic("glycine"), rng, 0.05),
    ]
    ref = md.label(frames, ["new"] * 4)
    assert len(ref) == 4
    got = provider.evaluate(ref, ["energy", "forces"])
    f_err = np.concatenate([np.abs(g["forces"] - r.get_forces()).ravel() for g, r in zip(got, ref)])
    e_err = [abs(g["energy"] - r.get_potential_energy()) / len(r) for g, r in zip(got, ref)]
    assert f_err.mean() < FORCE_TOL, f_err.mean()
    assert np.mean(e_err) < ENERGY_TOL, e_err
    # against a model that knows nothing: the forces' own size
    assert f_err.mean() < 0.5 * np.mean([np.abs(r.get_forces()).mean() for r in ref])


def test_more_uncertain_on_a_stretched_bond(provider):
    rng = np.random.default_rng(5)
    usual = mf.organic("ethanol")
    stretched = mf.stretched(usual, rng, (1.6, 1.6))
    a, b = provider.evaluate([usual, stretched], ["energy", "forces", "uncertainty"])
    assert b["max_force_std"] > 5 * a["max_force_std"]  # measured: 0.61 vs 0.046 eV/Å


def test_a_frame_alone_and_in_a_batch_gives_the_same_numbers():
    """As test_field does: float64, to round-off (float32 sums differ in the last bit with the
    batch's composition on the shipped `default` too)."""
    provider = LocalProvider(load_builtin("default-molecular:float64"))
    dimer, others = _dimer(), [mf.organic("glycine"), mf.water_box(np.random.default_rng(1), 8)]
    alone = provider.evaluate([dimer], ["energy", "forces"])[0]
    batched = provider.evaluate([others[0], dimer, others[1]], ["energy", "forces"])[1]
    assert abs(alone["energy"] - batched["energy"]) < 1e-10
    assert np.allclose(alone["forces"], batched["forces"], atol=1e-10, rtol=0)


def test_malonaldehyde_proton_transfer_barrier_matches_xtb():
    """The issue's chemistry check: the batched CI-NEB on the model (float64, ends relaxed on
    the model) against ASE's CI-NEB on GFN2-xTB itself: barriers within 0.05 eV (measured
    0.163 vs 0.163; before the NEB-path frames were added, v2 gave 0.064), and the figure is
    in the model's metadata."""
    model = ModelStore(SHIPPED).load("default-molecular", dtype="float64", device="cpu")
    got = md.barrier_check(LocalProvider(model))
    assert got["converged"] and 0.1 < got["xtb_eV"] < 0.3
    assert abs(got["model_eV"] - got["xtb_eV"]) < 0.05, got
    meta = ModelStore(SHIPPED).metadata("default-molecular")["metrics"]["chemistry"]
    stored = meta["malonaldehyde_proton_transfer_barrier"]
    assert abs(stored["model_eV"] - got["model_eV"]) < 1e-6


def test_xtb_blended_into_the_model_on_a_proton_transfer_is_conservative():
    """QM/MLIP: GFN2-xTB as the QM region inside default-molecular, on a water tetramer
    whose core (donor and acceptor molecules, one group) holds a proton half-way between two
    O; the other waters are blended by centroid distance. F = −∇E by central differences
    (h = 1e-4 Å; xTB's SCF noise bounds the tolerance, 2e-3 eV/Å) on the moving proton and
    on an atom of a shell molecule."""
    from tblite.ase import TBLite

    from mlipserve.simulation.blending import BlendedProvider
    from mlipserve.simulation.blending.reference import ASECalculatorProvider
    from tests.simulation.blending.test_blending import water_cluster

    atoms = water_cluster([(2.8, 0, 0), (0.3, 3.0, 0.4), (-2.7, -1.2, 0.9)])
    o_donor, o_acceptor = atoms.positions[0], atoms.positions[3]
    atoms.positions[1] = o_donor + 0.45 * (o_acceptor - o_donor)  # the proton mid-transfer
    groups = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    xtb = ASECalculatorProvider(TBLite(method="GFN2-xTB", verbosity=0, accuracy=0.01))
    model = LocalProvider(
        ModelStore(SHIPPED).load("default-molecular", dtype="float64", device="cpu")
    )
    blend = BlendedProvider(xtb, model, list(range(6)), 2.2, 1.6, groups=groups)
    weights = blend.weights(atoms)
    shell = np.flatnonzero((weights > 0) & (weights < 1))
    assert len(shell) >= 3, weights
    forces = blend.evaluate([atoms])[0]["forces"]
    h = 1e-4
    for i in (1, int(shell[-1])):
        images = []
        for k in range(3):
            for sign in (1, -1):
                image = atoms.copy()
                image.positions[i, k] += sign * h
                images.append(image)
        e = np.array([r["energy"] for r in blend.evaluate(images)]).reshape(3, 2)
        np.testing.assert_allclose(-(e[:, 0] - e[:, 1]) / (2 * h), forces[i], atol=2e-3)
