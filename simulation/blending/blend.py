"""QM/MLIP blending: a reference region embedded in the MLIP by adaptive partitioning.

Only total energies and forces come from a reference calculator, so the blend interpolates
between cluster calculations (Heyden, Lin & Truhlar, J. Phys. Chem. B 111, 2231 (2007)).
Core atoms have weight 1; every other group g (an atom, or a molecule with `groups`) has
w_g = s(d_g), d_g the distance of its centroid from the core centroid and s a `Switch`
(1 inside r_inner, 0 beyond r_inner + width). Groups with w = 1 join every partition; the
n shell groups (0 < w < 1) decide which partitions P are computed. With ΔE(P) =
E_ref(P) − E_mlip(P) on the cluster P cut out of the system (see `clusters`):

    E = E_mlip(full) + Σ_P c_P(w) ΔE(P)
    F = F_mlip(full) + Σ_P c_P ΔF(P) − Σ_g [Σ_P ΔE(P) ∂c_P/∂w_g] s'(d_g) ∇d_g

which is exactly −∇E, the switch's own derivative terms included. Schemes (`partitions`):

- "sap" (default; sorted adaptive partitioning): P_k = base ∪ {k largest-weight groups},
  c_k = w_(k) − w_(k+1); n + 1 clusters. E is continuous and smooth as a group enters or
  leaves the shell, but where two shell groups i, j have equal weights the forces jump by
  −(∇w_i − ∇w_j)·N_ij, N_ij = ΔE(A∪i) + ΔE(A∪j) − ΔE(A) − ΔE(A∪i∪j) (A = the groups
  ranked above them): the non-additivity of the MLIP's error.
- "smooth": SAP with soft thresholds (windows ±2·eps·w(1 − w) in weight space): identical
  to SAP wherever no two windows overlap, C² in the weights across ties, so forces never
  jump; n + 1 clusters plus all subsets of groups whose windows overlap. That extra cost
  grows as 2^k with k nearly equal weights (a cold crystal's symmetric shells; a perfect
  lattice hits `max_tied`), which is why "sap", whose cost is always n + 1, is the default.
- "pap" (permuted, multilinear): all 2ⁿ subsets; smooth; refuses n > `max_pap_shell`.

All clusters of all systems in a batch go to the reference in ONE call and, with the full
systems, to the MLIP in ONE call (a second MLIP call for the full systems only when stress is
asked). Stress of a periodic system: the MLIP's plus the virial of the correction,
−(1/V) Σ_a F_corr,a ⊗ r_a over the positions unwrapped about the core (the correction depends
on those positions only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase.data import atomic_numbers
from ase.stress import full_3x3_to_voigt_6_stress

from mlipserve.simulation import provenance as prov
from mlipserve.simulation.blending.clusters import (
    CoreFrame,
    carve,
    check_groups,
    core_frame,
    distance_gradient_forces,
)
from mlipserve.simulation.blending.partitions import (
    permuted_partitions,
    smoothed_sorted_partitions,
    sorted_partitions,
)
from mlipserve.simulation.blending.reference import as_atoms
from mlipserve.simulation.blending.switching import Switch
from mlipserve.simulation.plotting import new_figure, save
from mlipserve.simulation.provider import ForceProvider

SCHEMES = ("sap", "smooth", "pap")


@dataclass
class BlendPlan:
    """The partitions of one system: member atoms, coefficients and their weight derivatives.

    `members[p]` atom indices of partition p; `coefficients` (P,) c_p; `dc_dw` (P, G)
    ∂c_p/∂w_g; `weights` (G,) and `dweights` (G,) s(d_g), s'(d_g); `shell` the shell groups.
    """

    frame: CoreFrame
    members: list[np.ndarray]
    coefficients: np.ndarray
    dc_dw: np.ndarray
    weights: np.ndarray
    dweights: np.ndarray
    shell: np.ndarray


class BlendedProvider:
    """A ForceProvider: `reference` in a region around `core` embedded in `mlip`.

    Args:
        reference: the high-level ForceProvider (e.g. `ASECalculatorProvider(EMT())`, a
            `LocalProvider("emt")`, a `RemoteProvider` to a labeller model).
        mlip: the ForceProvider of the whole system.
        core: atom indices always treated by the reference (weight 1).
        r_inner: radius (Å) from the core centroid within which groups have weight 1.
        width: width (Å) of the switching shell; 0 is the hard cut.
        switch: "quintic" (C²) or "cosine" (C¹) switching function (see `switching`).
        scheme: "sap" (default), "smooth" or "pap" (see the module docstring).
        groups: optional label per atom; atoms with one label enter and leave together.
        vacuum: vacuum (Å) around each carved cluster.
        eps: smoothing strength of the "smooth" scheme, in (0, 0.5]: windows ±2·eps·w(1 − w).
        reference_shift: energy (eV) per atom of each element ("Cu" or 29) added to every
            reference cluster energy, to put the reference on the MLIP's zero of energy
            (e.g. (E_mlip − E_ref)/N of a bulk crystal); forces are unchanged by it.
        max_pap_shell: largest shell (groups) the "pap" scheme accepts.
    """

    def __init__(
        self,
        reference: ForceProvider,
        mlip: ForceProvider,
        core: Sequence[int],
        r_inner: float,
        width: float,
        switch: str = "quintic",
        scheme: str = "sap",
        groups: Sequence[int] | None = None,
        vacuum: float = 6.0,
        eps: float = 0.05,
        reference_shift: Mapping[str | int, float] | None = None,
        max_pap_shell: int = 10,
    ) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        core_arr = np.unique(np.asarray(core, dtype=int).reshape(-1))
        if core_arr.size == 0:
            raise ValueError("the core needs at least one atom index")
        if scheme == "smooth" and not 0.0 < eps <= 0.5:
            raise ValueError(f"eps must lie in (0, 0.5], got {eps}")
        if not vacuum > 0:
            raise ValueError(f"vacuum must be positive, got {vacuum}")
        self.reference = reference
        self.mlip = mlip
        self.core = core_arr
        self.switch = Switch(r_inner, width, "step" if width == 0 else switch)
        self.scheme = scheme
        self.groups = None if groups is None else np.asarray(groups)
        self.vacuum = float(vacuum)
        self.eps = float(eps)
        self.shift = np.zeros(119)
        for key, value in (reference_shift or {}).items():
            z = atomic_numbers.get(key, key) if isinstance(key, str) else key
            if not isinstance(z, int | np.integer) or not 0 < z < 119:
                raise ValueError(f"reference_shift has an unknown element {key!r}")
            self.shift[z] = float(value)
        self.max_pap_shell = int(max_pap_shell)
        self.last_plans: list[BlendPlan] = []
        self.calls = 0

    def weights(self, system: Any) -> np.ndarray:
        """Per-atom weight (N,): 1 in the core, s(d_g) for the atoms of group g."""
        atoms = as_atoms(system)
        plan = self.plan(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc)
        out = np.ones(len(atoms))
        for g, members in enumerate(self._groups(len(atoms))):
            out[members] = plan.weights[g]
        return out

    def _groups(self, n_atoms: int) -> list[np.ndarray]:
        return check_groups(self.groups, n_atoms, self.core)

    def plan(
        self, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray, pbc: np.ndarray
    ) -> BlendPlan:
        """Weights, partitions and coefficients of one system."""
        groups = self._groups(len(numbers))
        frame = core_frame(positions, cell, pbc, self.core, groups, self.switch.r_outer)
        w, dw = self.switch(frame.distances)
        inner = np.flatnonzero(w >= 1.0)
        shell = np.flatnonzero((w > 0.0) & (w < 1.0))
        base = np.concatenate([self.core, *(groups[g] for g in inner)])
        if self.scheme == "sap":
            subsets, coefficients, dc_shell = sorted_partitions(w[shell])
        elif self.scheme == "smooth":
            subsets, coefficients, dc_shell = smoothed_sorted_partitions(w[shell], self.eps)
        else:
            subsets, coefficients, dc_shell = permuted_partitions(w[shell], self.max_pap_shell)
        dc_dw = np.zeros((len(subsets), len(groups)))
        dc_dw[:, shell] = dc_shell
        members = [
            np.sort(np.concatenate([base, *(groups[g] for g in shell[subset])]))
            for subset in subsets
        ]
        return BlendPlan(frame, members, coefficients, dc_dw, w, dw, shell)

    def provenance(self) -> dict[str, Any]:
        """The MLIP's record, with the reference's model named under "reference"."""
        record = prov.provenance(self.mlip)
        ref = prov.provenance(self.reference)
        record["reference"] = prov.label(ref) or ref["server"]
        record["reference_sha256"] = ref["model_sha256"]
        return record

    def evaluate(
        self, systems: Sequence[Any], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Blended energy and forces (and stress) of every system; one call per provider."""
        unknown = sorted(set(properties) - {"energy", "forces", "stress"})
        if unknown:
            raise ValueError(
                f"a blended provider computes energy, forces and stress only, not {unknown} "
                "(per-atom energies and uncertainties are not defined for a blend)"
            )
        want_stress = "stress" in properties
        all_atoms = [as_atoms(s) for s in systems]
        if want_stress and not all(a.pbc.all() for a in all_atoms):
            raise ValueError("stress needs periodic systems (pbc all True)")
        plans, clusters = [], []
        for atoms in all_atoms:
            plan = self.plan(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc)
            plans.append(plan)
            clusters += [
                carve(atoms.numbers, plan.frame.positions, m, self.vacuum) for m in plan.members
            ]
        ref = self.reference.evaluate(clusters, ("energy", "forces"))
        if want_stress:
            full = self.mlip.evaluate(all_atoms, ("energy", "forces", "stress"))
            low = self.mlip.evaluate(clusters, ("energy", "forces"))
        else:
            both = self.mlip.evaluate(all_atoms + clusters, ("energy", "forces"))
            full, low = both[: len(all_atoms)], both[len(all_atoms) :]
        self.calls += 1
        self.last_plans = plans
        out, start = [], 0
        for atoms, plan, res in zip(all_atoms, plans, full):
            stop = start + len(plan.members)
            out.append(self._combine(atoms, plan, res, ref[start:stop], low[start:stop]))
            start = stop
        return out

    def _combine(
        self,
        atoms: Any,
        plan: BlendPlan,
        full: dict[str, Any],
        ref: list[dict[str, Any]],
        low: list[dict[str, Any]],
    ) -> dict[str, Any]:
        n_atoms = len(atoms)
        delta_e = np.array(
            [
                float(r["energy"]) + self.shift[atoms.numbers[members]].sum() - float(m["energy"])
                for r, m, members in zip(ref, low, plan.members)
            ]
        )
        correction = np.zeros((n_atoms, 3))
        for c, members, r, m in zip(plan.coefficients, plan.members, ref, low):
            if c != 0.0:
                correction[members] += c * (np.asarray(r["forces"]) - np.asarray(m["forces"]))
        dedw = delta_e @ plan.dc_dw
        correction += distance_gradient_forces(
            plan.frame, self._groups(n_atoms), self.core, dedw * plan.dweights, n_atoms
        )
        result: dict[str, Any] = {
            "energy": float(full["energy"]) + float(plan.coefficients @ delta_e),
            "forces": np.asarray(full["forces"], dtype=float) + correction,
            "model": "blend",
            "model_version": f"{self.scheme}:{self.switch.kind}",
        }
        if "stress" in full:
            virial = -correction.T @ plan.frame.positions / atoms.get_volume()
            result["stress"] = np.asarray(full["stress"], dtype=float) + full_3x3_to_voigt_6_stress(
                0.5 * (virial + virial.T)
            )
        return result


