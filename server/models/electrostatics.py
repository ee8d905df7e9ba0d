"""Coulomb energy of per-atom charges: Ewald or PME (torch-pme) in periodic cells, the direct
sum for molecules and clusters.

The Ewald split is pinned per model (`EwaldParameters`, stored in its metadata and chosen
once for a stated accuracy, never tuned while serving). Both halves of the split are switched
off smoothly: the real-space pair term by a C² step between `r_on` and the cutoff, the
reciprocal-space kernel by a C² step between `k_on` and `k_cut`. Energy, forces and stress
are then continuous when a pair or a k-vector crosses its cutoff (a strained cell keeps its
k-vector set), at the price of an error of the size of the pinned accuracy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from scipy.special import erfcinv
from torchpme import CoulombPotential, EwaldCalculator, PMECalculator
from torchpme.lib import generate_kvectors_for_ewald
from torchpme.prefactors import eV_A

from mlipserve.server.models.torch_potential import edge_vectors

COULOMB = eV_A  # e²/(4πε₀) in eV·Å
METHODS = ("ewald", "pme")
# PME's interpolation order: with 4 nodes a mesh of σ/2 misses 1e-6 on 1,000 NaCl ions
# (2.6e-5); 6 nodes meet it (4.7e-7) at the same cost
PME_NODES = 6


@dataclass(frozen=True)
class EwaldParameters:
    """A pinned Ewald split: Gaussian smearing σ (Å), real-space cutoff and switch start (Å),
    k-space switch start and cutoff (1/Å), PME mesh spacing (Å), the accuracy they were
    chosen for (relative error of a lattice energy)."""

    cutoff: float
    accuracy: float
    smearing: float
    r_on: float
    k_on: float
    k_cut: float
    mesh_spacing: float
    method: str = "ewald"

    @classmethod
    def pinned(
        cls, cutoff: float, accuracy: float = 1e-6, method: str = "ewald"
    ) -> EwaldParameters:
        """The split for a real-space `cutoff` that meets `accuracy`: erfc(r_on/√2σ) and
        exp(-k_on²σ²/2) both equal the accuracy, with the switches over the last 20 %."""
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {METHODS}")
        if not 0 < accuracy < 0.1:
            raise ValueError(f"accuracy {accuracy} must be in (0, 0.1)")
        if cutoff <= 0:
            raise ValueError(f"cutoff {cutoff} must be positive")
        x = float(erfcinv(accuracy))
        r_on = 0.8 * cutoff
        smearing = r_on / (math.sqrt(2) * x)
        k_on = math.sqrt(-2 * math.log(accuracy)) / smearing
        return cls(
            cutoff=cutoff,
            accuracy=accuracy,
            smearing=smearing,
            r_on=r_on,
            k_on=k_on,
            k_cut=1.25 * k_on,
            mesh_spacing=smearing / 2,
            method=method,
        )

    def to_dict(self) -> dict:
        """Plain dict for JSON metadata."""
        return asdict(self)


def smooth_step(x: torch.Tensor) -> torch.Tensor:
    """1 for x ≤ 0, 0 for x ≥ 1, C² in between (1 − 10x³ + 15x⁴ − 6x⁵)."""
    t = x.clamp(0.0, 1.0)
    return 1 - t**3 * (10 - 15 * t + 6 * t * t)


class SwitchedCoulomb(CoulombPotential):
    """torch-pme's Ewald-split 1/r with both halves switched off smoothly at their cutoffs."""

    def __init__(self, params: EwaldParameters) -> None:
        super().__init__(smearing=params.smearing, prefactor=COULOMB)
        self.r_on, self.r_cut = params.r_on, params.cutoff
        self.k_on, self.k_cut = params.k_on, params.k_cut

    def sr_from_dist(self, dist: torch.Tensor, pair_mask: torch.Tensor | None = None):
        """erfc(r/√2σ)/r times the real-space switch."""
        switch = smooth_step((dist - self.r_on) / (self.r_cut - self.r_on))
        return super().sr_from_dist(dist, pair_mask) * switch

    def lr_from_k_sq(self, k_sq: torch.Tensor) -> torch.Tensor:
        """4π exp(−σ²k²/2)/k² times the k-space switch."""
        k = torch.sqrt(k_sq.clamp_min(1e-30))
        return super().lr_from_k_sq(k_sq) * smooth_step((k - self.k_on) / (self.k_cut - self.k_on))


