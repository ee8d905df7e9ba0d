"""An ensemble (committee) of K member models evaluated together on one graph."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Ensemble(nn.Module):
    """Stack the members' outputs along a leading K axis: energy (K, S), energies (K, A)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(members)

    def forward(self, graph: dict) -> dict[str, torch.Tensor]:
        """Evaluate every member on the same graph (one neighbour list for all)."""
        outs = [member(graph) for member in self.members]
        return {key: torch.stack([o[key] for o in outs]) for key in outs[0]}
