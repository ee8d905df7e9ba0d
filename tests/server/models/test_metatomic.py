"""Exported metatomic models served like native ones: LJ physics, units, committees, store.

The reference is the native `LennardJones` (ASE's smooth-cutoff LJ): a metatomic model of
the same pair potential must give the same energy, forces and stress to 1e-10 (float64
round-off) in Å/eV, and to 1e-8 relative when it works in nm and kJ/mol (the CODATA
constants of ASE and metatomic differ in the ninth digit).
"""

# No `from __future__ import annotations` and typing.List/Dict: metatomic compares forward()
# annotations with typing.List[System] etc.
# ruff: noqa: UP006, UP035, UP045

import io
import json
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
from ase import units

pytest.importorskip("metatomic.torch")

from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    ModelOutput,
    NeighborListOptions,
    System,
)

from mlipserve.server.models.builtin import lennard_jones
from mlipserve.server.models.metatomic_model import load_metatomic
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore, StoreError
from tests.server.models import conformance as conf

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
LJ = {"sigma": 2.3, "epsilon": 0.12, "rc": 6.0}  # Å, eV: the conformance suite's copper LJ
KJ_PER_MOL = units.kJ / units.mol  # eV


class PairLJ(torch.nn.Module):
    """ASE's smooth-cutoff LJ over a half neighbour list, in the model's own units."""

    def __init__(self, sigma: float, epsilon: float, rc: float, full_list: bool) -> None:
        super().__init__()
        self.sigma, self.epsilon, self.rc, self.ro = sigma, epsilon, rc, 0.66 * rc
        self.full_list = full_list
        self.nl = NeighborListOptions(cutoff=rc, full_list=full_list, strict=True)

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return [self.nl]

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        per_atom = outputs["energy"].sample_kind == "atom"
        values: List[torch.Tensor] = []
        samples: List[torch.Tensor] = []
        for s, system in enumerate(systems):
            nl = system.get_neighbor_list(self.nl)
            r2 = (nl.values.reshape(-1, 3) ** 2).sum(-1)
            c6 = (self.sigma**2 / r2) ** 3
            rc2, ro2 = self.rc**2, self.ro**2
            switch = (rc2 - r2) ** 2 * (rc2 + 2 * r2 - 3 * ro2) / (rc2 - ro2) ** 3
            fc = torch.where(r2 < ro2, torch.ones_like(r2), torch.where(r2 < rc2, switch, 0.0))
            e = 4 * self.epsilon * (c6 * c6 - c6) * fc * (0.5 if self.full_list else 1.0)
            atoms = torch.zeros(len(system), dtype=e.dtype, device=e.device)
            atoms = atoms.index_add(0, nl.samples.column("first_atom").to(torch.long), 0.5 * e)
            atoms = atoms.index_add(0, nl.samples.column("second_atom").to(torch.long), 0.5 * e)
            if per_atom:
                index = torch.arange(len(system), device=e.device)
                values.append(atoms)
                samples.append(torch.stack([torch.full_like(index, s), index], 1))
            else:
                values.append(atoms.sum().reshape(1))
                samples.append(torch.tensor([[s]], device=e.device))
        names = ["system", "atom"] if per_atom else ["system"]
        block = TensorBlock(
            torch.cat(values).reshape(-1, 1),
            Labels(names, torch.cat(samples).to(torch.int32)),
            [],
            Labels(["energy"], torch.tensor([[0]])),
        )
        return {"energy": TensorMap(Labels(["_"], torch.tensor([[0]])), [block])}