def direct_coulomb(charges: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Per-atom energies (C, n) of an isolated system: ½ q_i Σ_{j≠i} k q_j / r_ij."""
    n = positions.shape[0]
    if n < 2:
        return torch.zeros_like(charges)
    i, j = torch.triu_indices(n, n, 1, device=positions.device)
    r = (positions[j] - positions[i]).norm(dim=-1)
    pair = COULOMB * charges[:, i] * charges[:, j] / r  # (C, P)
    half = 0.5 * pair
    return torch.zeros_like(charges).index_add(1, i, half).index_add(1, j, half)


class Electrostatics(torch.nn.Module):
    """Per-atom Coulomb energies of a batch: Ewald/PME for periodic systems, direct otherwise."""

    def __init__(self, params: EwaldParameters) -> None:
        super().__init__()
        self.params = params
        potential = SwitchedCoulomb(params)
        if params.method == "pme":
            self.calculator: torch.nn.Module = PMECalculator(
                potential,
                mesh_spacing=params.mesh_spacing,
                interpolation_nodes=PME_NODES,
                full_neighbor_list=True,
            )
        else:
            self.calculator = EwaldCalculator(
                potential, lr_wavelength=2 * math.pi / params.k_cut, full_neighbor_list=True
            )

    def kvectors(self, cell: torch.Tensor) -> torch.Tensor:
        """The k-vectors of `cell` with |k| < k_cut (differentiable in the cell)."""
        lengths = torch.linalg.norm(cell.detach(), dim=1)
        # integers -n..n along each reciprocal vector (torch-pme's grid is fftfreq's: odd
        # sizes are symmetric); |k·a_i| ≤ |k||a_i| bounds n_i, so the box holds the sphere
        ns = 2 * torch.ceil(self.params.k_cut * lengths / (2 * math.pi)).long() + 1
        k = generate_kvectors_for_ewald(cell, ns)
        norm = torch.linalg.norm(k.detach(), dim=1)
        return k[(norm < self.params.k_cut) & (norm > 0)]

    def forward(
        self, charges: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor, graph: dict
    ) -> torch.Tensor:
        """Per-atom energies (C, A) for charge channels (C, A), positions (A, 3), cell (S, 3, 3)."""
        parts = []
        counts = torch.bincount(graph["system_index"], minlength=graph["n_systems"])
        offsets = [0, *torch.cumsum(counts, 0).tolist()]
        periodic = graph["pbc"].all(dim=1)
        i, j = graph["edge_index"]
        r = edge_vectors({**graph, "positions": positions, "cell": cell}).norm(dim=-1)
        edge_system = graph["system_index"][i]
        near = r < self.params.cutoff
        for s in range(graph["n_systems"]):
            lo, hi = offsets[s], offsets[s + 1]
            q = charges[:, lo:hi]
            if not bool(periodic[s]):
                parts.append(direct_coulomb(q, positions[lo:hi]))
                continue
            mask = near & (edge_system == s)
            pairs = torch.stack([i[mask] - lo, j[mask] - lo], dim=1)
            extra = {} if self.params.method == "pme" else {"kvectors": self.kvectors(cell[s])}
            potential = self.calculator(
                charges=q.T, cell=cell[s], positions=positions[lo:hi],
                neighbor_indices=pairs, neighbor_distances=r[mask], **extra,
            )  # fmt: skip
            parts.append(q * potential.T)
        return torch.cat(parts, dim=1)
