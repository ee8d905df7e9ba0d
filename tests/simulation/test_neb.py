"""Batched NEB against ASE's own NEB on the same potential; screening and uncertainty."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import add_adsorbate, fcc100
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.mep import NEB, NEBTools
from ase.optimize import BFGS, FIRE, QuasiNewton

from mlipserve.server.models.builtin import emt_model
from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.neb import BatchedNEB, make_band, run_neb, screen, screen_and_refine
from mlipserve.simulation.relax import relax_batch
from tests.simulation.counting import CountingProvider


@pytest.fixture(scope="module")
def emt():
    return LocalProvider(emt_model())


def adatom_hop(symbol="Al", adatom="Au", a=None, size=(2, 2, 3), steps=(1, 0), height=1.7):
    """ASE's NEB tutorial geometry: adatom in a hollow of fcc(100), bottom layers fixed."""
    slab = fcc100(symbol, size=size, a=a)
    add_adsorbate(slab, adatom, height, "hollow")
    slab.center(axis=2, vacuum=4.0)
    slab.set_constraint(FixAtoms(mask=[tag > 1 for tag in slab.get_tags()]))
    final = slab.copy()
    final[-1].x += steps[0] * slab.cell[0, 0] / size[0]
    final[-1].y += steps[1] * slab.cell[1, 1] / size[1]
    return slab, final


@pytest.fixture(scope="module")
def au_al_endpoints():
    """Endpoints relaxed by ASE itself (QuasiNewton on EMT), as in ASE's tutorial."""
    out = []
    for atoms in adatom_hop():
        atoms.calc = EMT()
        QuasiNewton(atoms, logfile=None).run(fmax=0.05)
        atoms.calc = None
        out.append(atoms)
    return out


def ase_band(initial, final, n=3, climb=True):
    images = [initial.copy() for _ in range(n + 1)] + [final.copy()]
    for image in images:
        image.calc = EMT()
    neb = NEB(images, climb=climb, method="improvedtangent")
    neb.interpolate()
    return neb, images


def test_au_on_al100_barrier_matches_ase_neb(emt, au_al_endpoints, tmp_path):
    initial, final = au_al_endpoints
    neb, images = ase_band(initial, final)
    opt = FIRE(neb, logfile=None)
    opt.run(fmax=0.05)
    ase_barrier = NEBTools(images).get_barrier(fit=False)[0]
    counting = CountingProvider(emt)
    result = run_neb(counting, make_band(initial, final, 3), fmax=0.05, progress=False)
    assert result.converged and result.fmax < 0.05 and result.steps == opt.nsteps
    assert abs(result.barrier - ase_barrier) < 1e-3  # 1 meV (observed: ~1e-15)
    assert 0.3 < result.barrier < 0.45  # EMT's Au hop on Al(100): 0.375 eV
    assert result.climbing_index == 2 and abs(result.reaction_energy) < 1e-6
    assert counting.sizes[0] == 5 and set(counting.sizes[1:]) == {3}  # endpoints once
    assert len(counting.sizes) == result.steps + 1  # one provider call per iteration
    png = result.plot(tmp_path / "profile.png", title="Au on Al(100), EMT")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert result.energy_std is None  # EMT is not an ensemble


def test_ase_optimizer_drives_the_batched_band_like_an_ase_band(emt, au_al_endpoints):
    initial, final = au_al_endpoints
    neb, _ = ase_band(initial, final)
    ref = BFGS(neb, logfile=None)
    ref.run(fmax=0.05)
    band = BatchedNEB(make_band(initial, final, 3), emt, climb=True)
    opt = BFGS(band, logfile=None)
    opt.run(fmax=0.05)
    assert opt.nsteps == ref.nsteps and band.calls == opt.nsteps + 1
    assert np.abs(band.get_positions() - neb.get_positions()).max() < 1e-8
    assert np.abs(band.energies - neb.energies).max() < 1e-8


def test_batched_endpoint_relaxation_matches_ase(emt, au_al_endpoints):
    results = relax_batch(emt, list(adatom_hop()), fmax=0.05, progress=False)
    for res, ref in zip(results, au_al_endpoints):
        assert res.converged
        assert abs(res.energy - emt.evaluate([ref])[0]["energy"]) < 1e-3
        fixed = res.atoms.constraints[0].index
        assert np.array_equal(res.atoms.positions[fixed], adatom_hop()[0].positions[fixed])