def export_lj(
    path,
    scale: float = 1.0,
    length: str = "angstrom",
    energy: str = "eV",
    full_list: bool = False,
    per_atom: bool = True,
    dtype: str = "float64",
) -> str:
    """Save an LJ `AtomisticModel` (σ, rc divided by `length` factor, ε by `energy` factor)."""
    length_factor = {"angstrom": 1.0, "nm": 10.0}[length]
    energy_factor = {"eV": 1.0, "kJ/mol": KJ_PER_MOL}[energy]
    module = PairLJ(
        LJ["sigma"] * scale / length_factor,
        LJ["epsilon"] / scale / energy_factor,
        LJ["rc"] / length_factor,
        full_list,
    )
    caps = ModelCapabilities(
        outputs={"energy": ModelOutput(unit=energy, sample_kind="atom" if per_atom else "system")},
        atomic_types=[18, 29],
        interaction_range=LJ["rc"] / length_factor,
        length_unit=length,
        supported_devices=["cpu", "cuda"],
        dtype=dtype,
    )
    AtomisticModel(module.eval(), ModelMetadata(name="lj-metatomic"), caps).save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Exported files: Å/eV half list, nm/kJ/mol full list, two committee members, float32."""
    root = tmp_path_factory.mktemp("metatomic")
    return {
        "lj": export_lj(root / "lj.pt"),
        "lj-nm": export_lj(root / "lj-nm.pt", length="nm", energy="kJ/mol", full_list=True),
        "m0": export_lj(root / "m0.pt", scale=0.99),
        "m1": export_lj(root / "m1.pt", scale=1.01),
        "lj-system": export_lj(root / "lj-system.pt", per_atom=False),
    }


def native(dtype: str = "float64"):
    return lennard_jones(**LJ, dtype=dtype)


def compare(provider: LocalProvider, reference: LocalProvider, rtol: float) -> None:
    atoms = [conf.test_system("Cu", 3.7), conf.test_system("Cu", 3.7, seed=5) * (1, 2, 1)]
    props = ["energy", "forces", "stress", "energies"]
    for got, ref in zip(provider.evaluate(atoms, props), reference.evaluate(atoms, props)):
        for key in props:
            scale = max(np.abs(ref[key]).max(), 1e-3)
            assert np.abs(got[key] - ref[key]).max() <= rtol * scale, key


def test_metatomic_lj_matches_native_lj(files):
    """Energy, forces, stress, per-atom energies equal the native LJ's to 1e-10 (relative)."""
    model = load_metatomic([files["lj"]], {"name": "lj-mta"}, check_consistency=True)
    assert model.info.cutoff == pytest.approx(LJ["rc"]) and model.info.elements == {18, 29}
    assert model.info.dtype == "float64" and model.info.ensemble_size == 0
    compare(LocalProvider(model), LocalProvider(native()), 1e-10)


def test_units_are_converted_to_angstrom_and_ev(files):
    """A model in nm and kJ/mol (full neighbour list) serves the same Å/eV physics."""
    model = load_metatomic([files["lj-nm"]], {}, check_consistency=True)
    assert model.info.cutoff == pytest.approx(LJ["rc"])
    assert model.info.extra["interaction_range"] == pytest.approx(LJ["rc"])
    compare(LocalProvider(model), LocalProvider(native()), 1e-8)


def test_per_system_model_offers_no_per_atom_energies(files):
    model = load_metatomic([files["lj-system"]], {})
    assert "energies" not in model.info.properties
    atoms = conf.test_system("Cu", 3.7)
    got = LocalProvider(model).evaluate([atoms], ["energy", "forces"])[0]
    ref = LocalProvider(native()).evaluate([atoms], ["energy", "forces"])[0]
    assert abs(got["energy"] - ref["energy"]) <= 1e-10 * abs(ref["energy"])


def test_committee_of_two_files_is_an_ensemble(files):
    """Two files with σ·(1∓1%) give mean and std of the two native LJ members."""
    model = load_metatomic([files["m0"], files["m1"]], {})
    assert model.info.ensemble_size == 2 and "uncertainty" in model.info.properties
    atoms = conf.test_system("Cu", 3.7)
    got = LocalProvider(model).evaluate([atoms], ["energy", "forces", "uncertainty"])[0]
    members = [
        LocalProvider(
            lennard_jones(**{**LJ, "sigma": LJ["sigma"] * s, "epsilon": LJ["epsilon"] / s})
        ).evaluate([atoms], ["energy"])[0]["energy"]
        for s in (0.99, 1.01)
    ]
    assert got["energy"] == pytest.approx(np.mean(members), rel=1e-10)
    assert got["energy_std"] == pytest.approx(np.std(members), rel=1e-8)
    assert got["energy_std"] > 1e-3 and got["max_force_std"] > 0


def test_unsupported_element_is_refused(files):
    from ase import Atoms

    model = LocalProvider(load_metatomic([files["lj"]], {}))
    with pytest.raises(ValueError, match="element|atomic type"):
        model.evaluate([Atoms("H2", positions=[[0, 0, 0], [1.0, 0, 0]])])


def test_store_serves_metatomic_and_committees(files, tmp_path):
    """Upload through the store (checksummed, size-limited) and load it back."""
    store = ModelStore(tmp_path)
    data = Path(files["lj"]).read_bytes()
    version = store.add_artifact(
        "lj", data, {"family": "metatomic"}, max_bytes=10**7, make_default=True
    )
    meta = store.metadata("lj", version)
    assert meta["cutoff"] == pytest.approx(LJ["rc"]) and meta["elements"] == [18, 29]
    served = store.load("lj")
    assert served.info.kind == "metatomic" and served.info.version == version
    compare(LocalProvider(served), LocalProvider(native()), 1e-10)
    pair = [Path(files[k]).read_bytes() for k in ("m0", "m1")]
    version = store.add_artifact("lj", pair, {"family": "metatomic"}, max_bytes=10**7)
    assert store.load("lj", version).info.ensemble_size == 2
    with pytest.raises(StoreError, match="exceed"):
        store.add_artifact("lj", data, {"family": "metatomic"}, max_bytes=1000)


