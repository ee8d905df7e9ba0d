"""The long-range native family: a short-range PaiNN ensemble plus the Coulomb energy of
per-atom charges (Ewald or PME in periodic cells, the direct sum otherwise).

Charges are fixed per element (a rigid-ion model: `element_charges`) or predicted per atom
by a readout of the PaiNN features and projected so that each system's total equals its
`charge` condition (0 where absent; a periodic cell must be neutral). The Ewald split is
pinned in the config (`ewald`, chosen once for `accuracy` when the config is made) and
never tuned while serving. Predicted charges differ per member, so the ensemble's spread
covers the long-range part too; fixed charges give every member the same Coulomb term.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mlipserve.server.models.electrostatics import Electrostatics, EwaldParameters
from mlipserve.server.models.painn import (
    EnsembleMLP,
    PaiNN,
    PaiNNConfig,
    ShortRangeParts,
)
from mlipserve.server.models.torch_potential import edge_vectors, sum_per_system

CHARGE_MODES = ("fixed", "predicted")


@dataclass(frozen=True)
class LongRangeConfig(PaiNNConfig):
    """PaiNN's hyper-parameters (`cutoff` is the short-range one) plus the charge model and
    the pinned Ewald split."""

    charges: str = "fixed"  # or "predicted"
    element_charges: dict[str, float] = field(default_factory=dict)  # {"11": 1.0, ...}
    coulomb_cutoff: float = 8.0  # real-space cutoff of the Ewald sum, Å
    accuracy: float = 1e-6  # relative error of a lattice energy the split is chosen for
    method: str = "ewald"  # or "pme"
    ewald: dict | None = None  # pinned EwaldParameters (filled when the config is made)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.charges not in CHARGE_MODES:
            raise ValueError(f"charges {self.charges!r} is not one of {CHARGE_MODES}")
        if self.charges == "fixed" and not self.element_charges:
            raise ValueError("fixed charges need element_charges, e.g. {'11': 1, '17': -1}")
        if self.ewald is None:
            pinned = EwaldParameters.pinned(self.coulomb_cutoff, self.accuracy, self.method)
            object.__setattr__(self, "ewald", pinned.to_dict())


class LongRangePaiNN(ShortRangeParts, nn.Module):
    """Energies (K, S), per-atom energies (K, A) and charges (K, A) of a batch graph."""

    extra_properties = ("charges",)  # served beside energy, forces, stress

    def __init__(self, cfg: LongRangeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.short = PaiNN(cfg.painn())
        self.geometry_members = cfg.members
        self.electrostatics = Electrostatics(EwaldParameters(**(cfg.ewald or {})))
        charges = torch.zeros(cfg.max_z + 1)
        for z, q in cfg.element_charges.items():
            charges[int(z)] = float(q)
        self.register_buffer("element_charge", charges)
        self.charge_head = (
            EnsembleMLP(cfg.members, cfg.features, cfg.features, 1)
            if cfg.charges == "predicted"
            else None
        )

    @property
    def cutoff(self) -> float:
        """The neighbour-list radius: the larger of the short-range and Ewald cutoffs (Å)."""
        return max(self.cfg.cutoff, self.cfg.coulomb_cutoff)

    def _short_graph(self, graph: dict) -> dict:
        """The graph with only the edges inside the short-range cutoff."""
        vec = edge_vectors(graph).detach()
        r = vec.norm(dim=-1)
        keep = (r[0] if r.dim() == 2 else r) < self.cfg.cutoff
        return {**graph, "edge_index": graph["edge_index"][:, keep],
                "edge_shift": graph["edge_shift"][keep]}  # fmt: skip

    def charges(self, graph: dict, s: torch.Tensor) -> torch.Tensor:
        """Per-atom charges (K, A) (fixed: (1, A)), each system summing to its `charge`."""
        z = graph["numbers"]
        if self.charge_head is None:
            return self.element_charge[z].unsqueeze(0)
        raw = self.charge_head(s).squeeze(-1)  # (K, A)
        total = graph.get("conditions", {}).get("charge")
        n = graph["n_systems"]
        target = raw.new_zeros(n) if total is None else total.reshape(n).to(raw.dtype)
        system = graph["system_index"]
        count = torch.bincount(system, minlength=n).to(raw.dtype)
        excess = (sum_per_system(raw, graph) - target) / count  # (K, S)
        return raw - excess[:, system]

    def forward(self, graph: dict) -> dict[str, torch.Tensor]:
        """Short-range plus Coulomb energies per member, system and atom."""
        short_graph = self._short_graph(graph)
        s = self.short.scalars(short_graph)
        z = graph["numbers"]
        short = self.short.readout(s).squeeze(-1) * self.short.scale + self.short.shift[z]
        q = self.charges(graph, s)
        positions, cell = graph["positions"], graph["cell"]
        if positions.dim() == 2:
            coulomb = self.electrostatics(q, positions, cell, graph)
        elif q.shape[0] == 1:  # one Coulomb term for all: every copy gets its gradient
            coulomb = self.electrostatics(q, positions.mean(0), cell.mean(0), graph)
        else:
            coulomb = torch.cat(
                [
                    self.electrostatics(q[k : k + 1], positions[k], cell[k], graph)
                    for k in range(positions.shape[0])
                ]
            )
        energies = short + coulomb
        return {
            "energy": sum_per_system(energies, graph),
            "energies": energies,
            "charges": q.expand_as(energies),
        }

    def serving_spec(self) -> dict:
        """What the request checks need to know (the `long_range` entry of ModelInfo.extra)."""
        return {
            "cutoff": self.cfg.coulomb_cutoff,
            "charges": self.cfg.charges,
            "element_charges": dict(self.cfg.element_charges),
            "method": self.cfg.method,
            "accuracy": self.cfg.accuracy,
            "k_cut": self.electrostatics.params.k_cut,
            "mesh_spacing": self.electrostatics.params.mesh_spacing,
        }
