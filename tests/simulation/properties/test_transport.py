"""Transport analysis against analytic references: random walkers, vacancy correlation factors,
Ornstein–Uhlenbeck Green–Kubo vs Einstein, kinisi as a peer, unwrapping and input checks."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from ase import Atoms, units
from scipy import constants

from mlipserve.simulation.properties.transport import Trajectory, transport
from mlipserve.simulation.properties.transport_plot import plot_transport

PNG = b"\x89PNG\r\n\x1a\n"


def walkers(rng, replicas, frames, n, step, paired=False):
    """Gaussian random walks (R, T, N, 3), step std `step` Å per axis; pairs share steps."""
    k = n // 2 if paired else n
    steps = rng.normal(0.0, step, (replicas, frames - 1, k, 3))
    if paired:
        steps = np.repeat(steps, 2, axis=2)
    start = rng.uniform(0, 10, (replicas, 1, n, 3))
    return np.concatenate([start, start + np.cumsum(steps, axis=1)], axis=1)


def sigma_si(n_q2: float, d_a2_fs: float, volume_a3: float, temperature: float) -> float:
    """σ = e² Σq² D / (V k_B T) in S/m, all in SI from scipy.constants."""
    d = d_a2_fs * 1e-20 / 1e-15
    return n_q2 * constants.e**2 * d / (volume_a3 * 1e-30 * constants.k * temperature)


def test_independent_walkers_haven_one_and_correlated_pairs_haven_half():
    rng = np.random.default_rng(7)
    n, step, dt, volume, temp = 16, 0.1, 2.0, 15.0**3, 600.0
    q = np.repeat([1.0, -1.0], n // 2)
    symbols = ["Li"] * (n // 2) + ["Cl"] * (n // 2)
    d_exact = 3 * step**2 / (6 * dt)  # Å²/fs: MSD per frame 3 s², MSD = 6 D t
    pos = walkers(rng, 48, 1500, n, step)
    res = transport(Trajectory(pos, None, symbols, q, volume, temp, dt), max_lag_fraction=0.2)
    for s in ("Li", "Cl"):  # D* within 5 % (and 3σ) of the step variance / (2 dt)
        d = res.tracer_A2_ps[s]
        assert d.value == pytest.approx(d_exact * 1e3, rel=0.05)
        assert abs(d.value - d_exact * 1e3) < 3 * d.error
        assert res.tracer_cm2_s[s].value == pytest.approx(d.value * 1e-4, rel=1e-12)
    h = res.haven
    assert abs(h.value - 1) < max(2 * h.error, 0.02) and abs(h.value - 1) < 0.15 and h.error < 0.1
    e, ne = res.einstein_S_m, res.nernst_einstein_S_m
    assert abs(e.value - ne.value) < 2 * np.hypot(e.error, ne.error)
    assert ne.value == pytest.approx(sigma_si(n, d_exact, volume, temp), rel=0.05)
    assert e.value == pytest.approx(sigma_si(n, d_exact, volume, temp), rel=0.15)
    assert res.green_kubo_S_m is None and res.notes
    one = transport(Trajectory(pos[:1], None, symbols, q, volume, temp, dt))  # 5 time blocks
    assert one.n_estimates == 5 and "time blocks" in one.error_method
    d = one.tracer_weighted_A2_ps
    assert abs(d.value - d_exact * 1e3) < 3 * d.error and d.error < 0.1 * d.value

    # like-charge pairs moving in lockstep: <|ΣqΔr|²> doubles, so D_σ = 2 D* and H_R = 1/2
    pos = walkers(rng, 48, 1500, n, step, paired=True)
    res = transport(Trajectory(pos, None, symbols, q, volume, temp, dt), max_lag_fraction=0.2)
    assert res.haven.value == pytest.approx(0.5, abs=max(3 * res.haven.error, 0.04))
    assert res.einstein_S_m.value == pytest.approx(2 * res.nernst_einstein_S_m.value, rel=0.15)


def lattice(kind: str, cells: int):
    """Sites (integer coordinates), nearest-neighbour vectors and table of a periodic lattice.

    On a grid of 2·cells per axis (cells for sc): fcc keeps even x+y+z, bcc all-even or
    all-odd points; neighbours are the |d|₁ = 1 (sc), 3 (bcc) or 2 (fcc) moves."""
    moves = np.array(list(itertools.product((-1, 0, 1), repeat=3)))
    nn = moves[np.abs(moves).sum(1) == {"sc": 1, "bcc": 3, "fcc": 2}[kind]]
    size = cells if kind == "sc" else 2 * cells
    grid = np.array(list(itertools.product(range(size), repeat=3)))
    keep = {
        "sc": np.ones(len(grid), bool),
        "bcc": (grid % 2 == grid[:, :1] % 2).all(1),
        "fcc": grid.sum(1) % 2 == 0,
    }[kind]
    sites = grid[keep]
    index = -np.ones((size,) * 3, int)
    index[tuple(sites.T)] = np.arange(len(sites))
    table = index[tuple(((sites[:, None, :] + nn[None]) % size).transpose(2, 0, 1))]
    return sites, nn, table


def vacancy_kmc(kind: str, cells: int, replicas: int, frames: int, stride: int, rng):
    """One vacancy per replica swapping with a random neighbour each step; the N atoms'
    unwrapped displacements (R, frames, N, 3) every `stride` jumps, and a_nn² (grid units)."""
    sites, nn, table = lattice(kind, cells)
    n_sites = len(sites)
    occupant = np.tile(np.arange(n_sites), (replicas, 1))
    occupant[:, -1] = -1
    vacancy = np.full(replicas, n_sites - 1)
    disp = np.zeros((replicas, n_sites - 1, 3))
    out = np.empty((replicas, frames, n_sites - 1, 3), np.float32)
    rows = np.arange(replicas)
    for f in range(frames):
        out[:, f] = disp
        for k in rng.integers(len(nn), size=(stride, replicas)):
            target = table[vacancy, k]
            atom = occupant[rows, target]
            disp[rows, atom] -= nn[k]  # the atom jumps into the vacancy, against the vacancy's jump
            occupant[rows, vacancy] = atom
            occupant[rows, target] = -1
            vacancy = target
    return out, float((nn[0] ** 2).sum())


@pytest.mark.parametrize(
    "kind, cells, reference", [("fcc", 5, 0.7815), ("bcc", 6, 0.7272), ("sc", 8, 0.6531)]
)
def test_vacancy_tracer_correlation_factor(kind, cells, reference):
    rng = np.random.default_rng(11)
    sites, _, _ = lattice(kind, cells)
    n = len(sites) - 1
    stride = n // 8  # frames every N/8 vacancy jumps, 20 N jumps in all
    pos, a2 = vacancy_kmc(kind, cells, 32, 161, stride, rng)
    traj = Trajectory(pos, None, ["Cu"] * n, np.ones(n), 1.0, 1.0, dt_fs=float(stride))
    d = transport(traj).tracer_A2_ps["Cu"]  # per 1000 vacancy jumps (fs ↔ jump)
    # uncorrelated: Σ_i R_i² = n_jumps a² → D = a² / (6 N) per jump; f = D* / that
    f = d.scaled(6 * n / a2 / 1e3)
    assert f.error < 0.01
    assert f.value == pytest.approx(reference, rel=0.03)


def ou_trajectory(rng, replicas, frames, dt, temp, masses, taus):
    """Ornstein–Uhlenbeck velocities (Å/fs) with <v²> = k_B T / m per axis and correlation
    times `taus`, positions their trapezoid integral; returns (pos, vel, exact D in Å²/fs)."""
    sv = np.sqrt(units.kB * temp / np.asarray(masses)) * units.fs  # Å/fs
    a = np.exp(-dt / np.asarray(taus))
    vel = np.empty((replicas, frames, len(masses), 3))
    vel[:, 0] = rng.normal(size=(replicas, len(masses), 3)) * sv[:, None]
    kick = np.sqrt(1 - a**2)[:, None] * sv[:, None]
    for t in range(1, frames):
        noise = rng.normal(size=(replicas, len(masses), 3))
        vel[:, t] = a[:, None] * vel[:, t - 1] + kick * noise
    pos = np.concatenate(
        [
            np.zeros((replicas, 1, len(masses), 3)),
            np.cumsum(0.5 * (vel[:, 1:] + vel[:, :-1]) * dt, 1),
        ],
        axis=1,
    )
    # the sampled process' exact D (trapezoid sum of the AR(1) ACF); → k_B T τ / m as dt/τ → 0
    d = dt * sv**2 * (1 + a) / (2 * (1 - a))
    return pos, vel, d


def test_green_kubo_equals_einstein_and_the_ou_value_and_plots(tmp_path):
    # collective noise does not shrink with N, only with sampling: few ions, many replicas
    rng = np.random.default_rng(3)
    n, dt, temp, volume = 4, 2.0, 800.0, 12.0**3
    symbols = ["Li"] * (n // 2) + ["Cl"] * (n // 2)
    q = np.repeat([1.0, -1.0], n // 2)
    masses = np.repeat([6.94, 35.45], n // 2)
    taus = np.repeat([20.0, 30.0], n // 2)
    pos, vel, d = ou_trajectory(rng, 256, 2000, dt, temp, masses, taus)
    v2 = units.kB * temp / masses * units.fs**2  # <v_x²> = k_B T / m, (Å/fs)²
    assert d == pytest.approx(v2 * taus, rel=0.01)  # the continuum D = k_B T / (m γ)
    traj = Trajectory(pos, vel, symbols, q, volume, temp, dt)
    # lags to 400 fs, the GK plateau averaged over 120–400 fs (≥ 4 τ)
    res = transport(traj, max_lag_fraction=0.1, gk_window=(0.3, 1.0))
    exact = sigma_si(1.0, float((q**2 * d).sum()), volume, temp)
    gk, ein = res.green_kubo_S_m, res.einstein_S_m
    assert gk.error < 0.025 * exact and ein.error < 0.025 * exact
    assert abs(gk.value - ein.value) < 2 * np.hypot(gk.error, ein.error)
    for est in (gk, ein):  # within 3σ and 6 % of the exact value
        assert abs(est.value - exact) < 3 * est.error
        assert est.value == pytest.approx(exact, rel=0.06)
    # NE and D* carry ~1 % and ~1.5 % standard errors here: 5 % is over 3σ
    assert res.nernst_einstein_S_m.value == pytest.approx(exact, rel=0.05)
    for s, d_s in (("Li", d[0]), ("Cl", d[-1])):
        assert res.tracer_A2_ps[s].value == pytest.approx(d_s * 1e3, rel=0.05)
    assert res.current_acf[0] == pytest.approx(float((q**2 * 3 * v2).sum()), rel=0.03)
    assert res.haven.value == pytest.approx(1.0, abs=max(3 * res.haven.error, 0.05))

    record = json.loads(json.dumps(res.to_dict()))
    assert record["green_kubo_mS_cm"]["value"] == pytest.approx(10 * gk.value)
    prov = {"model": "emt", "model_version": "v1", "server": "test", "mlipserve_version": "0"}
    path = plot_transport(res, tmp_path / "transport.png", provenance=prov)
    assert path.read_bytes().startswith(PNG) and path.stat().st_size > 20_000


def frames_of(pos, cell, symbols, vel=None):
    """Wrapped ASE frames of positions (T, N, 3), with momenta when velocities (Å/fs) given."""
    out = []
    for t in range(len(pos)):
        atoms = Atoms(symbols, positions=pos[t], cell=cell, pbc=True)
        atoms.wrap()
        if vel is not None:
            atoms.set_velocities(vel[t] / units.fs)
        out.append(atoms)
    return out


def test_kinisi_agrees_on_the_tracer_diffusion():
    kinisi_analyze = pytest.importorskip("kinisi.analyze")
    sc = pytest.importorskip("scipp")
    rng = np.random.default_rng(5)
    n, dt, frames, box = 64, 5.0, 250, 12.0
    pos = walkers(rng, 6, frames, n, 0.15)
    runs = [frames_of(p, [box] * 3, ["Li"] * n) for p in pos]  # wrapped, as kinisi reads them
    traj = Trajectory.from_frames(runs, {"Li": 1.0}, temperature=500.0, dt_fs=dt)
    np.testing.assert_allclose(traj.positions - traj.positions[:, :1], pos - pos[:, :1], atol=1e-9)
    res = transport(traj)
    ours = res.tracer_cm2_s["Li"]
    peer = kinisi_analyze.DiffusionAnalyzer.from_ase(
        runs,
        specie="Li",
        time_step=sc.scalar(dt, unit="fs"),
        step_skip=sc.scalar(1, unit="dimensionless"),
        dtype="identical",
        progress=False,
    )
    peer.diffusion(
        sc.scalar(res.fit_fs[0], unit="fs"), progress=False, random_state=np.random.RandomState(0)
    )
    # kinisi: GLS with the MSD covariance from start_dt to the run's end, MCMC samples of D*;
    # ours: OLS over 20–80 % of half the run. Same data, different estimators.
    samples = sc.to_unit(peer.D, "cm^2/s").values
    lo, hi = np.percentile(samples, [2.5, 97.5])
    assert ours.value == pytest.approx(samples.mean(), rel=0.1)
    assert lo - ours.error < ours.value < hi + ours.error
    assert ours.value == pytest.approx(3 * 0.15**2 / (6 * dt) * 0.1, rel=0.1)  # Å²/fs → cm²/s


def test_from_frames_unwraps_and_rejects_bad_input():
    dt = 2.0
    cell = [[5.0, 0, 0], [1.0, 5.0, 0], [0.5, 0.5, 5.0]]  # triclinic
    t = np.arange(60)[:, None, None]
    vel = np.array([[0.15, -0.1, 0.2], [0.0, 0.05, -0.12]])  # Å/fs, atom 0 crosses many times
    pos = np.array([[0.5, 4.5, 0.2], [2.0, 2.0, 2.0]]) + vel * t * dt
    frames = frames_of(pos, cell, ["Li", "Cl"], vel=np.broadcast_to(vel, pos.shape))
    assert np.abs(frames[-1].positions - pos[-1]).max() > 4  # really wrapped
    traj = Trajectory.from_frames([frames, frames], {"Li": 1, "Cl": -1}, 300.0, dt)
    np.testing.assert_allclose(traj.positions[0, 0], frames[0].positions)
    np.testing.assert_allclose(traj.positions[0] - traj.positions[0, :1], pos - pos[:1], atol=1e-9)
    np.testing.assert_allclose(traj.charges, [1, -1])
    assert traj.volume == pytest.approx(125.0)
    # velocities back in Å/fs: ½ m v² (SI from scipy.constants) equals ASE's kinetic energy
    v = traj.velocities[0, 0]
    m = frames[0].get_masses() * constants.atomic_mass
    ke = 0.5 * (m[:, None] * (v * 1e5) ** 2).sum() / constants.e
    assert ke == pytest.approx(frames[0].get_kinetic_energy(), rel=1e-6)  # ASE: CODATA 2014
    steps = np.diff(traj.positions[0], axis=0) / dt  # the velocities are the unwrapped steps'
    np.testing.assert_allclose(traj.velocities[0, 1:], steps, atol=1e-9)

    with pytest.raises(ValueError, match="no charge given for species \\['Cl'\\]"):
        Trajectory.from_frames([frames], {"Li": 1}, 300.0, dt)
    with pytest.raises(ValueError, match="frame count"):
        Trajectory.from_frames([frames, frames[:-1]], {"Li": 1, "Cl": -1}, 300.0, dt)
    with pytest.raises(ValueError, match="velocities"):
        Trajectory(traj.positions, traj.velocities[:, :-1], traj.symbols, traj.charges, 1, 1, 1)
    with pytest.raises(ValueError, match="symbols"):
        Trajectory(traj.positions, None, ["Li"], traj.charges, 1, 1, 1)
    with pytest.raises(ValueError, match="too few"):
        transport(Trajectory(traj.positions[:, :6], None, traj.symbols, traj.charges, 1, 1, 1))
    with pytest.raises(ValueError, match="give more frames"):
        transport(traj, fit_range=(0.5, 0.55))
    res = transport(traj)
    assert res.green_kubo_S_m is not None and res.tracer_A2_ps["Li"].value > 0
