"""Pair potentials in torch with smooth cutoffs, matching ASE's LennardJones and Morse."""

from __future__ import annotations

import torch
from torch import nn

from mlipserve.server.models.torch_potential import edge_vectors, sum_per_system


class PairPotential(nn.Module):
    """Sum of pair energies over a full neighbour list (each pair counted half per atom)."""

    cutoff: float

    def pair_energy(self, r: torch.Tensor) -> torch.Tensor:
        """Energy (eV) of one pair at distance r (Å), cutoff applied."""
        raise NotImplementedError

    def forward(self, graph: dict) -> dict[str, torch.Tensor]:
        """Per-system and per-atom energies of the batch."""
        r = edge_vectors(graph).norm(dim=-1)
        half = 0.5 * self.pair_energy(r)
        n_atoms = graph["positions"].shape[0]
        energies = half.new_zeros(n_atoms).index_add(0, graph["edge_index"][0], half)
        return {"energy": sum_per_system(energies, graph), "energies": energies}


class LennardJones(PairPotential):
    """4ε[(σ/r)¹² − (σ/r)⁶], as ASE's `LennardJones`.

    With `smooth=True` the pair energy is multiplied by ASE's (JAX-MD's) cutoff function
    of r², going from 1 at `ro` to 0 at `rc` with a continuous derivative; with
    `smooth=False` it is shifted to zero at `rc` (forces then jump at the cutoff).
    Defaults as ASE: rc = 3σ, ro = 0.66 rc.
    """

    def __init__(
        self,
        sigma: float = 1.0,
        epsilon: float = 1.0,
        rc: float | None = None,
        ro: float | None = None,
        smooth: bool = True,
    ) -> None:
        super().__init__()
        rc = 3 * sigma if rc is None else rc
        ro = 0.66 * rc if ro is None else ro
        self.register_buffer("sigma", torch.tensor(float(sigma), dtype=torch.float64))
        self.register_buffer("epsilon", torch.tensor(float(epsilon), dtype=torch.float64))
        self.cutoff, self.onset, self.smooth = float(rc), float(ro), smooth

    def pair_energy(self, r: torch.Tensor) -> torch.Tensor:
        """LJ energy with ASE's cutoff treatment."""
        r2 = r * r
        c6 = (self.sigma**2 / r2) ** 3
        energy = 4 * self.epsilon * (c6 * c6 - c6)
        rc2, ro2 = self.cutoff**2, self.onset**2
        if self.smooth:
            switch = (rc2 - r2) ** 2 * (rc2 + 2 * r2 - 3 * ro2) / (rc2 - ro2) ** 3
            fc = torch.where(r2 < ro2, torch.ones_like(r2), torch.where(r2 < rc2, switch, 0.0))
            return energy * fc
        sr6 = (self.sigma**2 / rc2) ** 3
        e0 = 4 * self.epsilon * (sr6 * sr6 - sr6)
        return torch.where(r2 < rc2, energy - e0, torch.zeros_like(r2))


class Morse(PairPotential):
    """ε[e^{−2ρ₀(r/r₀−1)} − 2e^{−ρ₀(r/r₀−1)}] × a quintic C² cutoff, as ASE's `MorsePotential`.

    The cutoff goes from 1 at `rcut1·r0` to 0 at `rcut2·r0` (ASE's defaults 1.9 and 2.7).
    """

    def __init__(
        self,
        epsilon: float = 1.0,
        rho0: float = 6.0,
        r0: float = 1.0,
        rcut1: float = 1.9,
        rcut2: float = 2.7,
    ) -> None:
        super().__init__()
        self.register_buffer("epsilon", torch.tensor(float(epsilon), dtype=torch.float64))
        self.register_buffer("rho0", torch.tensor(float(rho0), dtype=torch.float64))
        self.register_buffer("r0", torch.tensor(float(r0), dtype=torch.float64))
        self.inner, self.cutoff = rcut1 * r0, rcut2 * r0

    def pair_energy(self, r: torch.Tensor) -> torch.Tensor:
        """Morse energy times the smoothstep cutoff."""
        expf = torch.exp(self.rho0 * (1.0 - r / self.r0))
        energy = self.epsilon * expf * (expf - 2.0)
        s = (1.0 - (r - self.inner) / (self.cutoff - self.inner)).clamp(0.0, 1.0)
        fc = 6.0 * s**5 - 15.0 * s**4 + 10.0 * s**3
        return energy * fc
