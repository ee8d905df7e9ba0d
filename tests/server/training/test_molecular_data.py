"""The molecular data script: seeded generators, H/C/N/O only, sane geometry, and a tiny
end-to-end build (real GFN2-xTB labels, a tiny ensemble, the held-out figures)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from mlipserve.server.labellers.xtb import XtbLabeller
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.store import ModelStore
from mlipserve.server.training import molecular_data as md
from mlipserve.server.training import molecular_frames as mf
from mlipserve.server.training.loop import TrainConfig
from mlipserve.server.training.pipeline import Architecture, train_version


def _recipe(seed: int):
    return md._recipe(np.random.default_rng(seed), 1)


def test_generators_are_seeded_and_deterministic():
    (a, kinds_a), (b, kinds_b), (c, _) = _recipe(3), _recipe(3), _recipe(4)
    assert kinds_a == kinds_b and len(a) == len(b) > 40
    for x, y in zip(a, b):
        assert np.array_equal(x.numbers, y.numbers)
        assert np.array_equal(x.positions, y.positions)
        assert np.array_equal(x.cell.array, y.cell.array)
    assert not all(np.allclose(x.positions, z.positions) for x, z in zip(a, c) if len(x) == len(z))
    assert set(kinds_a) >= {"water_cluster", "organic", "proton_transfer", "transition_state",
                            "hot", "water_box", "water_monomer"}  # fmt: skip


def test_every_frame_holds_only_h_c_n_o_and_no_atoms_overlap():
    frames, _ = _recipe(5)
    rng = np.random.default_rng(9)
    frames += [mf.water_cluster(rng, 14), mf.stretched(mf.organic("glycine"), rng, (1.3, 1.7))]
    seen = set()
    for atoms in frames:
        assert set(atoms.numbers) <= mf.ELEMENTS, atoms.get_chemical_formula()
        seen |= set(atoms.numbers)
        d = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
        assert d[np.triu_indices(len(atoms), 1)].min() > 0.5, atoms.get_chemical_formula()
    assert seen == mf.ELEMENTS


def test_water_box_is_at_liquid_density_and_molecules_keep_apart():
    box = mf.water_box(np.random.default_rng(0), 16)
    density = 16 * 18.015 / 6.02214076e23 / (box.get_volume() * 1e-24)
    assert abs(density - 1.0) < 1e-9 and box.pbc.all()
    oxygens = [i for i, z in enumerate(box.numbers) if z == 8]
    d = box.get_all_distances(mic=True)[np.ix_(oxygens, oxygens)]
    assert d[np.triu_indices(16, 1)].min() >= 2.5
    # each H sits on its own O at the monomer's bond length
    oh = [box.get_distance(i, i + k, mic=True) for i in oxygens for k in (1, 2)]
    assert np.allclose(oh, molecule("H2O").get_distance(0, 1), atol=1e-9)


def test_proton_transfer_paths_carry_the_proton_across():
    for path in ("malonaldehyde", "formic_dimer", "water_dimer"):
        start, middle, end = (mf.proton_transfer(path, t) for t in (0.0, 0.5, 1.0))
        moved = np.flatnonzero(np.linalg.norm(end.positions - start.positions, axis=1) > 1e-9)
        assert len(moved) == (2 if path == "formic_dimer" else 1)
        oxygens = [i for i, z in enumerate(start.numbers) if z == 8]
        for h in moved:
            d0 = sorted(start.get_distances(h, oxygens))
            d_mid = sorted(middle.get_distances(h, oxygens))
            d1 = sorted(end.get_distances(h, oxygens))
            assert d0[0] < 1.05 and abs(d1[0] - d0[0]) < 1e-9  # same bond, other oxygen
            assert d_mid[1] - d_mid[0] < 0.05  # the transition state is halfway
            far = np.argmax(start.get_distances(h, oxygens) - end.get_distances(h, oxygens))
            assert end.get_distance(h, oxygens[far]) < start.get_distance(h, oxygens[far])


def test_an_unknown_path_is_refused_by_name():
    with pytest.raises(ValueError, match="no proton-transfer path 'ammonia'"):
        mf.proton_transfer("ammonia", 0.5)


def test_tiny_end_to_end_build_with_real_xtb_labels(tmp_path):
    rng = np.random.default_rng(0)
    frames = [mf.rattle(mf.organic(n), rng, 0.05) for n in ("H2O", "NH3", "CH4", "CH3OH")]
    frames += [mf.water_cluster(rng, 3), mf.proton_transfer("malonaldehyde", 0.5)]
    train = md.label(frames, ["organic"] * 4 + ["water_cluster", "transition_state"])
    train += md.md_frames(mf.organic("H2CO"), rng, 600.0, 6, 2, "organic_md")
    assert len(train) == 9 and md.counts(train)["organic_md"] == 3
    # a label is xTB's energy, and an MD frame's label is a single point at its positions
    (ref,) = XtbLabeller().label([train[0]])
    assert train[0].get_potential_energy() == ref.atoms.calc.results["energy"]
    (ref,) = XtbLabeller().label([train[-1]])
    assert np.allclose(train[-1].get_forces(), ref.atoms.calc.results["forces"], atol=1e-8)
    store = ModelStore(tmp_path)
    cfg = TrainConfig(epochs=3, split=(0.7, 0.3, 0.0), stress_weight=0.0)
    arch = Architecture(members=2, features=8, layers=1, cutoff=4.0)
    version, _ = train_version(train, store, md.NAME, cfg, arch=arch, progress=False)
    assert store.metadata(md.NAME, version)["elements"] == [1, 6, 7, 8]
    provider = LocalProvider(store.load(md.NAME, version, dtype="float64", device="cpu"))
    figures = md.figures(provider, train)
    assert figures["n"] == 9 and figures["force_mae_meV_per_A"] > 0
    assert figures["mean_max_force_std_meV_per_A"] > 0
    assert -1.0 <= figures["spearman_max_force_std_vs_error"] <= 1.0
