"""External-field potentials with known answers: a harmonic trap and a 1D double well.

They act on each atom separately (no neighbours), so statistical mechanics of one particle
has a closed form: the quantum harmonic oscillator for path-integral checks, the double
well's free energy F(x) = V(x) for sampling checks. Forces come from autograd as for any
served model.
"""

from __future__ import annotations

import torch
from torch import nn

from mlipserve.server.models.torch_potential import (
    TorchPotential,
    builtin_potential,
    sum_per_system,
)

# A tiny cutoff: the neighbour list stays empty for any sensible geometry.
_NO_NEIGHBOURS = 0.1


class HarmonicTrap(nn.Module):
    """E = ½ k Σ_atoms |r − c|², k in eV/Å², c the trap centre in Å."""

    needs_neighbors = False

    def __init__(self, k: float = 1.0, center: tuple[float, float, float] = (0.0, 0.0, 0.0)):
        super().__init__()
        self.register_buffer("k", torch.tensor(float(k), dtype=torch.float64))
        self.register_buffer("center", torch.tensor(center, dtype=torch.float64))
        self.cutoff = _NO_NEIGHBOURS

    def forward(self, graph: dict) -> dict[str, torch.Tensor]:
        """Per-system and per-atom trap energies."""
        d = graph["positions"] - self.center
        energies = 0.5 * self.k * (d * d).sum(-1)
        return {"energy": sum_per_system(energies, graph), "energies": energies}


class DoubleWell(nn.Module):
    """E = h [((x − x0)/a)² − 1]² + ½ k_perp [(y − y0)² + (z − z0)²] per atom.

    Minima at x = x0 ± a, barrier height h (eV) at x = x0; c = (x0, y0, z0) in Å.
    """

    needs_neighbors = False

    def __init__(
        self,
        height: float = 0.1,
        a: float = 1.0,
        k_perp: float = 1.0,
        center: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ):
        super().__init__()
        for name, value in (("height", height), ("a", a), ("k_perp", k_perp)):
            self.register_buffer(name, torch.tensor(float(value), dtype=torch.float64))
        self.register_buffer("center", torch.tensor(center, dtype=torch.float64))
        self.cutoff = _NO_NEIGHBOURS

    def forward(self, graph: dict) -> dict[str, torch.Tensor]:
        """Per-system and per-atom double-well energies."""
        d = graph["positions"] - self.center
        u = (d[:, 0] / self.a) ** 2 - 1.0
        energies = self.height * u * u + 0.5 * self.k_perp * (d[:, 1:] ** 2).sum(-1)
        return {"energy": sum_per_system(energies, graph), "energies": energies}


def harmonic(
    name: str = "harmonic", dtype: str = "float64", device: str = "auto", **params
) -> TorchPotential:
    """A served harmonic trap (k = 1 eV/Å² about the origin unless given)."""
    return builtin_potential(
        HarmonicTrap(**params), name, "harmonic-trap", _NO_NEIGHBOURS, dtype, device
    )


def double_well(
    name: str = "double-well", dtype: str = "float64", device: str = "auto", **params
) -> TorchPotential:
    """A served 1D double well along x (h = 0.1 eV, a = 1 Å unless given)."""
    return builtin_potential(
        DoubleWell(**params), name, "double-well", _NO_NEIGHBOURS, dtype, device
    )
