"""Seeded structure generators for the molecular (H, C, N, O) training set of `default-molecular`.

Water monomers and clusters, periodic boxes of liquid-density water, small organics
(ethanol, malonaldehyde, glycine, formic acid dimer and a few g2 molecules),
proton-transfer paths (interpolated images of malonaldehyde's intramolecular, the formic
acid dimer's double and the water dimer's single transfer, with rattled transition-state
regions) and rattled / "hot" frames. Every random choice comes from the generator given, so
a seed fixes the frames. The out-of-distribution set holds larger water clusters and
stretched X-H bonds. Nothing here labels: `molecular_data` does (GFN2-xTB).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.collections import s22

ELEMENTS = frozenset({1, 6, 7, 8})
WATER_DENSITY = 1.0  # g/cm³ for the periodic boxes
# GFN2-xTB minima (BFGS, fmax 0.005 eV/Å), centred: the Cs enol of malonaldehyde (H3 on O4,
# hydrogen-bonded to O2) and neutral glycine
MALONALDEHYDE = Atoms(
    "CCOHOCHHH",
    positions=[
        [0.0140, 1.1281, 0.0], [-1.2227, 0.4014, 0.0], [-1.3042, -0.8213, 0.0],
        [0.3664, -1.2258, 0.0], [1.2940, -0.8535, 0.0], [1.1912, 0.4531, 0.0],
        [-0.0041, 2.2028, 0.0], [-2.1391, 1.0135, 0.0], [2.1470, 0.9671, 0.0],
    ],
)  # fmt: skip
GLYCINE = Atoms(
    "COOHCNHHHH",
    positions=[
        [-0.4749, 0.1866, 0.0], [-0.3261, 1.3729, 0.0], [-1.6896, -0.3926, 0.0],
        [-2.3825, 0.2868, 0.0], [0.6181, -0.8733, 0.0], [1.9320, -0.2647, 0.0],
        [2.4682, -0.4911, 0.8243], [2.4682, -0.4911, -0.8243], [0.4426, -1.5014, 0.8811],
        [0.4426, -1.5014, -0.8811],
    ],
)  # fmt: skip
SMALL = ("H2O", "NH3", "CH4", "HCOOH", "H2CO", "CH3OH", "H3CNH2")
ORGANICS = ("ethanol", "malonaldehyde", "glycine", "formic_dimer", *SMALL)


def organic(name: str) -> Atoms:
    """A molecule by name: the four named organics or a g2 molecule, centred, no cell."""
    if name == "ethanol":
        atoms = molecule("CH3CH2OH")
    elif name == "malonaldehyde":
        atoms = MALONALDEHYDE.copy()
    elif name == "glycine":
        atoms = GLYCINE.copy()
    elif name == "formic_dimer":
        atoms = s22["Formic_acid_dimer"].copy()
    else:
        atoms = molecule(name)
    atoms.positions -= atoms.positions.mean(0)
    atoms.cell = np.zeros((3, 3))
    atoms.pbc = False
    return atoms


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def rattle(atoms: Atoms, rng: np.random.Generator, sigma: float) -> Atoms:
    """A copy with Gaussian displacements of width `sigma` (Å)."""
    out = atoms.copy()
    out.positions += rng.normal(0.0, sigma, out.positions.shape)
    return out


def _water(rng: np.random.Generator, centre: np.ndarray) -> np.ndarray:
    """Positions (O, H, H) of a randomly oriented water molecule with its O at `centre`."""
    w = molecule("H2O").positions
    return (w - w[0]) @ random_rotation(rng).T + centre


def _far_enough(new: np.ndarray, old: np.ndarray, cell: float | None) -> bool:
    """No O-O closer than 2.5 Å and no other intermolecular pair closer than 1.6 Å."""
    if len(old) == 0:
        return True
    d = new[:, None, :] - old[None, :, :]
    if cell:
        d -= cell * np.round(d / cell)
    dist = np.linalg.norm(d, axis=-1)
    o_new, o_old = np.arange(len(new)) % 3 == 0, np.arange(len(old)) % 3 == 0
    return dist[np.ix_(o_new, o_old)].min() >= 2.5 and dist.min() >= 1.6


def water_cluster(rng: np.random.Generator, n: int) -> Atoms:
    """`n` waters grown one at a time 2.7-3.1 Å (O-O) from a random earlier one."""
    pos = _water(rng, np.zeros(3))
    while len(pos) < 3 * n:
        anchor = pos[3 * rng.integers(len(pos) // 3)]
        step = rng.normal(size=3)
        new = _water(rng, anchor + step / np.linalg.norm(step) * rng.uniform(2.7, 3.1))
        if _far_enough(new, pos, None):
            pos = np.concatenate([pos, new])
    atoms = Atoms("OHH" * n, positions=pos - pos.mean(0))
    return atoms


def water_box(rng: np.random.Generator, n: int) -> Atoms:
    """`n` randomly placed and oriented waters in a periodic cube at liquid density."""
    mass = n * 18.015 / 6.02214076e23  # g
    side = float((mass / WATER_DENSITY * 1e24) ** (1 / 3))  # Å
    pos = np.zeros((0, 3))
    tries = 0
    while len(pos) < 3 * n:
        tries += 1
        if tries > 20000:
            raise RuntimeError(f"could not pack {n} waters in a {side:.2f} Å box")
        new = _water(rng, rng.uniform(0, side, 3))
        if _far_enough(new, pos, side):
            pos = np.concatenate([pos, new])
    return Atoms("OHH" * n, positions=pos, cell=np.eye(3) * side, pbc=True)


def _mirror_path(
    atoms: Atoms, moving: list[int], donors: list[int], acceptors: list[int], t: float
) -> Atoms:
    """`atoms` with each H in `moving` carried a fraction `t` along its donor-acceptor line
    (t = 0: on the donor at its bond length; t = 1: the same distance from the acceptor)."""
    out = atoms.copy()
    p = out.positions
    for h, d, a in zip(moving, donors, acceptors):
        length = np.linalg.norm(p[a] - p[d])
        u = (p[a] - p[d]) / length
        along = min(float((p[h] - p[d]) @ u), 0.45 * length)
        bend = p[h] - p[d] - along * u  # the H's offset from the line, kept at both ends
        p[h] = p[d] + u * (along + t * (length - 2 * along)) + bend * (1 - 4 * t * (1 - t))
    out.positions = p
    return out


def proton_transfer(name: str, t: float) -> Atoms:
    """An image at fraction `t` of a proton-transfer path: "malonaldehyde" (H3: O4 -> O2),
    "formic_dimer" (both acid H) or "water_dimer" (the donated H)."""
    if name == "malonaldehyde":
        return _mirror_path(organic("malonaldehyde"), [3], [4], [2], t)
    if name == "formic_dimer":
        atoms = organic("formic_dimer")
        o = [i for i, z in enumerate(atoms.numbers) if z == 8]
        h = [i for i, z in enumerate(atoms.numbers) if z == 1]
        d = atoms.get_all_distances()
        moving, donors, acceptors = [], [], []
        for i in h:
            donor = min(o, key=lambda k: d[i, k])
            if d[i, donor] > 1.2:
                continue
            acceptor = min(
                (k for k in o if k != donor and d[donor, k] > 2.0), key=lambda k: d[i, k]
            )
            moving.append(i), donors.append(donor), acceptors.append(acceptor)
        return _mirror_path(atoms, moving, donors, acceptors, t)
    if name == "water_dimer":
        atoms = s22["Water_dimer"].copy()
        atoms.positions -= atoms.positions.mean(0)
        d = atoms.get_all_distances()
        o = [i for i, z in enumerate(atoms.numbers) if z == 8]
        h = min((i for i, z in enumerate(atoms.numbers) if z == 1), key=lambda i: d[i, o].max())
        donor = min(o, key=lambda k: d[h, k])
        return _mirror_path(atoms, [h], [donor], [k for k in o if k != donor], t)
    raise ValueError(f"no proton-transfer path {name!r}")


PATHS = {"malonaldehyde": 1.0, "formic_dimer": 1.0, "water_dimer": 0.5}  # the t range of each


def stretched(atoms: Atoms, rng: np.random.Generator, factor: tuple[float, float]) -> Atoms:
    """A copy with one random X-H bond (H moved along it) stretched by a random factor."""
    out = atoms.copy()
    d = out.get_all_distances(mic=bool(out.pbc.any()))
    hs = [i for i, z in enumerate(out.numbers) if z == 1]
    h = int(rng.choice(hs))
    heavy = [i for i, z in enumerate(out.numbers) if z != 1]
    x = min(heavy, key=lambda k: d[h, k])
    vec = out.get_distance(x, h, mic=bool(out.pbc.any()), vector=True)
    out.positions[h] = out.positions[x] + vec * rng.uniform(*factor)
    return out
