"""The EMT training set of the shipped default model, generated reproducibly.

fcc Cu, Ni, Pd, Ag, Au, Pt, Al and their random alloys: strained and rattled bulk cells,
high-entropy-alloy-like cells, vacancies, (100)/(111) slabs and short EMT Langevin MD
snapshots at several temperatures. Every random choice comes from one seed, so a different
seed gives an independent test set from the same distribution. An out-of-distribution set
(small clusters, strongly compressed cells) checks the ensemble's uncertainty.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.build import bulk, fcc100, fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.cluster import Icosahedron
from ase.md.langevin import Langevin

METALS = ("Cu", "Ni", "Pd", "Ag", "Au", "Pt", "Al")
LATTICE = {"Cu": 3.61, "Ni": 3.52, "Pd": 3.89, "Ag": 4.09, "Au": 4.08, "Pt": 3.92, "Al": 4.05}


def label(atoms: Atoms) -> Atoms:
    """Attach EMT energy, forces and (for 3D cells) stress as a SinglePointCalculator."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if atoms.cell.rank == 3 and atoms.pbc.all():
        results["stress"] = atoms.get_stress()
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def random_alloy(rng: np.random.Generator, elements, reps=(2, 2, 2)) -> Atoms:
    """A cubic fcc cell with random species and a Vegard's-law lattice constant."""
    atoms = bulk("Cu", "fcc", a=1.0, cubic=True) * reps
    symbols = rng.choice(elements, size=len(atoms))
    a = float(np.mean([LATTICE[s] for s in symbols]))
    atoms.set_chemical_symbols(symbols)
    atoms.set_cell(atoms.cell * a, scale_atoms=True)
    return atoms


def dirichlet_species(atoms: Atoms, rng: np.random.Generator, elements) -> Atoms:
    """Species drawn per site from a random (Dirichlet) composition of `elements`, in place."""
    weights = rng.dirichlet(np.ones(len(elements)))
    atoms.set_chemical_symbols(rng.choice(elements, size=len(atoms), p=weights))
    return atoms


def strain_and_rattle(atoms: Atoms, rng: np.random.Generator, strain=0.04, rattle=0.08) -> Atoms:
    """A random symmetric strain up to `strain` and Gaussian displacements."""
    eps = rng.uniform(-strain, strain, (3, 3))
    eps = 0.5 * (eps + eps.T)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    atoms.positions += rng.normal(0, rattle, atoms.positions.shape)
    return atoms


def md_snapshots(atoms: Atoms, rng: np.random.Generator, temperature: float, n: int) -> list[Atoms]:
    """`n` snapshots, 10 steps apart, of EMT Langevin MD at `temperature` K."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    dyn = Langevin(
        atoms,
        4 * units.fs,
        temperature_K=temperature,
        friction=0.05,
        fixcm=False,
        rng=np.random.RandomState(int(rng.integers(2**31))),
    )
    out = []
    for _ in range(n):
        dyn.run(10)
        out.append(label(atoms))
    return out


def generate(seed: int, scale: int = 1) -> list[Atoms]:
    """The in-distribution set; `scale` multiplies its size."""
    rng = np.random.default_rng(seed)
    frames: list[Atoms] = []
    for _ in range(scale):
        for metal in METALS:
            pure = bulk(metal, "fcc", a=LATTICE[metal], cubic=True)
            for _ in range(3):
                frames.append(label(strain_and_rattle(pure * (1, 1, 2), rng)))
            vac = pure * (2, 2, 1)
            del vac[int(rng.integers(len(vac)))]
            frames.append(label(strain_and_rattle(vac, rng, strain=0.01, rattle=0.05)))
            slab = (fcc100 if rng.random() < 0.5 else fcc111)(
                metal, (2, 2, 3), a=LATTICE[metal], vacuum=5.0, periodic=True
            )
            slab.positions += rng.normal(0, 0.05, slab.positions.shape)
            frames.append(label(slab))
        for _ in range(6):
            elements = rng.choice(METALS, size=int(rng.integers(2, 6)), replace=False)
            frames.append(label(strain_and_rattle(random_alloy(rng, elements, (1, 2, 2)), rng)))
        for _ in range(4):
            hea = random_alloy(rng, METALS, (2, 2, 1))
            del hea[int(rng.integers(len(hea)))]
            frames.append(label(strain_and_rattle(hea, rng, strain=0.02, rattle=0.05)))
        for temperature in (300, 900, 1500):
            start = random_alloy(rng, rng.choice(METALS, size=3, replace=False), (1, 2, 2))
            frames.extend(md_snapshots(start, rng, temperature, 3))
    return frames


def out_of_distribution(seed: int) -> list[Atoms]:
    """Clusters and strongly compressed cells: outside the training distribution."""
    rng = np.random.default_rng(seed)
    frames = []
    for metal in METALS:
        cluster = Icosahedron(metal, 2, latticeconstant=LATTICE[metal])
        cluster.center(vacuum=4.0)
        cluster.positions += rng.normal(0, 0.1, cluster.positions.shape)
        frames.append(label(cluster))
        squeezed = bulk(metal, "fcc", a=LATTICE[metal] * 0.85, cubic=True) * (1, 1, 2)
        frames.append(label(strain_and_rattle(squeezed, rng, strain=0.02, rattle=0.1)))
    return frames


def wide(seed: int, scale: int = 1) -> list[Atoms]:
    """The widening of the training set (added in round 2): 2-5 component alloys with uneven
    (Dirichlet) compositions on lattices scaled ±5 % around Vegard's law, single and double
    vacancies, (100)/(111) alloy slabs and EMT MD of alloys at 600-1200 K (2x2x2 cells)."""
    rng = np.random.default_rng(seed)
    frames: list[Atoms] = []

    def alloy(reps) -> Atoms:
        elements = rng.choice(METALS, size=int(rng.integers(2, 6)), replace=False)
        atoms = dirichlet_species(random_alloy(rng, elements, reps), rng, elements)
        atoms.set_cell(atoms.cell * rng.uniform(0.95, 1.05), scale_atoms=True)
        return atoms

    for _ in range(scale):
        for _ in range(8):
            frames.append(label(strain_and_rattle(alloy((2, 2, 1)), rng, strain=0.02)))
        for missing in (1, 1, 2, 2):
            cell = alloy((2, 2, 2))
            for _ in range(missing):
                del cell[int(rng.integers(len(cell)))]
            frames.append(label(strain_and_rattle(cell, rng, strain=0.01, rattle=0.06)))
        for make in (fcc100, fcc111, fcc100, fcc111):
            template = alloy((1, 1, 1))
            a = float(np.linalg.norm(template.cell[0]))
            slab = make("Cu", (2, 2, 4), a=a, vacuum=5.0, periodic=True)
            slab.set_chemical_symbols(rng.choice(template.get_chemical_symbols(), len(slab)))
            slab.positions += rng.normal(0, 0.06, slab.positions.shape)
            frames.append(label(slab))
        for temperature in (600, 1200):
            frames.extend(md_snapshots(alloy((2, 2, 2)), rng, temperature, 2))
    return frames
