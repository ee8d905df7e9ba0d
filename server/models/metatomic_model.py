"""Serve exported metatomic `AtomisticModel`s (MACE, PET, ... exported by their own tools).

`MetatomicEnergy` is an `nn.Module` over TorchPotential's graph: it builds one metatomic
`System` per system from the (strained) positions and cell, fills every neighbour list
the model asks for (`requested_neighbor_lists()`) from the graph's edges — distance
vectors computed with torch from positions and cell, so autograd reaches both — and
returns the model's energy in eV. Forces, stress and committee statistics then come from
TorchPotential like for any native model; a committee of several files is an `Ensemble`
(leading axis K). Units: the engine side is Å / eV and metatomic converts to and from the
model's own units (`ModelEvaluationOptions.length_unit`, the requested output unit).

Safety: the file is a TorchScript archive loaded with `torch.jit.load` (no Python
unpickling, see `torchscript.py`). A model that declares compiled TorchScript extensions
would load native libraries named in the file: such a file needs an admin's `trusted`
flag (`needs_trust`).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.ensemble import Ensemble
from mlipserve.server.models.torch_potential import TorchPotential, edge_vectors, pick_device
from mlipserve.server.models.torchscript import probe

ENGINE_LENGTH, ENGINE_ENERGY = "angstrom", "eV"


def declared_extensions(data: bytes) -> list[str]:
    """Names of the compiled TorchScript extensions an exported file asks to load."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = [n for n in archive.namelist() if n.endswith("/extra/extensions")]
    if not names:
        raise ValueError(
            "not an exported metatomic model (no extra/extensions record): save "
            "it with metatomic.torch.AtomisticModel.save"
        )
    return [e.get("name", "?") for e in json.loads(archive.read(names[0]) or b"[]")]


def needs_trust(data: bytes) -> str | None:
    """Why loading this file would need the `trusted` flag, or None."""
    extensions = declared_extensions(data)
    if extensions:
        return f"it loads compiled TorchScript extensions {extensions} (native code)"
    return None


