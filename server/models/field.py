"""The field- and potential-conditioned family `painn-field`: an electric enthalpy F(R, E, μe).

    F = E_sr(R) + min_q [ Σ χ_i q_i + ½ Σ J_i q_i² + ½ Σ_{i≠j} q_i q_j γ_ij(r_ij)
                          − E·Σ q_i r_i + μe Σ q_i ] − E·Σ p_i

A short-range PaiNN ensemble gives per-atom electronegativities χ_i, hardnesses J_i > 0 and
atomic dipoles p_i (from its vector features); the charges come from charge equilibration
(QEq, as in 4G-HDNNP) with Gaussian charges (γ_ij = k erf(r/√(2(σ_i²+σ_j²)))/r). The field
couples to the charges (through the QEq solve, so charges polarise) and to the vector
features; the dipole −∂F/∂E and Born charges ∂F_i/∂E come from the shared autograd.

The electron number follows the electron chemical potential μe grand-canonically: given a
`fermi_level` condition the total charge is free and minimises F (the QEq solve without its
constraint; Ω(R, μe) = min_N E(R, N) − μe N with Q = −N + const); otherwise the total is the
`charge` condition (0 when absent). A QEq model rather than one fed μe as an input: the
charge response (the capacitance dQ/dμe = −1ᵀA⁻¹1) is then a property of the same χ and J
that fixed-charge training data determine. Molecules and clusters only (no cell): the
dipole of a periodic cell needs the Berry-phase picture this model does not have.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from ase.data import covalent_radii
from torch import nn

from mlipserve.server.models.electrostatics import COULOMB
from mlipserve.server.models.painn import (
    EnsembleLinear,
    EnsembleMLP,
    PaiNN,
    PaiNNConfig,
    ShortRangeParts,
)
from mlipserve.server.models.torch_potential import sum_per_system

FIELD_CONDITIONS = {"external_field": (3,), "fermi_level": (), "charge": ()}
MIN_HARDNESS = 1.0  # eV/e², keeps the QEq matrix positive definite


@dataclass(frozen=True)
class FieldConfig(PaiNNConfig):
    """PaiNN's hyper-parameters; the model's trained range of fields and potentials."""

    max_field: float = 0.1  # V/Å: the largest |E| of the training data
    fermi_range: tuple[float, float] = (-8.0, -2.0)  # eV: μe the training data spans


class FieldPaiNN(ShortRangeParts, nn.Module):
    """Electric enthalpies (K, S), per-atom energies and charges (K, A) of molecules."""

    # served beside energy, forces, stress; dipole and Born charges by field autograd
    extra_properties = ("dipole", "born_charges", "charges", "polarizability")

    def __init__(self, cfg: FieldConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.short = PaiNN(cfg.painn())
        self.geometry_members = cfg.members  # a copy of the geometry (and field) per member
        k, f = cfg.members, cfg.features
        self.qeq = EnsembleMLP(k, f, f, 2)  # χ_i and the raw hardness
        self.atomic_dipole = EnsembleLinear(k, f, 1, bias=False)
        sigma = torch.tensor(covalent_radii[: cfg.max_z + 1], dtype=torch.float32).clamp(0.3)
        self.register_buffer("sigma", sigma)  # Å, Gaussian width of each element's charge

    @property
    def cutoff(self) -> float:
        """The short-range cutoff (Å); Coulomb within a molecule is summed over all pairs."""
        return self.cfg.cutoff

    def forward(self, graph: dict) -> dict[str, torch.Tensor]:
        """F per member and system, per-atom energies (QEq and field terms split evenly)."""
        s, v = self.short.features(graph)
        z = graph["numbers"]
        short = self.short.readout(s).squeeze(-1) * self.short.scale + self.short.shift[z]
        heads = self.qeq(s)  # (K, A, 2)
        chi = heads[..., 0]
        hardness = nn.functional.softplus(heads[..., 1]) + MIN_HARDNESS
        dipoles = self.atomic_dipole(v).squeeze(-1)  # (K, A, 3)
        n = graph["n_systems"]
        cond = graph.get("conditions", {})
        field = cond.get("external_field")
        if field is None:
            field = graph["positions"].new_zeros(n, 3)
        positions = graph["positions"]  # (A, 3), or (K, A, 3): a copy per member
        system = graph["system_index"]
        e_field = field.index_select(field.dim() - 2, system)  # (A, 3) or (K, A, 3)
        fermi = cond.get("fermi_level")
        total = cond.get("charge")
        q, e_qeq = self._equilibrate(chi, hardness, positions, e_field, graph, total, fermi)
        coupling = -(e_field * dipoles).sum(-1)  # (K, A)
        energies = short + e_qeq + coupling
        return {"energy": sum_per_system(energies, graph), "energies": energies, "charges": q}

    def _equilibrate(self, chi, hardness, positions, e_field, graph, total, fermi):
        """Charges (K, A) minimising the QEq energy of each system, and the per-atom share
        (K, A) of that minimum."""
        system = graph["system_index"]
        n = graph["n_systems"]
        counts = torch.bincount(system, minlength=n).tolist()
        potential = chi - (e_field * positions).sum(-1)  # (K, A): χ_i − E·r_i
        if fermi is not None:
            potential = potential + fermi.reshape(n)[system]
        sigma = self.sigma[graph["numbers"]].to(positions.dtype)
        charges, shares = [], []
        lo = 0
        for s, size in enumerate(counts):
            hi = lo + size
            b = potential[:, lo:hi]  # (K, n)
            a = _hardness_matrix(hardness[:, lo:hi], positions[..., lo:hi, :], sigma[lo:hi])
            if fermi is not None:  # grand canonical: the total charge is free
                q = -torch.linalg.solve(a, b.unsqueeze(-1)).squeeze(-1)
            else:
                target = 0.0 if total is None else total.reshape(n)[s]
                q = _constrained(a, b, target)
            energy = (b * q).sum(-1) + 0.5 * (q.unsqueeze(-2) @ a @ q.unsqueeze(-1)).reshape(-1)
            charges.append(q)
            shares.append((energy / size).unsqueeze(-1).expand(-1, size))
            lo = hi
        return torch.cat(charges, dim=1), torch.cat(shares, dim=1)

    def serving_spec(self) -> dict:
        """What the request checks read (the `field` entry of ModelInfo.extra)."""
        return {"max_field": self.cfg.max_field, "fermi_range": list(self.cfg.fermi_range)}


def _hardness_matrix(hardness, positions, sigma) -> torch.Tensor:
    """(K, n, n): J_i + k/(σ_i√π) on the diagonal, k erf(r/√(2(σ_i²+σ_j²)))/r off it;
    positions (n, 3) shared by the members or (K, n, 3), one copy each."""
    n = positions.shape[-2]
    diff = positions.unsqueeze(-2) - positions.unsqueeze(-3)
    eye = torch.eye(n, dtype=positions.dtype, device=positions.device)
    r = torch.sqrt((diff * diff).sum(-1) + eye)  # 1 on the diagonal (masked below)
    width = torch.sqrt(2 * (sigma.unsqueeze(0) ** 2 + sigma.unsqueeze(1) ** 2))
    gamma = COULOMB * torch.erf(r / width) / r * (1 - eye)
    self_term = COULOMB / (sigma * torch.pi**0.5)
    if gamma.dim() == 2:
        gamma = gamma.unsqueeze(0)
    return gamma + torch.diag_embed(hardness + self_term)


def _constrained(a: torch.Tensor, b: torch.Tensor, total) -> torch.Tensor:
    """Charges minimising bᵀq + ½qᵀAq with Σq = total (Lagrange), for K members at once."""
    ones = torch.ones_like(b)
    x = torch.linalg.solve(a, torch.stack([b, ones], dim=-1))  # A⁻¹b, A⁻¹1
    inv_b, inv_1 = x[..., 0], x[..., 1]
    lam = (-(inv_b.sum(-1)) - total) / inv_1.sum(-1)  # Σq = −1ᵀA⁻¹(b + λ1) = total
    return -(inv_b + lam.unsqueeze(-1) * inv_1)
