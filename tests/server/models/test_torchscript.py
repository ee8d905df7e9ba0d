"""TorchScript models on the documented graph contract; the store refuses pickles; trust.

Reference: the native `LennardJones` module. A TorchScript LJ written independently
against the contract must agree to 1e-10 (relative, float64 round-off) in energy, forces,
stress and per-atom energies, and pass the shared conformance suite.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mlipserve.cli import app
from mlipserve.server.models.builtin import lennard_jones
from mlipserve.server.models.torchscript import load_torchscript
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore, StoreError
from tests.server.models import conformance as conf

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
LJ = {"sigma": 2.3, "epsilon": 0.12, "rc": 6.0}
META = {"family": "torchscript", "cutoff": LJ["rc"], "elements": [29], "dtype": "float64"}


class ScriptLJ(torch.nn.Module):
    """ASE's smooth-cutoff LJ over the contract's full neighbour list; K members by σ scale."""

    def __init__(self, scales: list[float]) -> None:
        super().__init__()
        self.register_buffer("sigma", LJ["sigma"] * torch.tensor(scales, dtype=torch.float64))
        self.register_buffer("epsilon", LJ["epsilon"] / torch.tensor(scales, dtype=torch.float64))
        self.rc, self.ro, self.ensemble = LJ["rc"], 0.66 * LJ["rc"], len(scales) > 1

    def forward(self, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        i, j = graph["edge_index"][0], graph["edge_index"][1]
        cell = graph["cell"][graph["system_index"][i]]
        shift = torch.einsum("ek,ekl->el", graph["edge_shift"], cell)
        r2 = (graph["positions"][j] - graph["positions"][i] + shift).pow(2).sum(-1)
        c6 = (self.sigma[:, None] ** 2 / r2) ** 3  # (K, E)
        rc2, ro2 = self.rc**2, self.ro**2
        switch = (rc2 - r2) ** 2 * (rc2 + 2 * r2 - 3 * ro2) / (rc2 - ro2) ** 3
        fc = torch.where(r2 < ro2, torch.ones_like(r2), torch.where(r2 < rc2, switch, 0.0))
        pair = 2 * self.epsilon[:, None] * (c6 * c6 - c6) * fc  # half of each pair per atom
        n_atoms, n_systems = graph["positions"].shape[0], int(graph["n_systems"])
        energies = pair.new_zeros(pair.shape[0], n_atoms).index_add(1, i, pair)
        energy = energies.new_zeros(pair.shape[0], n_systems).index_add(
            1, graph["system_index"], energies
        )
        if self.ensemble:
            return {"energy": energy, "energies": energies}
        return {"energy": energy[0], "energies": energies[0]}


def scripted(tmp_path, scales=(1.0,), name="lj.pt") -> bytes:
    path = tmp_path / name
    torch.jit.save(torch.jit.script(ScriptLJ(list(scales))), str(path))
    return path.read_bytes()


@pytest.fixture
def store(tmp_path):
    store = ModelStore(tmp_path / "store")
    store.add_artifact("lj", scripted(tmp_path), META, max_bytes=10**7, make_default=True)
    return store


def test_scripted_lj_matches_native(store):
    """Served from the store, the scripted LJ equals the native one to 1e-10 (relative)."""
    model = store.load("lj")
    assert model.info.kind == "torchscript" and model.info.cutoff == LJ["rc"]
    atoms = [conf.test_system("Cu", 3.7), conf.test_system("Cu", 3.7, seed=5) * (1, 2, 1)]
    props = ["energy", "forces", "stress", "energies"]
    got = LocalProvider(model).evaluate(atoms, props)
    ref = LocalProvider(lennard_jones(**LJ)).evaluate(atoms, props)
    for g, r in zip(got, ref):
        for key in props:
            assert np.abs(g[key] - r[key]).max() <= 1e-10 * max(np.abs(r[key]).max(), 1e-3), key


def test_conformance(store):
    """The shared suite: FD forces and stress, invariances, batching, dtypes, cutoff."""
    provider, atoms = LocalProvider(store.load("lj")), conf.test_system("Cu", 3.7)
    conf.check_forces_are_gradient(provider, atoms)
    conf.check_stress_is_strain_derivative(provider, atoms)
    conf.check_invariances(provider, atoms)
    conf.check_batch_equals_single_calls(
        provider, atoms, conf.test_system("Cu", 3.7, seed=11) * (1, 2, 1)
    )
    conf.check_dtypes_agree(provider, LocalProvider(store.load("lj", dtype="float32")), atoms)
    conf.check_smooth_at_cutoff(provider, "Cu", LJ["rc"])


def test_scripted_committee_gives_uncertainty(tmp_path):
    """A (K, S) energy is a committee: mean and std of the two native LJ members."""
    path = tmp_path / "pair.pt"
    path.write_bytes(scripted(tmp_path, (0.99, 1.01)))
    model = load_torchscript(path, {**META, "ensemble_size": 2})
    atoms = conf.test_system("Cu", 3.7)
    got = LocalProvider(model).evaluate([atoms], ["energy", "uncertainty"])[0]
    members = [
        LocalProvider(
            lennard_jones(**{**LJ, "sigma": LJ["sigma"] * s, "epsilon": LJ["epsilon"] / s})
        ).evaluate([atoms], ["energy"])[0]["energy"]
        for s in (0.99, 1.01)
    ]
    assert got["energy"] == pytest.approx(np.mean(members), rel=1e-10)
    assert got["energy_std"] == pytest.approx(np.std(members), rel=1e-8)
    with pytest.raises(ValueError, match="ensemble_size=0"):
        load_torchscript(path, META)


def test_pickles_are_refused(tmp_path, store):
    """A pickle or a torch.save archive renamed .pt never reaches a loader."""
    raw = pickle.dumps({"weights": [1.0, 2.0]})
    with pytest.raises(StoreError, match="raw pickle is refused"):
        store.add_artifact("lj", raw, META, max_bytes=10**7)
    buf = io.BytesIO()
    torch.save(ScriptLJ([1.0]).state_dict(), buf)
    with pytest.raises(StoreError, match="torch.save archive .* is refused"):
        store.add_artifact("lj", buf.getvalue(), META, max_bytes=10**7)
    with pytest.raises(StoreError, match="exceeds|limit"):
        store.add_artifact("lj", scripted(tmp_path), META, max_bytes=1000)
    with pytest.raises(StoreError, match="trusted"):
        store.add_artifact("lj", scripted(tmp_path), {**META, "trusted": True}, max_bytes=10**7)
    assert store.versions("lj") == ["v1"]


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_archive_does_not_unpickle(tmp_path, store):
    """A TorchScript archive whose data.pkl calls os.system is refused and runs nothing."""
    marker = tmp_path / "pwned"
    Evil.marker = str(marker)
    good = zipfile.ZipFile(io.BytesIO(scripted(tmp_path)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as evil:
        for name in good.namelist():
            data = good.read(name)
            evil.writestr(name, pickle.dumps(Evil(), 2) if name.endswith("/data.pkl") else data)
    with pytest.raises(StoreError, match="does not load"):
        store.add_artifact("lj", out.getvalue(), META, max_bytes=10**7)
    assert not marker.exists()


def test_checksum_and_contract_checks(tmp_path, store):
    path = store.root / "lj" / "v1" / "model.pt"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(StoreError, match="checksum"):
        store.load("lj")
    with pytest.raises(StoreError, match="cutoff"):
        store.add_artifact("lj", scripted(tmp_path), {**META, "cutoff": 0}, max_bytes=10**7)


def test_trust_flag_is_set_by_the_cli_only(store):
    runner = CliRunner()
    result = runner.invoke(app, ["models", "trust", "lj", "v1", "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    assert store.metadata("lj", "v1")["trusted"] is True
    runner.invoke(app, ["models", "trust", "lj", "v1", "--store", str(store.root), "--revoke"])
    assert store.metadata("lj", "v1")["trusted"] is False
    assert json.loads((store.root / "lj" / "v1" / "metadata.json").read_text())["trusted"] is False
