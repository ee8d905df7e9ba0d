"""Serve a TorchScript energy model written against mlipserve's graph contract.

Contract of the scripted module (`torch.jit.save` of a `torch.jit.script`-ed module):
`forward(graph: Dict[str, Tensor]) -> Dict[str, Tensor]` where the input holds

- `positions (A, 3)` float, Å (requires grad when forces or stress are asked for);
- `numbers (A,)` int64 atomic numbers; `system_index (A,)` int64 system of each atom;
- `cell (S, 3, 3)` float, Å, one lattice vector per row; `pbc (S, 3)` bool;
- `edge_index (2, E)` int64 full neighbour list (i, j) within the stored `cutoff`, and
  `edge_shift (E, 3)` float integer cell shifts: r_ij = x_j − x_i + shift_ij · cell;
- `n_systems ()` 0-d int64 tensor S;
- `conditions.<name> (S, ...)` float, one entry per per-system condition;

and the output holds `energy (S,)` eV — or `(K, S)` for a committee of K members — and
optionally `energies (A,)` / `(K, A)` per-atom energies (without them the property is
not offered). The module returns energies only: forces −∂E/∂x and stress (1/V) ∂E/∂ε
are taken by autograd in `TorchPotential`, so the energy must be a differentiable
function of `positions` and `cell` (strain reaches both). Cutoff, elements and ensemble
size come from the store's metadata.json, and a probe dimer checks them at load.

Safety: `torch.jit.load` does not unpickle Python objects. A TorchScript archive's
pickles are read by TorchScript's own unpickler, which resolves every class name as a
TorchScript type and refuses anything else ("Unknown type name 'posix.system'"), so a
crafted `__reduce__` cannot run; a `torch.save` archive has no `code/` and is refused
before loading (see `check_torchscript_archive`).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.batch import SystemBatch
from mlipserve.server.models.torch_potential import TorchPotential


def check_torchscript_archive(data: bytes) -> None:
    """Refuse anything but a TorchScript zip archive (raw pickles, torch.save archives).

    Raises:
        ValueError: naming what the bytes are instead and how to export a valid file.
    """
    export = "export with torch.jit.save(torch.jit.script(module)) (or metatomic's save)"
    if data[:1] == b"\x80":
        raise ValueError(f"a raw pickle is refused (the store never unpickles): {export}")
    if data[:4] != b"PK\x03\x04":
        raise ValueError(f"not a TorchScript archive (no zip header): {export}")
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile as err:
        raise ValueError(f"not a TorchScript archive ({err}): {export}") from None
    has_code = any("/code/" in n for n in names)
    has_constants = any(n.endswith("/constants.pkl") for n in names)
    if not (has_code and has_constants):
        raise ValueError(
            "a torch.save archive (pickled Python objects) is refused: it has no "
            f"TorchScript code/ and constants.pkl; {export}"
        )


class ScriptedGraphModel(nn.Module):
    """Adapter: TorchPotential's graph dict → the flat `Dict[str, Tensor]` contract."""

    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.scripted = scripted

    def forward(self, graph: dict) -> dict[str, torch.Tensor]:
        """Flatten the graph (n_systems as a 0-d tensor, conditions as `conditions.<name>`)."""
        flat = {k: v for k, v in graph.items() if isinstance(v, torch.Tensor)}
        flat["n_systems"] = torch.tensor(
            graph["n_systems"], dtype=torch.long, device=graph["positions"].device
        )
        for name, value in graph.get("conditions", {}).items():
            flat[f"conditions.{name}"] = value
        return self.scripted(flat)


