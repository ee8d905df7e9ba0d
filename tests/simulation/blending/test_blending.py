"""QM/MLIP blending: EMT ("QM") embedded in Morse ("MLIP") around a core atom of a Cu cluster.

References: finite differences of the blended energy (forces, stress), direct cluster
calculations with the same providers (hard-cut jumps, SAP kinks, limits), ASE's EMT and
tblite's xTB through plain ASE, and NVE energy conservation with dt² scaling.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from mlipserve.server.serving.local import LocalProvider
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.blending import BlendedProvider, radial_scan, scan_against_hard_cut
from mlipserve.simulation.blending.partitions import (
    permuted_partitions,
    smoothed_sorted_partitions,
    sorted_partitions,
)
from mlipserve.simulation.blending.reference import ASECalculatorProvider
from mlipserve.simulation.blending.switching import Switch
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import velocity_verlet
from mlipserve.simulation.md.state import MDState
from tests.simulation.counting import CountingProvider

R_IN, WIDTH = 3.3, 0.8  # the shell holds the rattled second-neighbour atoms (3.5-3.75 Å)


def cu_cluster() -> tuple:
    """38 fcc Cu atoms within 4.6 Å of a central atom (non-periodic) and that atom's index."""
    crystal = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    middle = crystal.positions[
        np.argmin(np.linalg.norm(crystal.positions - crystal.cell.sum(0) / 2, axis=1))
    ]
    atoms = crystal[np.linalg.norm(crystal.positions - middle, axis=1) < 4.6]
    atoms.pbc, atoms.cell = False, np.zeros((3, 3))
    core = int(np.argmin(np.linalg.norm(atoms.positions - middle, axis=1)))
    return atoms, core


@pytest.fixture(scope="module")
def setup():
    """Providers, the ideal cluster, the per-atom shift EMT→Morse, and a rattled copy."""
    emt, morse = ASECalculatorProvider(EMT()), LocalProvider("morse")
    ideal, core = cu_cluster()
    shift = (morse.evaluate([ideal])[0]["energy"] - emt.evaluate([ideal])[0]["energy"]) / len(ideal)
    rattled = ideal.copy()
    rattled.rattle(0.05, seed=3)
    return {
        "emt": emt,
        "morse": morse,
        "ideal": ideal,
        "atoms": rattled,
        "core": core,
        "shift": {"Cu": shift},
    }


def blend(setup, **kwargs) -> BlendedProvider:
    args = {"r_inner": R_IN, "width": WIDTH, "reference_shift": setup["shift"]} | kwargs
    return BlendedProvider(setup["emt"], setup["morse"], [setup["core"]], **args)


def direct_delta(setup, atoms, members):
    """ΔE, ΔF (scattered onto all atoms) of one cluster: EMT + shift − Morse, computed directly."""
    cluster = atoms[np.sort(members)]
    ref = setup["emt"].evaluate([cluster])[0]
    low = setup["morse"].evaluate([cluster])[0]
    forces = np.zeros((len(atoms), 3))
    forces[np.sort(members)] = ref["forces"] - low["forces"]
    return ref["energy"] + setup["shift"]["Cu"] * len(cluster) - low["energy"], forces


def test_switch_values_derivatives_and_smoothness():
    """s = 1 inside, 0 outside; ds/dd = central differences (h = 1e-7) to 2e-7 (the cosine's
    s'' jump at the edges costs h·Δs''/4 ≈ 1e-7); quintic C², cosine C¹."""
    d = np.linspace(2.9, 4.4, 301)
    for kind in ("quintic", "cosine"):
        sw = Switch(3.0, 1.2, kind)
        s, ds = sw(d)
        assert np.all(s[d <= 3.0] == 1.0) and np.all(s[d >= 4.2] == 0.0)
        h = 1e-7
        fd = (sw(d + h)[0] - sw(d - h)[0]) / (2 * h)
        assert np.abs(fd - ds).max() < 2e-7
        # second derivative at the shell edges: 0 for the quintic, π²/(2 w²) for the cosine
        s2 = (sw(np.array([3.0 + 1e-4]))[1] - sw(np.array([3.0]))[1]) / 1e-4
        expected = 0.0 if kind == "quintic" else -(np.pi**2) / (2 * 1.2**2)
        assert s2[0] == pytest.approx(expected, abs=2e-3)
    hard = Switch(3.0, 0.0)
    assert hard.hard and hard(np.array([2.99, 3.01]))[0].tolist() == [1.0, 0.0]


