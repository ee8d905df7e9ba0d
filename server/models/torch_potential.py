"""Serve a torch energy model: forces and stress by autograd, ensemble statistics.

This is the one place where forces (-dE/dx) and stress ((1/V) dE/dε for a symmetric
strain ε applied to positions and cell) are derived; models only return energies.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from ase.stress import full_3x3_to_voigt_6_stress

from mlipserve.server.memory import keep_freed_memory
from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.batch import SystemBatch
from mlipserve.server.models.compiled import compile_setting, compiled_module
from mlipserve.server.models.field_response import RESPONSE, field_leaf, member_responses
from mlipserve.server.models.neighbors import VerletNeighbors

log = logging.getLogger(__name__)


def pick_device(device: str | None = None) -> torch.device:
    """CUDA when present (or the device asked for), CPU otherwise."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def edge_vectors(graph: dict[str, torch.Tensor]) -> torch.Tensor:
    """(..., E, 3) vectors from atom i to its neighbour j, periodic images included.

    Positions (..., A, 3) and cell (..., S, 3, 3) may carry a leading member axis.
    """
    i, j = graph["edge_index"]
    positions, cell = graph["positions"], graph["cell"]
    axis = positions.dim() - 2  # index_select: its backward is a fast index_add
    cell_of_edge = cell.index_select(axis, graph["system_index"][i])
    shift = torch.einsum("ek,...ekl->...el", graph["edge_shift"], cell_of_edge)
    return positions.index_select(axis, j) - positions.index_select(axis, i) + shift


def sum_per_system(values: torch.Tensor, graph: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum per-atom values (..., A) into per-system values (..., S)."""
    # index_add even for one system: the same summation order alone or in a batch
    out = values.new_zeros(values.shape[:-1] + (graph["n_systems"],))
    return out.index_add(-1, graph["system_index"], values)


def apply_strain(positions: torch.Tensor, cell: torch.Tensor, system_index: torch.Tensor):
    """A zero symmetric strain ε per system, applied to positions and cell: x(I + ε).

    Positions (..., A, 3) and cell (..., S, 3, 3); a leading member axis gives each member
    its own strain leaf (..., S, 3, 3).
    """
    strain = torch.zeros_like(cell, requires_grad=True)
    sym = 0.5 * (strain + strain.transpose(-1, -2))
    eff_positions = positions + torch.einsum(
        "...ai,...aij->...aj", positions, sym[..., system_index, :, :]
    )
    return strain, eff_positions, cell + cell @ sym


def geometry_members(module: torch.nn.Module) -> int:
    """K for modules whose members each take their own copy of the geometry; 0 otherwise."""
    return int(getattr(module, "geometry_members", 0) or 0)


def member_geometry(
    members: int, positions: torch.Tensor, cell: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Positions (K, A, 3) and cell (K, S, 3, 3), one copy per member (members ≥ 1);
    unchanged (shared by all members) for members = 0.

    With a copy per member, one backward pass yields every member's forces and virial
    (the members share no weights), instead of K backward passes through a K-wide graph.
    """
    if members < 1:
        return positions, cell, False
    return (
        positions.detach().expand((members,) + positions.shape).clone(),
        cell.detach().expand((members,) + cell.shape).clone(),
        True,
    )


def member_chunks(members: int, n_edges: int, budget: int) -> list[tuple[int, int] | None]:
    """Member ranges per pass so that members × edges stays within `budget` ([None]: all)."""
    per_pass = max(1, budget // max(n_edges, 1))
    if members <= 1 or per_pass >= members:
        return [None]
    return [(a, min(a + per_pass, members)) for a in range(0, members, per_pass)]


def member_gradients(
    members: torch.Tensor,
    positions: torch.Tensor | None,
    strain: torch.Tensor | None,
    create_graph: bool = False,
    per_member: bool = False,
):
    """Per-member -dE/dx (K, A, 3) and dE/dε (K, S, 3, 3) for energies (K, S).

    `per_member`: positions and strain already carry the member axis (see
    `member_geometry`), so a single backward pass of Σ_k E_k gives them all.
    """
    inputs = [t for t in (positions, strain) if t is not None]
    if not inputs:
        return None, None
    if per_member:
        grads = torch.autograd.grad(members.sum(), inputs, create_graph=create_graph)
        return (
            (-grads[0] if positions is not None else None),
            (grads[-1] if strain is not None else None),
        )
    forces, virials = [], []
    k_total = members.shape[0]
    for k in range(k_total):
        grads = torch.autograd.grad(
            members[k].sum(),
            inputs,
            retain_graph=create_graph or k < k_total - 1,
            create_graph=create_graph,
        )
        if positions is not None:
            forces.append(-grads[0])
        if strain is not None:
            virials.append(grads[-1])
    return (torch.stack(forces) if forces else None), (torch.stack(virials) if virials else None)


def _skin_setting() -> float:
    """MLIPSERVE_NEIGHBOR_SKIN (Å, default 0: a fresh list per call, bit-identical results call
    to call): Verlet skin of a pair list reused across MD steps (last-bit differences)."""
    raw = os.environ.get("MLIPSERVE_NEIGHBOR_SKIN", "0")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"MLIPSERVE_NEIGHBOR_SKIN must be a distance ≥ 0 (Å), not {raw!r}")
    return value


def _edges_per_pass_setting() -> int:
    """MLIPSERVE_MEMBER_EDGES_PER_PASS (default 1,000,000), a positive integer."""
    raw = os.environ.get("MLIPSERVE_MEMBER_EDGES_PER_PASS", "1000000")
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f"MLIPSERVE_MEMBER_EDGES_PER_PASS must be a positive integer "
            f"(members x edges per pass), not {raw!r}"
        )
    return value


