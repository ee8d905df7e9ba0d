"""mace-torch `.model` files: stored, refused until trusted, then served like native models.

Reference: mace-torch's own ASE calculator (`MACECalculator`) on the same tiny random
ScaleShiftMACE; our graph adapter + shared autograd must agree to 1e-9 (relative, float64)
in energy, forces and stress, and the model must pass the conformance suite.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

if importlib.util.find_spec("mace") is None:  # not importorskip: `import mace` has side effects
    pytest.skip(
        "mace-torch is not installed (pip install 'mlipserve[mace]')", allow_module_level=True
    )

from mlipserve.server.models.mace_model import NO_WEIGHTS_ONLY, load_mace, mace_imports
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore, StoreError
from tests.server.models import conformance as conf

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def tiny_mace(seed: int = 0) -> torch.nn.Module:
    """A random two-layer ScaleShiftMACE for Ar and Cu (float64, r_max 4.5 Å)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    with mace_imports():
        from e3nn import o3
        from mace import modules
    try:
        torch.manual_seed(seed)
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        return modules.ScaleShiftMACE(
            r_max=4.5,
            num_bessel=4,
            num_polynomial_cutoff=5,
            max_ell=2,
            interaction_cls=block,
            interaction_cls_first=block,
            num_interactions=2,
            num_elements=2,
            hidden_irreps=o3.Irreps("8x0e + 8x1o"),
            MLP_irreps=o3.Irreps("8x0e"),
            gate=torch.nn.functional.silu,
            atomic_energies=np.array([-1.0, -2.0]),
            avg_num_neighbors=8.0,
            atomic_numbers=[18, 29],
            correlation=2,
            atomic_inter_scale=1.0,
            atomic_inter_shift=0.1,
        )
    finally:
        torch.set_default_dtype(default)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mace")
    paths = []
    for seed in (0, 1):
        paths.append(root / f"m{seed}.model")
        torch.save(tiny_mace(seed), paths[-1])
    return paths


@pytest.fixture(scope="module")
def trusted_store(model_files, tmp_path_factory):
    store = ModelStore(tmp_path_factory.mktemp("store"))
    version = store.add_artifact(
        "cu", model_files[0].read_bytes(), {"family": "mace"}, max_bytes=10**8
    )
    store.set_trusted("cu", version)
    return store


def test_untrusted_mace_is_stored_but_never_unpickled(model_files, tmp_path):
    """The upload is kept; loading names the flag; trusting it makes it load."""
    store = ModelStore(tmp_path)
    version = store.add_artifact(
        "cu", model_files[0].read_bytes(), {"family": "mace"}, max_bytes=10**8
    )
    assert "pickle" in store.metadata("cu", version)["needs_trust"]
    with pytest.raises(StoreError, match="not trusted .* 'trusted' flag .* models trust cu v1"):
        store.load("cu")
    with pytest.raises(ValueError, match="trusted"):
        load_mace(model_files, {})
    store.set_trusted("cu", version)
    assert store.load("cu").info.cutoff == pytest.approx(4.5)
    # `import mace` (first done in the fixture) sets this process-wide; mace_imports undoes it
    assert os.environ.get(NO_WEIGHTS_ONLY) != "1"


def test_matches_mace_calculator(trusted_store, model_files):
    """Energy, forces and stress equal MACECalculator's to 1e-9 (relative)."""
    from mace.calculators import MACECalculator

    model = trusted_store.load("cu")
    assert model.info.kind == "mace" and model.info.elements == {18, 29}
    atoms = conf.test_system("Cu", 3.7)
    got = LocalProvider(model).evaluate([atoms], ["energy", "forces", "stress", "energies"])[0]
    atoms.calc = MACECalculator(
        models=torch.load(model_files[0], weights_only=False), device="cpu", default_dtype="float64"
    )
    assert got["energy"] == pytest.approx(atoms.get_potential_energy(), rel=1e-9)
    forces = atoms.get_forces()
    assert np.abs(got["forces"] - forces).max() <= 1e-9 * np.abs(forces).max()
    stress = atoms.get_stress()
    assert np.abs(got["stress"] - stress).max() <= 1e-9 * np.abs(stress).max()
    assert got["energies"].sum() == pytest.approx(got["energy"], rel=1e-12)


def test_committee_of_two_files(model_files):
    """Two trusted files: energy_std is the spread of the two single-model energies."""
    atoms = conf.test_system("Cu", 3.7)
    singles = [
        LocalProvider(load_mace([p], {"trusted": True})).evaluate([atoms])[0]["energy"]
        for p in model_files
    ]
    pair = LocalProvider(load_mace(model_files, {"trusted": True}))
    got = pair.evaluate([atoms], ["energy", "uncertainty"])[0]
    assert got["energy"] == pytest.approx(np.mean(singles), rel=1e-10)
    assert got["energy_std"] == pytest.approx(np.std(singles), rel=1e-8)


def test_conformance(trusted_store):
    """The shared suite: FD forces and stress, invariances, batching, dtypes, cutoff."""
    provider, atoms = LocalProvider(trusted_store.load("cu")), conf.test_system("Cu", 3.7)
    conf.check_forces_are_gradient(provider, atoms)
    conf.check_stress_is_strain_derivative(provider, atoms)
    conf.check_invariances(provider, atoms)
    conf.check_batch_equals_single_calls(
        provider, atoms, conf.test_system("Cu", 3.7, seed=11) * (1, 2, 1)
    )
    conf.check_dtypes_agree(
        provider, LocalProvider(trusted_store.load("cu", dtype="float32")), atoms
    )
    conf.check_smooth_at_cutoff(provider, "Cu", provider.model.info.cutoff)
