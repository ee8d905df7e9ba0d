"""Serve MACE `.model` files from mace-torch (optional extra `mace`; trusted versions only).

A `.model` file is a whole pickled module (`torch.save`): loading it runs the pickle, so the
store loads it only when an admin has set the version's `trusted` flag. `MaceEnergy` maps
TorchPotential's graph onto MACE's input dict (one-hot `node_attrs` over the model's
elements, `edge_index` sender→receiver, `shifts` = integer shifts · cell, `batch`, `ptr`,
`head`) and returns MACE's energy with its own force/stress switches off: forces and
stress come from TorchPotential's autograd like for every model. Several files form a
committee (leading axis K).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.ensemble import Ensemble
from mlipserve.server.models.torch_potential import TorchPotential
from mlipserve.server.models.torchscript import probe

PICKLE_REASON = "it is a mace-torch .model file, a Python pickle whose loading runs code"
NO_WEIGHTS_ONLY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


@contextmanager
def mace_imports() -> Iterator[None]:
    """Import mace-torch without leaving its process-wide `torch.load` override behind.

    `import mace` sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (its e3nn loads pickled constants
    at import), which would turn every later `torch.load` into full unpickling; the
    variable is restored on exit.
    """
    before = os.environ.get(NO_WEIGHTS_ONLY)
    try:
        import mace.modules  # noqa: F401

        yield
    finally:
        if before is None:
            os.environ.pop(NO_WEIGHTS_ONLY, None)
        else:
            os.environ[NO_WEIGHTS_ONLY] = before


class MaceEnergy(nn.Module):
    """Energy (S,) and per-atom energies (A,) of a MACE model on TorchPotential's graph."""

    def __init__(self, model: nn.Module, head: str | None = None) -> None:
        super().__init__()
        heads = list(getattr(model, "heads", ["Default"]))
        if head is None and len(heads) > 1:
            raise ValueError(f"the model has heads {heads}: name one as metadata 'head'")
        if head is not None and head not in heads:
            raise ValueError(f"unknown head {head!r}; the model has {heads}")
        self.head = heads.index(head) if head is not None else 0
        self.model = model
        numbers = model.atomic_numbers.to(torch.long)
        index = torch.full((int(numbers.max()) + 1,), -1, dtype=torch.long)
        index[numbers] = torch.arange(len(numbers))
        self.register_buffer("element_index", index)
        self.cutoff = float(model.r_max)
        self.elements = frozenset(int(z) for z in numbers)

    def forward(self, graph: dict) -> dict[str, torch.Tensor]:
        """Energies of the batch; MACE's own autograd outputs are not requested."""
        positions, cell = graph["positions"], graph["cell"]
        index = self.element_index[graph["numbers"]]
        node_attrs = nn.functional.one_hot(index, len(self.elements)).to(positions.dtype)
        sender = graph["edge_index"][0]
        shifts = torch.einsum(
            "ek,ekl->el", graph["edge_shift"], cell[graph["system_index"][sender]]
        )
        counts = torch.bincount(graph["system_index"], minlength=graph["n_systems"])
        ptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        data = {
            "positions": positions,
            "node_attrs": node_attrs,
            "edge_index": graph["edge_index"],
            "shifts": shifts,
            "unit_shifts": graph["edge_shift"],
            "cell": cell.reshape(-1, 3),
            "batch": graph["system_index"],
            "ptr": ptr,
            "head": torch.full(
                (graph["n_systems"],), self.head, dtype=torch.long, device=positions.device
            ),
        }
        out = self.model(
            data, training=False, compute_force=False, compute_virials=False, compute_stress=False
        )
        return {
            "energy": out["energy"].to(positions.dtype),
            "energies": out["node_energy"].to(positions.dtype),
        }


def load_mace(
    paths: Sequence[str | Path], meta: dict, *, dtype: str | None = None, device: str = "auto"
) -> TorchPotential:
    """A servable evaluator of one or several (committee) trusted MACE `.model` files.

    Raises:
        ValueError: when the files disagree on cutoff or elements, or the head is unknown.
    """
    if meta.get("trusted") is not True:  # the store checks too; never unpickle otherwise
        raise ValueError(f"{PICKLE_REASON}: it needs the 'trusted' flag")
    with mace_imports():
        modules = [torch.load(str(p), map_location="cpu", weights_only=False) for p in paths]
    members = [MaceEnergy(module, meta.get("head")) for module in modules]
    if any(m.cutoff != members[0].cutoff or m.elements != members[0].elements for m in members):
        raise ValueError("the committee members differ in cutoff or elements")
    model_dtype = str(next(members[0].model.parameters()).dtype).removeprefix("torch.")
    info = ModelInfo(
        name=meta.get("name", "mace"),
        version=meta.get("version", "0"),
        kind="mace",
        cutoff=members[0].cutoff,
        elements=members[0].elements,
        ensemble_size=0 if len(members) == 1 else len(members),
        dtype=dtype or meta.get("dtype") or model_dtype,
        device=device,
        min_distance=float(meta.get("min_distance", 0.0)),
        extra={"metrics": meta.get("metrics", {})},
    )
    evaluator = TorchPotential(members[0] if len(members) == 1 else Ensemble(members), info)
    probe(evaluator, min(info.elements), info.cutoff)
    return evaluator
