"""A small PaiNN-style equivariant potential with an ensemble axis.

Scalar features s (K, A, F) and vector features v (K, A, 3, F) for K members at once:
every weight carries a leading K axis, so one pass evaluates the whole committee on one
neighbour list. Radial basis: sin(nπr/rc)/r; the radial filters W·basis + b are multiplied
by a polynomial envelope u (p = 6) that is C² at the cutoff, so every message, and with it
energy, forces and their first derivative, goes to zero there. Per-element energy shifts
(fitted reference energies) are added to the per-atom readout.

Architecture 1 (models stored before the `architecture` config key and weight existed)
multiplied the basis by u before the filter, so the filter's bias reached past the cutoff:
trained weights jumped the energy when a neighbour crossed it. Such files still load, with
that old meaning and a warning; `PaiNN.upgrade()` (done on a warm start) switches to 2.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

from mlipserve.server.models.torch_potential import edge_vectors, sum_per_system

log = logging.getLogger(__name__)
# 2: the envelope multiplies the filter output; 1: it multiplied the basis (legacy files)
ARCHITECTURE = 2
ARCHITECTURES = (1, 2)


@dataclass(frozen=True)
class PaiNNConfig:
    """Hyper-parameters of the family (stored in the model's metadata)."""

    cutoff: float = 5.0
    features: int = 32
    radial: int = 16
    layers: int = 2
    members: int = 4
    max_z: int = 94
    avg_neighbors: float = 30.0  # message sums are divided by this
    architecture: int = ARCHITECTURE  # where the cutoff envelope acts (module docstring)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"PaiNN architecture {self.architecture!r} is unknown to this "
                f"mlipserve (knows {ARCHITECTURES}); upgrade mlipserve"
            )

    def to_dict(self) -> dict:
        """Plain dict for JSON metadata."""
        return asdict(self)

    def painn(self) -> PaiNNConfig:
        """The PaiNN part alone (a family's config extends this one)."""
        return PaiNNConfig(**{f.name: getattr(self, f.name) for f in fields(PaiNNConfig)})


def envelope(d: torch.Tensor, p: int = 6) -> torch.Tensor:
    """Polynomial cutoff u(d), d = r/rc: 1 at 0, and u, u', u'' all 0 at d = 1."""
    u = (
        1
        - (p + 1) * (p + 2) / 2 * d**p
        + p * (p + 2) * d ** (p + 1)
        - p * (p + 1) / 2 * d ** (p + 2)
    )
    return torch.where(d < 1, u, torch.zeros_like(d))