def synthetic_set_function(subset) -> float:
    """A non-additive set function (stands in for ΔE of a cluster)."""
    s = sorted(int(g) for g in subset)
    return np.sin(sum(s) + 1.0) + 0.3 * len(s) ** 2 + (0.7 if {0, 1} <= set(s) else 0.0)


def interpolate(w, scheme, **kwargs):
    subsets, c, dc = scheme(w, **kwargs)
    values = np.array([synthetic_set_function(s) for s in subsets])
    return c @ values, dc.T @ values, c.sum()


@pytest.mark.parametrize(
    ("scheme", "kwargs"),
    [
        (sorted_partitions, {}),
        (smoothed_sorted_partitions, {"eps": 0.05}),
        (permuted_partitions, {"max_shell": 8}),
    ],
)
def test_partition_schemes_gradient_sum_and_limits(scheme, kwargs):
    """Σc = 1 (1e-12), ∂E/∂w = central differences (1e-8), E = f(A) when w is A's indicator."""
    w = np.random.default_rng(0).uniform(0.05, 0.95, 6)
    w[2] = w[1] + 0.01  # a near-tie: the smooth scheme adds the extra subset
    _, grad, total = interpolate(w, scheme, **kwargs)
    assert total == pytest.approx(1.0, abs=1e-12)
    h = 1e-6
    fd = [
        (
            interpolate(w + h * np.eye(6)[g], scheme, **kwargs)[0]
            - interpolate(w - h * np.eye(6)[g], scheme, **kwargs)[0]
        )
        / (2 * h)
        for g in range(6)
    ]
    assert np.abs(np.array(fd) - grad).max() < 1e-8
    indicator = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    assert interpolate(indicator, scheme, **kwargs)[0] == pytest.approx(
        synthetic_set_function([0, 2, 5]), abs=1e-12
    )


def test_sap_kink_at_ties_and_its_smoothing():
    """At w_0 = w_1, SAP's ∂E/∂w_0 jumps by the non-additivity N = f(A∪0)+f(A∪1)−f(A)−f(A∪01)
    (exactly, 1e-9); the smoothed scheme's gradient is continuous (jump < 1e-5 over 2e-7) and
    equals SAP exactly (1e-12) when no two soft windows overlap."""
    w = np.array([0.5, 0.5, 0.2, 0.8])
    d = np.array([1e-7, 0, 0, 0])
    f = synthetic_set_function
    n_01 = f([3, 0]) + f([3, 1]) - f([3]) - f([3, 0, 1])
    jump = interpolate(w + d, sorted_partitions)[1] - interpolate(w - d, sorted_partitions)[1]
    assert jump[0] == pytest.approx(n_01, abs=1e-9)
    smooth = [interpolate(w + s * d, smoothed_sorted_partitions, eps=0.05)[1] for s in (1, -1)]
    assert np.abs(smooth[0] - smooth[1]).max() < 1e-5
    w = np.array([0.9, 0.15, 0.55, 0.35, 0.75])
    sap = interpolate(w, sorted_partitions)
    smooth = interpolate(w, smoothed_sorted_partitions, eps=0.1)
    assert smooth[0] == pytest.approx(sap[0], abs=1e-12)
    assert np.abs(smooth[1] - sap[1]).max() < 1e-12