def _half(edge_index: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Mask keeping one of (i, j, S) and (j, i, −S): i < j, or i = j with S > 0 (lexically)."""
    i, j = edge_index
    key = shift[:, 0] * 1e6 + shift[:, 1] * 1e3 + shift[:, 2]
    return (i < j) | ((i == j) & (key > 0))


class MetatomicEnergy(nn.Module):
    """The energy of a metatomic model as a function of TorchPotential's graph dict."""

    def __init__(self, model, device: torch.device, check_consistency: bool = False) -> None:
        super().__init__()
        from metatensor.torch import Labels
        from metatomic.torch import ModelEvaluationOptions, ModelOutput

        capabilities = model.capabilities()
        if "energy" not in capabilities.outputs:
            raise ValueError(
                f"the model has no 'energy' output (it offers {sorted(capabilities.outputs)})"
            )
        if not capabilities.outputs["energy"].unit or not capabilities.length_unit:
            raise ValueError(
                "the model declares no energy or length unit: cannot convert to eV and Å"
            )
        supported = list(capabilities.supported_devices)
        if device.type not in supported:
            raise ValueError(f"the model runs on {supported}, not on {device.type}")
        # Not registered as a submodule: TorchPotential's .to(dtype) must not cast the
        # model, which runs in its own declared dtype.
        self._model = (model.to(device=device).eval(),)
        for p in model.parameters():
            p.requires_grad_(False)
        self.model_dtype = getattr(torch, capabilities.dtype)
        self.per_atom = capabilities.outputs["energy"].sample_kind == "atom"
        self.options = ModelEvaluationOptions(
            length_unit=ENGINE_LENGTH,
            outputs={
                "energy": ModelOutput(
                    unit=ENGINE_ENERGY, sample_kind="atom" if self.per_atom else "system"
                )
            },
        )
        self.neighbor_lists = list(model.requested_neighbor_lists())
        self.nl_cutoffs = [o.engine_cutoff(ENGINE_LENGTH) for o in self.neighbor_lists]
        self.check_consistency = check_consistency
        self.return_energies = self.per_atom
        self._xyz = Labels("xyz", torch.tensor([[0], [1], [2]], device=device))
        self._distance = Labels("distance", torch.tensor([[0]], device=device))
        self._sample_names = [
            "first_atom",
            "second_atom",
            "cell_shift_a",
            "cell_shift_b",
            "cell_shift_c",
        ]

    @property
    def model(self):
        """The wrapped `AtomisticModel`."""
        return self._model[0]

    def _systems(self, graph: dict) -> list:
        from metatensor.torch import Labels, TensorBlock
        from metatomic.torch import System

        dt = self.model_dtype
        positions, cell = graph["positions"].to(dt), graph["cell"].to(dt)
        pbc = graph["pbc"]
        cell = cell * pbc.unsqueeze(-1).to(dt)  # metatomic: zero vectors where not periodic
        vectors = edge_vectors(
            {
                **graph,
                "positions": positions,
                "cell": cell,
                "edge_shift": graph["edge_shift"].to(dt),
            }
        )
        distance2 = (vectors * vectors).sum(-1)
        edge_index, shift = graph["edge_index"], graph["edge_shift"]
        counts = torch.bincount(graph["system_index"], minlength=graph["n_systems"]).tolist()
        edge_system = graph["system_index"][edge_index[0]]
        systems, start = [], 0
        for s, n in enumerate(counts):
            system = System(
                types=graph["numbers"][start : start + n].to(torch.int32),
                positions=positions[start : start + n],
                cell=cell[s],
                pbc=pbc[s],
            )
            in_system = edge_system == s
            for options, cutoff in zip(self.neighbor_lists, self.nl_cutoffs):
                keep = in_system & (distance2 < cutoff * cutoff)
                if not options.full_list:
                    keep = keep & _half(edge_index, shift)
                samples = torch.cat(
                    [(edge_index[:, keep] - start).T, shift[keep].round().to(torch.long)], 1
                ).to(torch.int32)
                block = TensorBlock(
                    values=vectors[keep].reshape(-1, 3, 1),
                    samples=Labels(self._sample_names, samples, assume_unique=True),
                    components=[self._xyz],
                    properties=self._distance,
                )
                system.add_neighbor_list(options, block)
            systems.append(system)
            start += n
        return systems

    def forward(self, graph: dict) -> dict[str, torch.Tensor]:
        """Per-system energy (S,) in eV, and per-atom energies (A,) when the model gives them."""
        out_dtype = graph["positions"].dtype
        result = self.model(self._systems(graph), self.options, self.check_consistency)
        block = result["energy"].block()
        values = block.values.reshape(-1).to(out_dtype)
        if not self.per_atom:
            return {"energy": values}
        system = block.samples.column("system").to(torch.long)
        energy = values.new_zeros(graph["n_systems"]).index_add(0, system, values)
        if not self.return_energies:
            return {"energy": energy}
        first = torch.cumsum(
            torch.bincount(graph["system_index"], minlength=graph["n_systems"]), 0
        ) - torch.bincount(graph["system_index"], minlength=graph["n_systems"])
        atom = first[system] + block.samples.column("atom").to(torch.long)
        energies = values.new_zeros(graph["positions"].shape[0]).index_add(0, atom, values)
        return {"energy": energy, "energies": energies}


def load_metatomic(
    paths: Sequence[str | Path],
    meta: dict,
    *,
    dtype: str | None = None,
    device: str = "auto",
    check_consistency: bool = False,
) -> TorchPotential:
    """A servable evaluator of one exported metatomic file, or a committee of several.

    Raises:
        ValueError: when the files lack an energy output or disagree on units' ranges,
            elements or dtype.
    """
    from metatomic.torch import load_atomistic_model

    if not paths:
        raise ValueError("a metatomic model needs at least one exported file")
    target = pick_device(device if device not in ("auto", None) else None)
    members = [
        MetatomicEnergy(load_atomistic_model(str(p)), target, check_consistency) for p in paths
    ]
    caps = [m.model.capabilities() for m in members]
    elements = frozenset(int(z) for z in caps[0].atomic_types)
    if any(frozenset(int(z) for z in c.atomic_types) != elements for c in caps):
        raise ValueError("the committee members support different elements")
    cutoff = max(c for m in members for c in m.nl_cutoffs) if members[0].nl_cutoffs else 1.0
    per_atom = all(m.per_atom for m in members)
    for m in members:
        m.return_energies = per_atom  # committee members must return the same keys
    module = members[0] if len(members) == 1 else Ensemble(members)
    info = ModelInfo(
        name=meta.get("name", "metatomic"),
        version=meta.get("version", "0"),
        kind="metatomic",
        cutoff=float(cutoff),
        elements=elements,
        ensemble_size=0 if len(members) == 1 else len(members),
        dtype=dtype or meta.get("dtype") or caps[0].dtype,
        device=str(target),
        min_distance=float(meta.get("min_distance", 0.0)),
        extra={
            "metrics": meta.get("metrics", {}),
            "interaction_range": max(c.engine_interaction_range(ENGINE_LENGTH) for c in caps),
            "metatomic": [str(m.model.metadata().name) for m in members],
        },
    )
    evaluator = TorchPotential(module, info)
    if not per_atom:
        props = tuple(p for p in evaluator.info.properties if p != "energies")
        evaluator.info = ModelInfo(**{**evaluator.info.__dict__, "properties": props})
    probe(evaluator, min(elements), cutoff)
    return evaluator