class EnsembleLinear(nn.Module):
    """K independent linear maps applied to (K, ..., in) → (K, ..., out)."""

    def __init__(self, members: int, n_in: int, n_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(members, n_in, n_out) / math.sqrt(n_in))
        self.bias = nn.Parameter(torch.zeros(members, n_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-member x @ W_k (+ b_k)."""
        return self.parts(x, 1)[0]

    def parts(
        self, x: torch.Tensor, n: int, bias_scale: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """The output split in n equal column blocks, each its own contiguous product.

        `bias_scale` (x's shape with a last axis of 1) multiplies the bias: with x already
        scaled by it, each block is (x_raw @ W + b) · scale in one fused add.
        """
        width = self.weight.shape[-1] // n
        shape = x.shape
        flat = x.reshape(shape[0], -1, shape[-1])
        out = []
        for c in range(n):
            cols = slice(c * width, (c + 1) * width)
            y = torch.bmm(flat, self.weight[..., cols]).reshape(*shape[:-1], width)
            if self.bias is not None:
                bias = self.bias[:, cols].view(shape[0], *([1] * (len(shape) - 2)), -1)
                y = y + bias if bias_scale is None else torch.addcmul(y, bias_scale, bias)
            out.append(y)
        return out


class EnsembleMLP(nn.Module):
    """Two ensemble linear layers with a SiLU between."""

    def __init__(self, members: int, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.a = EnsembleLinear(members, n_in, hidden)
        self.b = EnsembleLinear(members, hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """b(silu(a(x)))."""
        return self.b(nn.functional.silu(self.a(x)))


class Interaction(nn.Module):
    """PaiNN message and update blocks of one layer."""

    def __init__(self, cfg: PaiNNConfig) -> None:
        super().__init__()
        k, f = cfg.members, cfg.features
        self.phi = EnsembleMLP(k, f, f, 3 * f)
        self.filter = EnsembleLinear(k, cfg.radial, 3 * f)
        self.mix_u = EnsembleLinear(k, f, f, bias=False)
        self.mix_v = EnsembleLinear(k, f, f, bias=False)
        self.update = EnsembleMLP(k, 2 * f, f, 3 * f)
        self.features = f
        self.norm = 1.0 / cfg.avg_neighbors

    def filter_weight(self) -> torch.Tensor:
        """(K, R + 1, 3F): the filter's weights with its bias as a last row (one GEMM)."""
        return torch.cat([self.filter.weight, self.filter.bias.unsqueeze(1)], dim=1)

    def forward(self, s, v, geom, unit, i, j):
        """One message pass (sum over neighbours j of i) and one update; v None: all zero.

        `geom` (K, E, R + 1) is the basis times the envelope u with u itself as a last
        column (architecture 1: a column of ones), so one product with `filter_weight`
        gives each filter (W·basis + b)·u, which vanishes at the cutoff. Edge tensors
        dominate the cost, so the three message channels stay separate contiguous
        (K, E, F) tensors, the 1/avg_neighbors factor is applied per atom before the
        gather, and a zero v (first layer) skips its neighbour term.
        """
        f = self.features
        weight = self.filter_weight()
        hidden = nn.functional.silu(self.phi.a(s))
        phis = self.phi.b.parts(hidden, 3)  # three contiguous (K, A, F): per-atom, cheap
        ds, dvv, dvs = (
            (phi * self.norm).index_select(1, j) * torch.bmm(geom, weight[..., c * f : (c + 1) * f])
            for c, phi in enumerate(phis)
        )  # (K, E, F)
        msg_v = dvs.unsqueeze(2) * unit.unsqueeze(-1)  # (K, E, 3, F)
        if v is not None:  # one fused multiply-add: no third (K, E, 3, F) temporary
            msg_v = torch.addcmul(msg_v, v.index_select(1, j), dvv.unsqueeze(2))
        else:
            v = s.new_zeros(s.shape[0], s.shape[1], 3, f)
        s = s.index_add(1, i, ds)
        v = v.index_add(1, i, msg_v)
        u, w = self.mix_u(v), self.mix_v(v)  # (K, A, 3, F)
        w_norm = torch.sqrt((w * w).sum(2) + 1e-8)
        a = self.update(torch.cat([s, w_norm], dim=-1))
        a_vv, a_sv, a_ss = a.split(f, dim=-1)
        v = v + a_vv.unsqueeze(2) * u
        s = s + a_ss + a_sv * (u * w).sum(2)
        return s, v


class PaiNN(nn.Module):
    """The ensemble: energy (K, S) and per-atom energies (K, A) of a batch graph."""

    def __init__(self, cfg: PaiNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Parameter(torch.randn(cfg.members, cfg.max_z + 1, cfg.features))
        # members that take their own copy of the geometry (one backward pass for all)
        self.geometry_members = cfg.members
        self.layers = nn.ModuleList(Interaction(cfg) for _ in range(cfg.layers))
        self.readout = EnsembleMLP(cfg.members, cfg.features, cfg.features, 1)
        # per-element reference energy (eV/atom, fitted before training) and an energy scale
        self.register_buffer("shift", torch.zeros(cfg.max_z + 1))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("frequencies", torch.arange(1, cfg.radial + 1) * math.pi)
        # stored with the weights: a file without it was written by architecture 1
        self.register_buffer("architecture", torch.tensor(cfg.architecture))
        self.register_load_state_dict_pre_hook(PaiNN._check_architecture)

    @staticmethod
    def _check_architecture(module: PaiNN, state_dict: dict, prefix: str, *args) -> None:
        """Weights without an architecture entry are architecture 1: load them with that
        meaning (and say so); weights of another architecture than the config are refused."""
        key = prefix + "architecture"
        if key not in state_dict:
            if module.cfg.architecture != 1:
                log.warning(
                    "PaiNN weights without an architecture entry: written before "
                    "architecture 2, loaded as architecture 1 (cutoff envelope before "
                    "the filter bias: the energy jumps by up to ~meV when a neighbour "
                    "crosses the cutoff); retrain or warm-start for a smooth model"
                )
                module._set_architecture(1)
            state_dict[key] = torch.tensor(1)
            return
        stored = int(state_dict[key])
        if stored not in ARCHITECTURES:
            raise ValueError(
                f"PaiNN weights of architecture {stored} are unknown to this "
                f"mlipserve (knows {ARCHITECTURES}); upgrade mlipserve"
            )
        if stored != module.cfg.architecture:
            raise ValueError(
                f"PaiNN weights are architecture {stored} but the config says "
                f"{module.cfg.architecture}: metadata and weights do not match"
            )

    def _set_architecture(self, architecture: int) -> None:
        self.cfg = replace(self.cfg, architecture=architecture)
        self.architecture.fill_(architecture)

    def upgrade(self) -> None:
        """Switch to the current architecture (same weights, envelope on the filter output):
        a starting point for training, not the same potential as before."""
        self._set_architecture(ARCHITECTURE)

    @property
    def cutoff(self) -> float:
        """Cutoff radius (Å)."""
        return self.cfg.cutoff

    def member_parameters(self, start: int, stop: int) -> dict[str, torch.Tensor]:
        """Parameters of members start..stop-1 (every parameter has the member axis first),
        for `torch.func.functional_call`: a pass over a slice of the ensemble."""
        return {name: p[start:stop] for name, p in self.named_parameters()}

    def forward(self, graph: dict) -> dict[str, torch.Tensor]:
        """Per-member energies of every system and atom.

        Positions (A, 3) are shared by all members; positions (K, A, 3) give each member
        its own copy, so that one backward pass yields every member's forces.
        """
        s = self.scalars(graph)
        z = graph["numbers"]
        energies = self.readout(s).squeeze(-1) * self.scale + self.shift[z]
        return {"energy": sum_per_system(energies, graph), "energies": energies}

    def scalars(self, graph: dict) -> torch.Tensor:
        """The final scalar features (K, A, F) of every atom (input of the readouts)."""
        return self.features(graph)[0]

    def features(self, graph: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The final scalar (K, A, F) and vector (K, A, 3, F) features of every atom."""
        i, j = graph["edge_index"]
        k = self.embedding.shape[0]  # members in this pass (see member_parameters)
        vec = edge_vectors(graph)
        if vec.dim() == 2:
            vec = vec.expand(k, -1, -1)
        r = vec.norm(dim=-1)
        unit = vec / r.unsqueeze(-1)  # (K, E, 3)
        d = r / self.cfg.cutoff
        cut = envelope(d).unsqueeze(-1)  # (K, E, 1)
        rbf = torch.sin(self.frequencies * d.unsqueeze(-1)) / d.unsqueeze(-1) * cut  # (K, E, R)
        # the filters' bias column: scaled by the envelope (architecture 1: not scaled)
        bias_column = cut if self.cfg.architecture >= 2 else torch.ones_like(cut)
        geom = torch.cat([rbf, bias_column], dim=-1)  # (K, E, R + 1), shared by the layers
        z = graph["numbers"]
        s = self.embedding[:, z]  # (K, A, F)
        v = None  # vector features start at zero
        for layer in self.layers:
            s, v = layer(s, v, geom, unit, i, j)
        if v is None:  # no layer: vector features are zero
            v = s.new_zeros(s.shape[0], s.shape[1], 3, s.shape[2])
        return s, v


class ShortRangeParts:
    """What a family built around a short-range `PaiNN` (its `short`) shares with it: the
    fitted per-element shifts, the architecture upgrade, member slices of its parameters."""

    short: PaiNN
    named_parameters: object

    @property
    def shift(self) -> torch.Tensor:
        """The short-range part's per-element reference energies (fitted before training)."""
        return self.short.shift

    def upgrade(self) -> None:
        """Switch the short-range part to the current architecture."""
        self.short.upgrade()

    def member_parameters(self, start: int, stop: int) -> dict[str, torch.Tensor]:
        """Parameters of members start..stop-1 (all carry the member axis first)."""
        return {name: p[start:stop] for name, p in self.named_parameters()}  # type: ignore[operator]