def test_ase_calculator_provider_matches_served_emt_and_plain_ase():
    """Torch-free ASECalculatorProvider(EMT()) = the server's EMT adapter (1e-10, stress too);
    with tblite's GFN2-xTB it returns what ASE's get_potential_energy/get_forces give."""
    crystal = bulk("Cu", "fcc", a=3.6).repeat(2)
    crystal.rattle(0.05, seed=1)
    mine = ASECalculatorProvider(EMT()).evaluate([crystal, crystal[:5]], ("energy", "forces"))
    served = LocalProvider("emt").evaluate([crystal, crystal[:5]], ("energy", "forces"))
    for a, b in zip(mine, served):
        assert a["energy"] == pytest.approx(b["energy"], abs=1e-10)
        assert np.abs(a["forces"] - b["forces"]).max() < 1e-10
    stress = ASECalculatorProvider(EMT()).evaluate([crystal], ("energy", "stress"))[0]["stress"]
    assert (
        np.abs(stress - LocalProvider("emt").evaluate([crystal], ("stress",))[0]["stress"]).max()
        < 1e-10
    )
    from tblite.ase import TBLite

    water = molecule("H2O")
    res = ASECalculatorProvider(TBLite(method="GFN2-xTB", verbosity=0)).evaluate([water])[0]
    water.calc = TBLite(method="GFN2-xTB", verbosity=0)
    assert res["energy"] == pytest.approx(water.get_potential_energy(), abs=1e-8)
    assert np.abs(res["forces"] - water.get_forces()).max() < 1e-6
    with pytest.raises(ValueError, match="cannot compute"):
        ASECalculatorProvider(EMT()).evaluate([crystal], ("uncertainty",))


def test_limits_of_the_blend(setup):
    """Reference = MLIP gives the MLIP exactly; a region holding every atom gives EMT + shift
    (energy 1e-9 eV, forces 1e-9 eV/Å, compared with a direct EMT call)."""
    atoms, morse = setup["atoms"], setup["morse"]
    same = BlendedProvider(morse, morse, [setup["core"]], R_IN, WIDTH).evaluate([atoms])[0]
    plain = morse.evaluate([atoms])[0]
    assert same["energy"] == pytest.approx(plain["energy"], abs=1e-9)
    assert np.abs(same["forces"] - plain["forces"]).max() < 1e-9
    everything = blend(setup, r_inner=20.0, width=1.0).evaluate([atoms])[0]
    direct = setup["emt"].evaluate([atoms])[0]
    assert everything["energy"] == pytest.approx(
        direct["energy"] + setup["shift"]["Cu"] * len(atoms), abs=1e-9
    )
    assert np.abs(everything["forces"] - direct["forces"]).max() < 1e-9


@pytest.mark.parametrize(
    ("scheme", "switch", "r_inner", "width"),
    [
        ("smooth", "quintic", R_IN, WIDTH),
        ("sap", "cosine", R_IN, WIDTH),
        ("pap", "quintic", 3.5, 0.3),
    ],
)
def test_forces_are_negative_gradient_of_blended_energy(setup, scheme, switch, r_inner, width):
    """F = −∇E by central differences (h = 2e-5 Å, error O(h²) ≈ 1e-7): max error < 2e-6 eV/Å
    on the core atom, two shell atoms (0 < w < 1, where the switch's derivative terms act) and
    an atom outside the shell ('pap': core and one shell atom only, its 2ⁿ clusters cost)."""
    provider = blend(setup, scheme=scheme, switch=switch, r_inner=r_inner, width=width)
    atoms = setup["atoms"]
    forces = provider.evaluate([atoms])[0]["forces"]
    weights = provider.weights(atoms)
    shell = np.flatnonzero((weights > 0) & (weights < 1))
    assert len(shell) >= 2
    picked = [setup["core"], *shell[:2], int(np.argmin(weights))][: 2 if scheme == "pap" else 4]
    h, images = 2e-5, []
    for i in picked:
        for k in range(3):
            for sign in (1, -1):
                image = atoms.copy()
                image.positions[i, k] += sign * h
                images.append(image)
    energies = np.array([r["energy"] for r in provider.evaluate(images)]).reshape(-1, 3, 2)
    numerical = -(energies[..., 0] - energies[..., 1]) / (2 * h)
    assert np.abs(numerical - forces[picked]).max() < 2e-6