def probe(evaluator: TorchPotential, element: int, cutoff: float) -> None:
    """Evaluate a dimer at 0.6 × cutoff and check the output's shapes and finiteness.

    Raises:
        ValueError: when the module breaks the output contract.
    """
    r = 0.6 * cutoff
    batch = SystemBatch(
        positions=np.array([[0.0, 0.0, 0.0], [r, 0.1, 0.0]]),
        numbers=np.array([element, element]),
        cell=np.zeros((1, 3, 3)),
        pbc=np.zeros((1, 3), bool),
        n_atoms=np.array([2]),
        system_index=np.zeros(2, np.int64),
    )
    try:
        out = evaluator.compute(batch, frozenset({"energy", "forces"}))
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as err:
        raise ValueError(f"the model fails on a probe dimer of Z={element}: {err}") from None
    if out["energy"].shape != (1,) or out["forces"].shape != (2, 3):
        raise ValueError(
            f"energy of shape {out['energy'].shape} for one system: the module "
            "must return energy (S,) or (K, S)"
        )
    if not (np.isfinite(out["energy"]).all() and np.isfinite(out["forces"]).all()):
        raise ValueError("the model gives non-finite energy or forces on a probe dimer")


def member_count(module: nn.Module, graph_dtype: torch.dtype, element: int) -> tuple[int, bool]:
    """(K, has_energies): K = 0 for a single model, else the leading ensemble axis."""
    positions = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=graph_dtype)
    graph = {
        "positions": positions,
        "numbers": torch.tensor([element, element]),
        "cell": torch.zeros(1, 3, 3, dtype=graph_dtype),
        "pbc": torch.zeros(1, 3, dtype=torch.bool),
        "system_index": torch.zeros(2, dtype=torch.long),
        "n_systems": 1,
        "edge_index": torch.zeros(2, 0, dtype=torch.long),
        "edge_shift": torch.zeros(0, 3, dtype=graph_dtype),
        "conditions": {},
    }
    try:
        out = module(graph)
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as err:
        raise ValueError(f"the model does not follow the graph contract: {err}") from None
    if "energy" not in out:
        raise ValueError(f"the model returns {sorted(out)}, not 'energy'")
    energy = out["energy"]
    if energy.dim() not in (1, 2) or energy.shape[-1] != 1:
        raise ValueError(
            f"energy of shape {tuple(energy.shape)} for one system: expected (S,) or (K, S)"
        )
    return (energy.shape[0] if energy.dim() == 2 else 0), "energies" in out


def load_torchscript(
    path: str | Path, meta: dict, *, dtype: str | None = None, device: str = "auto"
) -> TorchPotential:
    """A servable evaluator of a stored TorchScript file; metadata from metadata.json.

    Raises:
        ValueError: when the metadata lacks a cutoff or disagrees with the module.
    """
    if "cutoff" not in meta or float(meta["cutoff"]) <= 0:
        raise ValueError("a TorchScript model needs a positive 'cutoff' (Å) in its metadata")
    scripted = torch.jit.load(str(path), map_location="cpu")
    module = ScriptedGraphModel(scripted)
    dtype = dtype or meta.get("dtype", "float64")
    elements = sorted(int(z) for z in meta.get("elements", ()))
    element = elements[0] if elements else 1
    k, has_energies = member_count(module.to(getattr(torch, dtype)), getattr(torch, dtype), element)
    declared = int(meta.get("ensemble_size", 0))
    if k != declared:
        raise ValueError(
            f"the module returns {k or 'no'} ensemble members but the metadata "
            f"declares ensemble_size={declared}"
        )
    info = ModelInfo(
        name=meta.get("name", "torchscript"),
        version=meta.get("version", "0"),
        kind="torchscript",
        cutoff=float(meta["cutoff"]),
        elements=frozenset(elements),
        ensemble_size=k,
        dtype=dtype,
        device=device,
        min_distance=float(meta.get("min_distance", 0.0)),
        extra={"metrics": meta.get("metrics", {})},
    )
    evaluator = TorchPotential(module, info)
    if not has_energies:
        props = tuple(p for p in evaluator.info.properties if p != "energies")
        evaluator.info = ModelInfo(**{**evaluator.info.__dict__, "properties": props})
    probe(evaluator, element, info.cutoff)
    return evaluator
