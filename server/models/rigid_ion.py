"""A served analytic reference for long-range models: the Fumi–Tosi rigid-ion model of NaCl.

Born–Mayer–Huggins short-range pairs plus the Coulomb energy of formal charges ±1 e:

    φ_ij(r) = A_ij b exp((σ_i + σ_j − r)/ρ) − C_ij/r⁶ − D_ij/r⁸ + q_i q_j e²/(4πε₀ r)

Parameters: F. G. Fumi and M. P. Tosi, J. Phys. Chem. Solids 25, 31 (1964) and M. P. Tosi and
F. G. Fumi, ibid. 25, 45 (1964): b = 0.338e-19 J, ρ = 0.317 Å, σ_Na = 1.170 Å, σ_Cl = 1.585 Å,
Pauling factors A₊₊ = 1.25, A₊₋ = 1, A₋₋ = 0.75, dispersion C (1e-79 J m⁶) 1.68 / 11.2 / 116
and D (1e-99 J m⁸) 0.8 / 13.9 / 233 for ++ / +− / −− (the set used for molten and solid NaCl,
e.g. Anwar, Frenkel and Noro, J. Chem. Phys. 118, 728 (2003), melting point 1082 K). The
short-range pairs are switched off smoothly (C²) between 7 and 8 Å; the Coulomb energy is
`electrostatics`' pinned Ewald sum (8 Å real-space cutoff, accuracy 1e-6).
"""

from __future__ import annotations

import numpy as np
import torch

from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.electrostatics import Electrostatics, EwaldParameters, smooth_step
from mlipserve.server.models.torch_potential import TorchPotential, edge_vectors, sum_per_system

EV = 1.602176634e-19  # J
SPECIES = {11: 0, 17: 1}  # Na, Cl
CHARGE = (1.0, -1.0)
B = 0.338e-19 / EV  # eV
RHO = 0.317  # Å
SIGMA = (1.170, 1.585)  # Å
PAULING = ((1.25, 1.0), (1.0, 0.75))
C6 = np.array([[1.68, 11.2], [11.2, 116.0]]) * 1e-79 * 1e60 / EV  # eV Å⁶
C8 = np.array([[0.8, 13.9], [13.9, 233.0]]) * 1e-99 * 1e80 / EV  # eV Å⁸
CUTOFF, SWITCH_ON = 8.0, 7.0  # Å


class FumiTosi(torch.nn.Module):
    """Per-atom energies of Na/Cl systems: BMH pairs (half to each atom) plus Coulomb."""

    def __init__(self, accuracy: float = 1e-6) -> None:
        super().__init__()
        prefactor = [[PAULING[a][b] * B * np.exp((SIGMA[a] + SIGMA[b]) / RHO) for b in (0, 1)]
                     for a in (0, 1)]  # fmt: skip
        self.register_buffer("a", torch.tensor(prefactor))
        self.register_buffer("c6", torch.tensor(C6))
        self.register_buffer("c8", torch.tensor(C8))
        table = torch.zeros(119, dtype=torch.long)
        charge = torch.zeros(119)
        for z, k in SPECIES.items():
            table[z], charge[z] = k, CHARGE[k]
        self.register_buffer("species", table)
        self.register_buffer("charge", charge)
        self.electrostatics = Electrostatics(EwaldParameters.pinned(CUTOFF, accuracy))
        self.cutoff = CUTOFF

    def forward(self, graph: dict) -> dict[str, torch.Tensor]:
        """Short-range plus Coulomb energies per system and atom."""
        i, j = graph["edge_index"]
        r = edge_vectors(graph).norm(dim=-1)
        k = self.species[graph["numbers"]]
        ki, kj = k[i], k[j]
        pair = (
            self.a[ki, kj] * torch.exp(-r / RHO) - self.c6[ki, kj] / r**6 - self.c8[ki, kj] / r**8
        ) * smooth_step((r - SWITCH_ON) / (CUTOFF - SWITCH_ON))
        energies = torch.zeros_like(graph["positions"][:, 0]).index_add(0, i, 0.5 * pair)
        q = self.charge[graph["numbers"]].unsqueeze(0)
        energies = energies + self.electrostatics(q, graph["positions"], graph["cell"], graph)[0]
        return {"energy": sum_per_system(energies, graph), "energies": energies}

    def serving_spec(self) -> dict:
        """The `long_range` entry of ModelInfo.extra (read by the request checks)."""
        return {
            "cutoff": CUTOFF,
            "charges": "fixed",
            "element_charges": {str(z): CHARGE[k] for z, k in SPECIES.items()},
            "method": "ewald",
            "accuracy": self.electrostatics.params.accuracy,
            "k_cut": self.electrostatics.params.k_cut,
            "mesh_spacing": self.electrostatics.params.mesh_spacing,
        }


def nacl_rigid_ion(
    name: str = "nacl-rigid-ion", dtype: str = "float64", device: str = "auto"
) -> TorchPotential:
    """The served Fumi–Tosi NaCl model (version "builtin-1")."""
    module = FumiTosi()
    info = ModelInfo(
        name=name,
        version="builtin-1",
        kind="rigid-ion:fumi-tosi",
        cutoff=CUTOFF,
        elements=frozenset(SPECIES),
        dtype=dtype,
        device=device,
        condition_shapes={"charge": ()},
        extra={"long_range": module.serving_spec()},
    )
    return TorchPotential(module, info)
