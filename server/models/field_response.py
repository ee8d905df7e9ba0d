"""Response to the external field by autograd: dipole −∂F/∂E, Born charges ∂F_i/∂E and the
polarizability ∂μ/∂E.

With F(R, E) a member's electric enthalpy, the dipole is μ = −∂F/∂E (per system) and the
Born charges Z*_i,ab = ∂F_i,b/∂E_a = −∂²F/∂E_a∂r_i,b = ∂μ_a/∂r_i,b: one backward pass for
forces, stress and dipole together, then three (one per field component) through the
dipole for the Born charges, three more for α_ab = ∂μ_a/∂E_b = −∂²F/∂E_a∂E_b.
"""

from __future__ import annotations

import torch

FIELD = "external_field"
RESPONSE = frozenset({"dipole", "born_charges", "polarizability"})


def field_leaf(
    graph: dict, n_systems: int, like: torch.Tensor, members: int = 0
) -> tuple[dict, torch.Tensor]:
    """The graph with its field (S, 3) replaced by a leaf that requires grad (0 if absent);
    (K, S, 3), a copy per member, when members ≥ 1 (one backward pass for all members)."""
    conditions = dict(graph.get("conditions", {}))
    field = conditions.get(FIELD)
    field = like.new_zeros(n_systems, 3) if field is None else field.reshape(n_systems, 3)
    if members >= 1:
        field = field.expand(members, n_systems, 3)
    field = field.detach().clone().requires_grad_(True)
    conditions[FIELD] = field
    return {**graph, "conditions": conditions}, field


def _second(dipole: torch.Tensor, wrt: torch.Tensor, dim: int) -> torch.Tensor:
    """Rows ∂μ_a/∂(wrt) for a = x, y, z stacked at `dim` (zeros where μ does not depend on it)."""
    rows = []
    for a in range(3):
        (row,) = torch.autograd.grad(
            dipole[..., a].sum(), wrt, retain_graph=True, allow_unused=True
        )
        rows.append(torch.zeros_like(wrt) if row is None else row)
    return torch.stack(rows, dim=dim)


def member_responses(
    members: torch.Tensor,
    positions: torch.Tensor,
    strain: torch.Tensor | None,
    field: torch.Tensor,
    born: bool,
    per_member: bool = False,
    polarizability: bool = False,
):
    """Per member k of energies (K, S): forces (K, A, 3), virial (K, S, 3, 3) or None,
    dipole (K, S, 3), Born charges (K, A, 3, 3) or None, polarizability (K, S, 3, 3) or
    None. `per_member`: geometry and field carry the member axis, so one pass (four with
    Born charges, four with the polarizability) serves every member."""
    inputs = [positions, field] + ([strain] if strain is not None else [])
    second = born or polarizability
    if per_member:
        grads = torch.autograd.grad(members.sum(), inputs, create_graph=second)
        dipole = -grads[1]
        borns = _second(dipole, positions, dim=2) if born else None  # (K, A, a, b)
        alphas = _second(dipole, field, dim=-2) if polarizability else None  # (K, S, a, b)
        virial = grads[2].detach() if strain is not None else None
        return -grads[0].detach(), virial, dipole.detach(), borns, alphas
    forces, virials, dipoles, borns_k, alphas_k = [], [], [], [], []
    for k in range(members.shape[0]):
        grads = torch.autograd.grad(
            members[k].sum(), inputs, create_graph=second, retain_graph=True
        )
        forces.append(-grads[0].detach())
        dipole = -grads[1]
        dipoles.append(dipole.detach())
        if strain is not None:
            virials.append(grads[2].detach())
        if born:
            borns_k.append(_second(dipole, positions, dim=1))  # (A, a, b) = ∂μ_a/∂r_b
        if polarizability:
            alphas_k.append(_second(dipole, field, dim=-2))  # (S, a, b) = ∂μ_a/∂E_b
    return (
        torch.stack(forces),
        torch.stack(virials) if virials else None,
        torch.stack(dipoles),
        torch.stack(borns_k) if borns_k else None,
        torch.stack(alphas_k) if alphas_k else None,
    )