def test_stress_is_strain_derivative_in_a_periodic_crystal(setup):
    """Periodic Cu (108 atoms): blended stress = (1/V) ∂E/∂ε by central differences
    (h = 1e-5, tolerance 1e-6 eV/Å³); forces = −∇E there too (2e-6 eV/Å)."""
    crystal = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    crystal.rattle(0.05, seed=5)
    provider = BlendedProvider(
        setup["emt"], setup["morse"], [0], 2.9, 0.9, reference_shift=setup["shift"]
    )
    res = provider.evaluate([crystal], ("energy", "forces", "stress"))[0]
    h, voigt = 1e-5, [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    images = []
    for i, j in voigt:
        for sign in (1, -1):
            strain = np.eye(3)
            strain[i, j] += sign * h / (1 if i == j else 2)
            strain[j, i] += 0 if i == j else sign * h / 2
            image = crystal.copy()
            image.set_cell(crystal.cell.array @ strain, scale_atoms=True)
            images.append(image)
    energies = np.array([r["energy"] for r in provider.evaluate(images)]).reshape(6, 2)
    numerical = (energies[:, 0] - energies[:, 1]) / (2 * h) / crystal.get_volume()
    assert np.abs(numerical - res["stress"]).max() < 1e-6
    with pytest.raises(ValueError, match="periodic"):
        provider.evaluate([setup["atoms"]], ("energy", "stress"))


def test_one_batched_call_per_provider_and_remote_reference(setup, server):
    """Two systems → one reference call holding every cluster and one MLIP call holding both
    systems plus the clusters; EMT served over gRPC gives the same blend (1e-10)."""
    ref, mlip = CountingProvider(setup["emt"]), CountingProvider(setup["morse"])
    provider = BlendedProvider(
        ref, mlip, [setup["core"]], R_IN, WIDTH, reference_shift=setup["shift"]
    )
    systems = [setup["atoms"], setup["ideal"]]
    local = provider.evaluate(systems)
    n_clusters = sum(len(p.members) for p in provider.last_plans)
    assert ref.sizes == [n_clusters] and mlip.sizes == [n_clusters + 2]
    remote = RemoteProvider(server.address, "emt")
    try:
        via_server = BlendedProvider(
            remote, setup["morse"], [setup["core"]], R_IN, WIDTH, reference_shift=setup["shift"]
        ).evaluate(systems)
    finally:
        remote.close()
    for a, b in zip(local, via_server):
        assert a["energy"] == pytest.approx(b["energy"], abs=1e-10)
        assert np.abs(a["forces"] - b["forces"]).max() < 1e-10


def bracket_jumps(provider, atoms, index, origin, where, deltas=(1e-3, 1e-4, 1e-5)):
    """max |F(r+δ) − F(r−δ)| over all atoms for each δ, at each radius r in `where` (one call)."""
    radii = [r + s * d for r in where for d in deltas for s in (1, -1)]
    _, forces = radial_scan(provider, atoms, index, origin, radii)
    forces = forces.reshape(len(where), len(deltas), 2, len(atoms), 3)
    return np.abs(forces[:, :, 0] - forces[:, :, 1]).max(axis=(2, 3))


def test_no_force_jump_entering_or_leaving_the_shell_unlike_a_hard_cut(setup, tmp_path):
    """A second-neighbour atom moves radially from 3.2 to 4.15 Å through both shell edges and
    past the other shell atoms' distances. Smooth blend: |F(r+δ) − F(r−δ)| → 0 linearly in δ
    at every edge and tie (< 2e-3 eV/Å at δ = 1e-5); SAP likewise at both edges.
    Hard cut at 3.62 Å: the jump does not
    shrink with δ and equals ΔF(A) − ΔF(A∪i) from direct cluster calls (1e-4 eV/Å; > 0.05)."""
    atoms, core = setup["atoms"], setup["core"]
    d = np.linalg.norm(atoms.positions - atoms.positions[core], axis=1)
    mover = int(np.flatnonzero((d > 3.5) & (d < 3.6))[0])
    others = np.sort(d[(d > R_IN) & (d < R_IN + WIDTH) & (np.arange(len(d)) != mover)])
    events = [R_IN, R_IN + WIDTH, *others]
    smooth = bracket_jumps(
        blend(setup, scheme="smooth"), atoms, mover, core, events, deltas=(1e-3, 1e-5)
    )
    assert np.all(smooth[:, -1] < 2e-3)
    assert np.all(smooth[:, -1] < 0.05 * smooth[:, 0] + 1e-6)  # δ: 1e-3 → 1e-5, linear decay
    sap_edges = bracket_jumps(blend(setup), atoms, mover, core, events[:2], deltas=(1e-3, 1e-5))
    assert np.all(sap_edges[:, -1] < 0.05 * sap_edges[:, 0] + 1e-6)  # SAP: no jump at the edges
    hard = blend(setup, r_inner=3.62, width=0.0)
    stays = bracket_jumps(hard, atoms, mover, core, [3.62], deltas=(1e-3, 1e-6))[0]
    assert stays[1] > 0.9 * stays[0]
    _, forces = radial_scan(hard, atoms, mover, core, [3.62 + 1e-7, 3.62 - 1e-7])
    moved = atoms.copy()
    moved.positions[mover] = (
        atoms.positions[core] + 3.62 * (atoms.positions[mover] - atoms.positions[core]) / d[mover]
    )
    dist = np.linalg.norm(moved.positions - moved.positions[core], axis=1)
    inner = np.setdiff1d(np.flatnonzero(dist < 3.62), [mover])
    predicted = (
        direct_delta(setup, moved, inner)[1]
        - direct_delta(setup, moved, np.append(inner, mover))[1]
    )  # F(outside) − F(inside)
    assert np.abs(predicted).max() > 0.05
    assert np.abs(forces[0] - forces[1] - predicted).max() < 1e-4
    curves = scan_against_hard_cut(
        str(tmp_path / "scan.png"),
        setup["emt"],
        setup["morse"],
        atoms,
        core,
        mover,
        R_IN,
        WIDTH,
        np.linspace(3.2, 4.15, 20),
        reference_shift=setup["shift"],
        scheme="smooth",
    )
    assert (tmp_path / "scan.png").stat().st_size > 1000 and len(curves) == 2


def test_sap_force_kink_at_a_weight_tie_is_the_predicted_nonadditivity(setup):
    """SAP (no smoothing) at d_i = d_j: force jump = −(∇w_i − ∇w_j)·N_ij with N_ij from four
    direct cluster calls (agreement 1e-4 eV/Å); the smooth scheme shows none (< 2e-3)."""
    atoms, core = setup["atoms"], setup["core"]
    d = np.linalg.norm(atoms.positions - atoms.positions[core], axis=1)
    mover = int(np.flatnonzero((d > 3.5) & (d < 3.6))[0])
    tied = int(np.flatnonzero((d > 3.6) & (d < 3.65))[0])
    sap = blend(setup, scheme="sap")
    r = d[tied]
    measured_delta = 1e-7
    _, forces = radial_scan(sap, atoms, mover, core, [r + measured_delta, r - measured_delta])
    jump = forces[0] - forces[1]
    moved = atoms.copy()
    unit = (atoms.positions[mover] - atoms.positions[core]) / d[mover]
    moved.positions[mover] = atoms.positions[core] + r * unit
    w = sap.weights(moved)
    above = np.flatnonzero(w > w[tied] + 1e-9)
    e = {
        key: direct_delta(setup, moved, np.concatenate([above, extra]).astype(int))[0]
        for key, extra in (("A", []), ("i", [mover]), ("j", [tied]), ("ij", [mover, tied]))
    }
    n_ij = e["i"] + e["j"] - e["A"] - e["ij"]
    _, ds = Switch(R_IN, WIDTH)(np.array([r]))
    unit_j = (atoms.positions[tied] - atoms.positions[core]) / r
    grad = np.zeros((len(atoms), 3))  # ∇w_mover − ∇w_tied
    grad[mover] += ds[0] * unit
    grad[core] -= ds[0] * unit
    grad[tied] -= ds[0] * unit_j
    grad[core] += ds[0] * unit_j
    # the mover goes from inside (w_i > w_j) to outside: ΔF = F(out) − F(in) = +N ∇(w_i − w_j)
    assert np.abs(jump - n_ij * grad).max() < 1e-4
    assert np.abs(jump).max() > 0.01
    smooth = bracket_jumps(blend(setup, scheme="smooth"), atoms, mover, core, [r], deltas=(1e-5,))
    assert smooth.max() < 2e-3


@pytest.mark.parametrize(("scheme", "bound", "ratio"), [("smooth", 3e-3, 3.0), ("sap", 4e-3, 2.5)])
def test_nve_energy_conserved_while_atoms_cross_the_shell(setup, scheme, bound, ratio):
    """Velocity Verlet, 80 fs from 1500 K (38 atoms), ≥ 3 shell crossings (measured 4):
    smooth: max |E(t) − E(0)| < 3 meV at dt = 2 fs (measured 2.1), error ratio 4 fs / 2 fs in
    [3, 5.5] (dt²: 4; measured 3.7); SAP: < 4 meV (measured 2.7), ratio > 2.5 (measured 3.0:
    its kinks at weight ties cost a little of the dt² order). The hard cut at 3.62 Å (90 fs at
    3 fs) jumps by > 50 meV (measured 0.2 eV) in one step at a crossing."""
    atoms = setup["ideal"]

    def run(provider, dt_fs, total_fs=80):
        md = MolecularDynamics(
            provider,
            MDState.from_atoms(atoms, temperature_K=1500, seeds=1),
            velocity_verlet(dt_fs * units.fs),
        )
        e0, errors, zones = md.state.total_energy[0], [], []

        def record():
            errors.append(md.state.total_energy[0] - e0)
            w = provider.last_plans[0].weights
            zones.append(np.where(w >= 1, 2, np.where(w > 0, 1, 0)))

        md.attach(record)
        md.run(round(total_fs / dt_fs))
        return np.array(errors), int((np.diff(np.array(zones), axis=0) != 0).sum())

    fine, crossings = run(blend(setup, scheme=scheme), 2.0)
    coarse, _ = run(blend(setup, scheme=scheme), 4.0)
    assert crossings >= 3
    assert np.abs(fine).max() < bound
    assert ratio < np.abs(coarse).max() / np.abs(fine).max() < 5.5
    if scheme == "sap":
        hard, hard_crossings = run(blend(setup, r_inner=3.62, width=0.0), 3.0, 90)
        assert hard_crossings >= 1 and np.abs(np.diff(hard)).max() > 0.05


def water_cluster(shifts) -> Atoms:
    """A water molecule at the origin and one more at each shift, the k-th turned 40k + 10°."""
    water = molecule("H2O")
    atoms = water.copy()
    for k, shift in enumerate(shifts):
        m = water.copy()
        m.rotate(40 * k + 10, "z")
        m.translate(shift)
        atoms += m
    return atoms


def test_molecular_groups_with_xtb_reference():
    """Water tetramer, core = one molecule, whole molecules blended by centroid distance:
    GFN2-xTB in GFN1-xTB (an O shift aligns the zeros); F = −∇E by central differences
    (h = 1e-4 Å; xTB's SCF noise limits the tolerance to 1e-3 eV/Å) on an H of a shell molecule."""
    from tblite.ase import TBLite

    water = molecule("H2O")
    atoms = water_cluster([(2.9, 0, 0), (0, 2.9, 0.3), (-2.6, -1.0, 0.8)])
    gfn2 = ASECalculatorProvider(TBLite(method="GFN2-xTB", verbosity=0, accuracy=0.01))
    gfn1 = ASECalculatorProvider(TBLite(method="GFN1-xTB", verbosity=0, accuracy=0.01))
    offset = gfn1.evaluate([water])[0]["energy"] - gfn2.evaluate([water])[0]["energy"]
    groups = np.repeat(np.arange(4), 3)
    provider = BlendedProvider(
        gfn2, gfn1, [0, 1, 2], 2.6, 1.0, groups=groups, reference_shift={"O": offset}
    )
    forces = provider.evaluate([atoms])[0]["forces"]
    weights = provider.weights(atoms)
    shell = np.flatnonzero((weights > 0) & (weights < 1))
    assert len(shell) >= 3 and len(set(groups[shell])) >= 1
    i, h, images = int(shell[-1]), 1e-4, []
    for k in range(3):
        for sign in (1, -1):
            image = atoms.copy()
            image.positions[i, k] += sign * h
            images.append(image)
    e = np.array([r["energy"] for r in provider.evaluate(images)]).reshape(3, 2)
    assert np.abs(-(e[:, 0] - e[:, 1]) / (2 * h) - forces[i]).max() < 1e-3
    with pytest.raises(ValueError, match="mixes core"):
        BlendedProvider(gfn2, gfn1, [0, 1], 2.6, 1.0, groups=groups).evaluate([atoms])


def test_bad_input_is_refused(setup):
    """Clear ValueErrors: unknown scheme/switch, negative width, per-atom energies, a cell
    smaller than the blended sphere, a shell too large for 'pap', too many tied weights for
    'smooth', an unknown element shift, core indices out of range."""
    emt, morse, atoms, core = setup["emt"], setup["morse"], setup["atoms"], setup["core"]
    with pytest.raises(ValueError, match="scheme"):
        BlendedProvider(emt, morse, [core], 3.0, 1.0, scheme="oniom")
    with pytest.raises(ValueError, match="switch kind"):
        BlendedProvider(emt, morse, [core], 3.0, 1.0, switch="linear")
    with pytest.raises(ValueError, match="width"):
        BlendedProvider(emt, morse, [core], 3.0, -1.0)
    with pytest.raises(ValueError, match="element"):
        BlendedProvider(emt, morse, [core], 3.0, 1.0, reference_shift={"Xx": 1.0})
    with pytest.raises(ValueError, match="per-atom energies"):
        BlendedProvider(emt, morse, [core], 3.0, 1.0).evaluate([atoms], ("energy", "energies"))
    with pytest.raises(ValueError, match="too small"):
        BlendedProvider(emt, morse, [0], 3.0, 1.0).evaluate([bulk("Cu", cubic=True).repeat(2)])
    with pytest.raises(ValueError, match="pap"):
        BlendedProvider(emt, morse, [core], 2.0, 3.0, scheme="pap", max_pap_shell=4).evaluate(
            [atoms]
        )
    with pytest.raises(ValueError, match="nearly equal weights"):  # 12 exactly tied neighbours
        blend(setup, scheme="smooth", r_inner=2.0, width=1.0).evaluate([setup["ideal"]])
    with pytest.raises(ValueError, match="out of range"):
        BlendedProvider(emt, morse, [99], 3.0, 1.0).evaluate([atoms])