@pytest.fixture(scope="module")
def providers(files):
    return {
        dtype: LocalProvider(load_metatomic([files["lj"]], {}, dtype=dtype))
        for dtype in ("float64", "float32")
    }


def test_conformance(providers):
    """The shared suite: FD forces and stress, invariances, batching, dtypes, cutoff."""
    provider, atoms = providers["float64"], conf.test_system("Cu", 3.7)
    conf.check_forces_are_gradient(provider, atoms)
    conf.check_stress_is_strain_derivative(provider, atoms)
    conf.check_invariances(provider, atoms)
    conf.check_batch_equals_single_calls(
        provider, atoms, conf.test_system("Cu", 3.7, seed=11) * (1, 2, 1)
    )
    conf.check_dtypes_agree(provider, providers["float32"], atoms)
    conf.check_smooth_at_cutoff(provider, "Cu", provider.model.info.cutoff)


def with_extension(path: str) -> bytes:
    """The exported file with an extension entry naming a native library to load."""
    src, out = zipfile.ZipFile(path), io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("/extra/extensions"):
                data = json.dumps([{"name": "fake_ext", "path": "/nonexistent/fake.so"}]).encode()
            dst.writestr(name, data)
    return out.getvalue()


def test_model_with_native_extensions_needs_the_trusted_flag(files, tmp_path):
    """Such a file is stored but not loaded (not even probed) until an admin trusts it."""
    store = ModelStore(tmp_path)
    version = store.add_artifact(
        "ext", with_extension(files["lj"]), {"family": "metatomic"}, max_bytes=10**7
    )
    assert "fake_ext" in store.metadata("ext", version)["needs_trust"]
    with pytest.raises(StoreError, match="not trusted .* 'trusted' flag .* models trust ext v1"):
        store.load("ext", version)
    store.set_trusted("ext", version)
    served = store.load("ext", version)  # metatomic warns that fake_ext is missing
    assert served.info.cutoff == pytest.approx(LJ["rc"])


def test_committee_upload_over_rest_serves_remote_clients(files, tmp_path):
    """`mlipserve models upload A META --member B` sends two `artifact` parts: a committee;
    a gRPC client then gets its energy and std."""
    import httpx
    from ase.build import bulk
    from typer.testing import CliRunner

    from mlipserve.cli import app
    from mlipserve.client import Client
    from mlipserve.server.config import Settings
    from tests.conftest import ServerThread

    srv = ServerThread(Settings(port=0, models=["lj"], data_dir=tmp_path / "data"))
    try:
        (tmp_path / "meta.json").write_text(json.dumps({"family": "metatomic"}))
        result = CliRunner().invoke(
            app,
            [
                "models",
                "upload",
                "ar",
                files["m0"],
                str(tmp_path / "meta.json"),
                "--member",
                files["m1"],
                "--url",
                srv.rest_url,
            ],
        )
        assert result.exit_code == 0 and "uploaded ar@v1" in result.output, result.output
        with httpx.Client(base_url=srv.rest_url, timeout=60) as http:
            listed = http.get("/v1/models/ar").json()["versions"][0]
            assert listed["kind"] == "metatomic" and listed["ensemble_size"] == 2
            assert http.post("/v1/models/ar/versions/v1/load").status_code == 200
            bad = http.post(
                "/v1/models/ar/versions",
                files={"artifact": ("x.pt", b"\x80\x04K.")},
                data={"metadata": json.dumps({"family": "metatomic"})},
            )
            assert bad.status_code == 422 and "pickle" in bad.json()["detail"]
        atoms = bulk("Ar", "fcc", a=5.3, cubic=True)
        result = Client(srv.address, "ar").evaluate(atoms, ["energy", "uncertainty"])
        local = LocalProvider(load_metatomic([files["m0"], files["m1"]], {}))
        expected = local.evaluate([atoms], ["energy", "uncertainty"])[0]
        assert result["energy"] == pytest.approx(expected["energy"], rel=1e-12)
        assert result["energy_std"] == pytest.approx(expected["energy_std"], rel=1e-12)
    finally:
        srv.stop()