@dataclass(frozen=True)
class PreparedGraph:
    """A batch and its module input (`TorchPotential.graph`), ready for `TorchPotential.run`."""

    batch: SystemBatch
    graph: dict


class TorchPotential:
    """Potential around an `nn.Module` mapping a graph dict to energies.

    The module's `forward(graph)` returns {"energy": (S,) or (K, S), "energies": (A,) or
    (K, A)}; a leading K axis marks an ensemble. A module with `geometry_members = K` takes
    positions (K, A, 3) and cell (K, S, 3, 3), one copy per member; one that also has
    `member_parameters(start, stop)` is evaluated a slice of members at a time when
    members × edges exceeds `member_edges_per_pass` (peak memory of one pass).
    """

    def __init__(self, module: torch.nn.Module, info: ModelInfo) -> None:
        self.device = pick_device(info.device if info.device != "auto" else None)
        self.dtype = getattr(torch, info.dtype)
        if self.device.type == "cpu":
            keep_freed_memory()  # page faults on big tensors cost more than the arithmetic
        self.member_edges_per_pass = _edges_per_pass_setting()
        self.neighbors = VerletNeighbors(info.cutoff, _skin_setting())
        self.module = module.to(device=self.device, dtype=self.dtype).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.compiled = compiled_module(self.module) if compile_setting() else None
        props = ("energy", "forces", "stress", "energies")
        if info.ensemble_size:
            props = props + ("uncertainty",)
        props = props + tuple(getattr(module, "extra_properties", ()))
        self.info = ModelInfo(**{**info.__dict__, "device": str(self.device), "properties": props})

    def _tensor(self, array: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.tensor(array, dtype=dtype or self.dtype, device=self.device)

    def graph(self, batch: SystemBatch) -> dict:
        """The module's input for `batch`: atoms, neighbour list (the model's cutoff),
        conditions, positions and cell, as tensors on the model's device and dtype."""
        if getattr(self.module, "needs_neighbors", True):
            edge_index, edge_shift = self.neighbors(batch)
        else:  # external-field models: no pair list to build
            edge_index, edge_shift = np.zeros((2, 0), np.int64), np.zeros((0, 3))
        return {
            "numbers": self._tensor(batch.numbers, torch.long),
            "pbc": self._tensor(batch.pbc, torch.bool),
            "system_index": self._tensor(batch.system_index, torch.long),
            "n_systems": batch.n_systems,
            "edge_index": self._tensor(edge_index, torch.long),
            "edge_shift": self._tensor(edge_shift),
            "conditions": {k: self._tensor(v) for k, v in batch.conditions.items()},
            "positions": self._tensor(batch.positions),
            "cell": self._tensor(batch.cell),
        }

    def compute(self, batch: SystemBatch, properties: frozenset[str]) -> dict[str, np.ndarray]:
        """Energies from the module; forces and stress by autograd; ensemble mean and std."""
        return self.run(self.prepare(batch), properties)

    def prepare(self, batch: SystemBatch) -> PreparedGraph:
        """The host-side half of `compute`: the neighbour list and the module's tensors
        (thread-safe: the serving path runs it while the previous batch computes)."""
        return PreparedGraph(batch, self.graph(batch))

    def run(self, prepared: PreparedGraph, properties: frozenset[str]) -> dict[str, np.ndarray]:
        """The rest of `compute` on a `prepare`d batch: the same numbers, bit for bit."""
        batch, graph = prepared.batch, dict(prepared.graph)
        positions, cell = graph.pop("positions"), graph.pop("cell")
        chunks = [None]
        if hasattr(self.module, "member_parameters"):
            chunks = member_chunks(
                geometry_members(self.module),
                graph["edge_index"].shape[1],
                self.member_edges_per_pass,
            )
        if self.compiled is not None and chunks == [None]:
            try:
                passes = [self._members_pass(graph, positions, cell, properties, None, True)]
            except Exception as err:  # inductor failed: eager from now on, same results
                log.warning("compiled model failed (%s); serving eager from now on", err)
                self.compiled = None
        if self.compiled is None or chunks != [None]:
            passes = [
                self._members_pass(graph, positions, cell, properties, chunk) for chunk in chunks
            ]
        parts = {
            key: None if passes[0][key] is None else torch.cat([p[key] for p in passes])
            for key in passes[0]
        }
        return self._collect(batch, properties, parts)

    def _members_pass(
        self,
        graph: dict,
        positions: torch.Tensor,
        cell: torch.Tensor,
        properties: frozenset[str],
        chunk: tuple[int, int] | None,
        compiled: bool = False,
    ):
        """Energies (k, S), per-atom energies and charges (k, A), forces (k, A, 3), virials
        (k, S, 3, 3), dipoles (k, S, 3), Born charges (k, A, 3, 3) and polarizabilities
        (k, S, 3, 3) of the members in
        `chunk` (all members when None); None where not asked for or not offered."""
        response = properties & RESPONSE & set(self.info.properties)
        need_forces = "forces" in properties or bool(response)
        need_stress = "stress" in properties
        if chunk is None:
            call, k = self.module, geometry_members(self.module)
            call = self.compiled if compiled else call
        else:
            params = self.module.member_parameters(*chunk)
            call, k = partial(torch.func.functional_call, self.module, params), chunk[1] - chunk[0]
        positions, cell, per_member = member_geometry(k, positions, cell)
        with torch.enable_grad() if need_forces or need_stress else torch.inference_mode():
            strain = None
            if need_forces:
                positions.requires_grad_(True)
            if need_stress:
                strain, eff_positions, eff_cell = apply_strain(
                    positions, cell, graph["system_index"]
                )
            else:
                eff_positions, eff_cell = positions, cell
            inputs = {**graph, "positions": eff_positions, "cell": eff_cell}
            dipole_k = born_k = alpha_k = None
            if response:
                inputs, field = field_leaf(
                    inputs, graph["n_systems"], positions, k if per_member else 0
                )
            out = call(inputs)
            energy = out["energy"]
            members = energy if energy.dim() == 2 else energy.unsqueeze(0)
            if response:
                forces_k, virial_k, dipole_k, born_k, alpha_k = member_responses(
                    members,
                    positions,
                    strain,
                    field,
                    "born_charges" in properties,
                    per_member,
                    polarizability="polarizability" in properties,
                )
            else:
                forces_k, virial_k = member_gradients(
                    members, positions if need_forces else None, strain, per_member=per_member
                )

        def members_axis(key: str) -> torch.Tensor | None:
            value = out.get(key)  # absent for per-system models / models without charges
            if value is None:
                return None
            return (value if value.dim() == 2 else value.unsqueeze(0)).detach()

        return {
            "energy": members.detach(),
            "energies": members_axis("energies"),
            "charges": members_axis("charges"),
            "forces": forces_k,
            "virial": virial_k,
            "dipole": dipole_k,
            "born_charges": born_k,
            "polarizability": alpha_k,
        }

    def _collect(self, batch, properties, parts: dict) -> dict[str, np.ndarray]:
        def np64(t: torch.Tensor) -> np.ndarray:
            return t.detach().to("cpu", torch.float64).numpy()

        energies_k = np64(parts["energy"])
        forces_k, virial_k = parts["forces"], parts["virial"]
        result: dict[str, np.ndarray] = {"energy": energies_k.mean(0)}
        ensemble = self.info.ensemble_size > 0
        uncertainty = ensemble and "uncertainty" in properties
        if uncertainty:
            result["energy_std"] = energies_k.std(0)
        if forces_k is not None and "forces" in properties:
            f = np64(forces_k)
            result["forces"] = f.mean(0)
            if uncertainty:
                per_atom = np.sqrt(((f - f.mean(0)) ** 2).sum(-1).mean(0))
                result["forces_std"] = per_atom
                result["max_force_std"] = np.maximum.reduceat(per_atom, batch.offsets[:-1])
        if virial_k is not None:
            volume = np.abs(np.linalg.det(batch.cell))
            stress = np64(virial_k).mean(0) / volume[:, None, None]
            result["stress"] = full_3x3_to_voigt_6_stress(stress)
        if "energies" in properties:
            result["energies"] = np64(parts["energies"].mean(0))
        for key in ("dipole", "born_charges", "charges", "polarizability"):
            if key in properties and parts.get(key) is not None:
                result[key] = np64(parts[key]).mean(0)
        return result


def builtin_potential(
    module: torch.nn.Module,
    name: str,
    kind: str,
    cutoff: float,
    dtype: str = "float64",
    device: str = "auto",
    ensemble_size: int = 0,
) -> TorchPotential:
    """A shipped analytic module served as `name` (version "builtin-1")."""
    info = ModelInfo(
        name=name,
        version="builtin-1",
        kind=kind,
        cutoff=cutoff,
        ensemble_size=ensemble_size,
        dtype=dtype,
        device=device,
    )
    return TorchPotential(module, info)