def test_screen_evaluates_all_bands_in_one_call_and_matches_single_runs(emt, au_al_endpoints):
    initial, final = au_al_endpoints
    bands = [make_band(initial, final, 3), make_band(initial, final, 2)]
    counting = CountingProvider(emt)
    screened = screen(counting, bands, fmax=0.05, progress=False)
    singles = [run_neb(emt, band, fmax=0.05, progress=False) for band in bands]
    assert counting.sizes[0] == 5 + 4  # all images of both bands
    assert len(counting.sizes) == max(r.steps for r in screened) + 1
    assert max(counting.sizes[1:]) == 3 + 2  # interior images of both bands together
    for s, single in zip(screened, singles):
        assert s.steps == single.steps and s.converged
        assert s.barrier == pytest.approx(single.barrier, abs=1e-10)
    assert screened[0].barrier != pytest.approx(screened[1].barrier, abs=1e-4)


def test_idpp_band_reaches_the_same_saddle(emt):
    ends = relax_batch(emt, list(adatom_hop(steps=(1, 1))), progress=False)  # diagonal hop
    linear = make_band(ends[0].atoms, ends[1].atoms, 3)
    idpp = make_band(ends[0].atoms, ends[1].atoms, 3, method="idpp")
    assert np.abs(idpp[2].positions - linear[2].positions).max() > 0.1  # a different start
    assert np.array_equal(idpp[-1].positions, ends[1].atoms.positions)
    a = run_neb(emt, linear, fmax=0.03, progress=False)
    b = run_neb(emt, idpp, fmax=0.03, progress=False)
    assert abs(a.barrier - b.barrier) < 1e-3 and a.barrier > 0.5


def test_screen_on_morse_then_refine_on_emt():
    model, reference = LocalProvider("morse"), LocalProvider(emt_model())
    hops = [adatom_hop("Cu", "Cu", steps=s) for s in ((1, 0), (1, 1))]  # near vs diagonal hollow
    ends = relax_batch(model, [hops[0][0], hops[0][1], hops[1][1]], fmax=0.05, progress=False)
    bands = [make_band(ends[0].atoms, ends[1].atoms, 3), make_band(ends[0].atoms, ends[2].atoms, 3)]
    report = screen_and_refine(model, reference, bands, top_k=1, refine_fmax=0.02, progress=False)
    assert report.ranking == [0, 1]  # the nearest-neighbour hop is the easier one
    assert list(report.refined) == [0]
    refined = report.refined[0]
    ref_ends = relax_batch(reference, list(hops[0]), fmax=0.02, progress=False)
    scratch = run_neb(
        reference, make_band(ref_ends[0].atoms, ref_ends[1].atoms, 3), fmax=0.02, progress=False
    )
    assert refined.converged and abs(refined.barrier - scratch.barrier) < 2e-3  # same saddle
    assert abs(report.screened[0].barrier - refined.barrier) > 0.05  # the model differs
    rows = report.table()
    assert rows[0]["error"] == pytest.approx(report.screened[0].barrier - refined.barrier)
    assert "refined_barrier" not in rows[1]


def test_climbing_image_uncertainty_from_an_ensemble(server, tmp_path):
    provider = RemoteProvider(server.address, "lj-ensemble")
    try:
        initial, final = adatom_hop("Ar", "Ar", a=5.26, size=(2, 2, 2), height=2.6)
        ends = relax_batch(provider, [initial, final], fmax=0.05, progress=False)
        result = run_neb(
            provider,
            make_band(ends[0].atoms, ends[1].atoms, 3),
            fmax=0.05,
            uncertainty=True,
            progress=False,
        )
        direct = provider.evaluate(
            [result.images[result.climbing_index]], ["energy", "forces", "uncertainty"]
        )[0]
    finally:
        provider.close()
    assert result.converged and result.barrier > 0.005
    assert result.energy_std is not None and result.energy_std > 1e-4
    assert result.energy_std == pytest.approx(direct["energy_std"], rel=1e-9)
    assert result.max_force_std == pytest.approx(direct["max_force_std"], rel=1e-9)
    assert len(result.image_std) == 5
    assert result.plot(tmp_path / "ar.png").stat().st_size > 10_000


def test_bad_bands_are_refused(emt, au_al_endpoints):
    initial, final = au_al_endpoints
    with pytest.raises(ValueError, match="differ in size"):
        make_band(initial, final[:-1], 3)
    swapped = final.copy()
    swapped.numbers[-1] = 29
    with pytest.raises(ValueError, match="different elements"):
        make_band(initial, swapped, 3)
    bigger = final.copy()
    bigger.cell[0, 0] += 0.5
    with pytest.raises(ValueError, match="different cells"):
        BatchedNEB([initial, initial.copy(), bigger], emt)
    with pytest.raises(ValueError, match="at least 3 images"):
        BatchedNEB([initial, final], emt)
    with pytest.raises(ValueError, match="interpolation method"):
        make_band(initial, final, 3, method="spline")


def test_identical_endpoints_are_refused():
    from ase.build import bulk

    from mlipserve.simulation.neb import make_band

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    with pytest.raises(ValueError, match="same structure"):
        make_band(atoms, atoms.copy(), 3)