def radial_scan(
    provider: ForceProvider,
    atoms: Any,
    index: int,
    origin: int,
    distances: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Energies (M,) and forces (M,N,3) as atom `index` moves along the ray from atom `origin`.

    All M configurations go to the provider in one call; atom `index` is put at
    r_origin + d·û for each d in `distances`, û its present direction from `origin`.
    """
    base = as_atoms(atoms)
    ray = base.positions[index] - base.positions[origin]
    if np.linalg.norm(ray) == 0:
        raise ValueError("atom index and origin coincide: the scan direction is undefined")
    unit = ray / np.linalg.norm(ray)
    images = []
    for d in distances:
        image = base.copy()
        image.positions[index] = base.positions[origin] + float(d) * unit
        images.append(image)
    results = provider.evaluate(images, ("energy", "forces"))
    return (
        np.array([float(r["energy"]) for r in results]),
        np.array([np.asarray(r["forces"], dtype=float) for r in results]),
    )


def plot_radial_scan(
    path: str,
    distances: np.ndarray,
    curves: dict[str, np.ndarray],
    shell: tuple[float, float],
    title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> str:
    """PNG of the radial force on the moving atom vs its distance, one curve per label."""
    fig, ax = new_figure(6, 4)
    ax.axvspan(*shell, color="0.9", label="switching shell")
    for label, values in curves.items():
        ax.plot(distances, values, label=label)
    ax.set_xlabel("distance of the moving atom from the core (Å)")
    ax.set_ylabel("radial force on the moving atom (eV/Å)")
    ax.legend()
    save(fig, path, title, provenance)
    return path


def scan_against_hard_cut(
    path: str,
    reference: ForceProvider,
    mlip: ForceProvider,
    atoms: Any,
    core: int,
    mover: int,
    r_inner: float,
    width: float,
    radii: Sequence[float],
    **blend_kwargs: Any,
) -> dict[str, np.ndarray]:
    """Example: radial force on `mover` vs its distance from `core`, blend vs hard cut, as PNG.

    The hard cut sits at the middle of the shell, r_inner + width/2. Returns the curves
    (label → radial force, eV/Å) and writes the plot to `path`.
    """
    distances = np.asarray(radii, dtype=float)
    base = as_atoms(atoms)
    unit = base.positions[mover] - base.positions[core]
    unit /= np.linalg.norm(unit)
    cut = r_inner + 0.5 * width
    curves = {}
    for label, r_in, w in (
        (f"blend ({width:g} Å shell)", r_inner, width),
        (f"hard cut at {cut:g} Å", cut, 0.0),
    ):
        provider = BlendedProvider(reference, mlip, [core], r_in, w, **blend_kwargs)
        _, forces = radial_scan(provider, base, mover, core, distances)
        curves[label] = forces[:, mover] @ unit
    plot_radial_scan(path, distances, curves, (r_inner, r_inner + width))
    return curves
