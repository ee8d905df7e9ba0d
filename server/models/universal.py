"""SevenNet-0, a pretrained universal MLIP (89 elements), served from the `sevenn` wheel.

Install with `pip install mlipserve[universal]` and serve as built-in model "sevennet-0"
(`mlipserve serve --models default,sevennet-0`). The weights are the checkpoint
`SevenNet_0__11Jul2024` that ships inside the `sevenn` wheel: nothing here fetches from the
network, and a missing file is an error (sevenn's own name lookup, which may download other
checkpoints, is never called).

Trust: sevenn reads its checkpoints with `torch.load(weights_only=False)` (pickle, which can
run code). That is acceptable only because the file is part of a package the administrator
installed, trusted by installation like any other installed code; never point this loader at
an uploaded or downloaded file.

Route: torch-native. The sevenn network runs as an energy model inside `TorchPotential`, on
the server's neighbour list and batch (many systems in one forward pass); forces and stress
come from the shared autograd path, not from sevenn's own force module. The network was
trained in float32, which is the served dtype; "sevennet-0:float64" is the same network
widened (for finite-difference checks). On a 2-core CPU batching gains nothing: a batch costs
about what sevenn's own calculator costs system by system (1.1-1.2x); a GPU is untried.

sevenn needs e3nn >= 0.5 (it pulls 0.6); mace-torch pins e3nn 0.4.4, so the two cannot share
a virtual environment.
"""

from __future__ import annotations

import copy
import functools
import os
from importlib.metadata import version

import torch

from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.torch_potential import TorchPotential, edge_vectors, pick_device

CHECKPOINT = "SevenNet_0__11Jul2024"


def checkpoint_path() -> str:
    """Path of the SevenNet-0 checkpoint inside the installed `sevenn` package."""
    try:
        import sevenn._const as const
    except ImportError as err:
        raise ImportError(
            "sevennet-0 needs the optional extra: pip install 'mlipserve[universal]'"
        ) from err
    except ValueError as err:  # sevenn refuses e3nn < 0.5 with a ValueError at import
        raise ImportError(
            f"sevenn cannot be imported ({err}); mace-torch pins e3nn 0.4.4, "
            "so sevenn and mace-torch need separate environments"
        ) from err
    path = const.SEVENNET_0_11Jul2024
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing from the sevenn installation; reinstall sevenn "
            "(mlipserve never downloads weights)"
        )
    return path


class OneHotDtype(torch.nn.Module):
    """Cast sevenn's one-hot species embedding (always float32) to the network's dtype."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.keys = keys
        self.register_buffer("like", torch.zeros(()))  # follows .to(dtype)

    def forward(self, data: dict) -> dict:
        """The same data, one-hot features in the dtype of `like`."""
        for key in self.keys:
            data[key] = data[key].to(self.like.dtype)
        return data


class SevenNetEnergy(torch.nn.Module):
    """The sevenn network as an energy model: graph dict → per-system and per-atom energy."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        from sevenn import _keys

        self.keys = {
            name: getattr(_keys, name)
            for name in (
                "ATOMIC_NUMBERS",
                "NODE_FEATURE",
                "EDGE_IDX",
                "EDGE_VEC",
                "BATCH",
                "NUM_ATOMS",
                "ATOMIC_ENERGY",
            )
        }
        network.delete_module_by_key("force_output")  # forces and stress: shared autograd
        network.key_grad = None  # edge vectors arrive with their autograd history
        network.set_is_batch_data(True)
        onehot = network._modules["onehot_idx_to_onehot"]
        cast = OneHotDtype(tuple(k for k in (onehot.key_output, onehot.key_additional_output) if k))
        layers = list(network._modules.items())
        network._modules.clear()
        for name, layer in layers:
            network._modules[name] = layer
            if name == "onehot_idx_to_onehot":
                network._modules["onehot_dtype"] = cast
        self.network = network

    def forward(self, graph: dict) -> dict[str, torch.Tensor]:
        """Energies E_s = Σ_i ε_i of each system from edge vectors r_ij = x_j − x_i + S·cell."""
        key = self.keys
        counts = torch.bincount(graph["system_index"], minlength=graph["n_systems"])
        data = {
            key["ATOMIC_NUMBERS"]: graph["numbers"],
            key["NODE_FEATURE"]: graph["numbers"],  # replaced by the one-hot type embedding
            key["EDGE_IDX"]: graph["edge_index"],
            key["EDGE_VEC"]: edge_vectors(graph),
            key["BATCH"]: graph["system_index"],
            key["NUM_ATOMS"]: counts,
        }
        out = self.network(data)
        energies = out[key["ATOMIC_ENERGY"]].reshape(-1)
        energy = energies.new_zeros(graph["n_systems"]).index_add(
            0, graph["system_index"], energies
        )
        return {"energy": energy, "energies": energies}


@functools.lru_cache(maxsize=1)
def _checkpoint():
    """The checkpoint shipped in the sevenn wheel, read once (see the module's trust note)."""
    path = checkpoint_path()  # first: a clear error when sevenn is missing or broken
    from sevenn.checkpoint import SevenNetCheckpoint

    return SevenNetCheckpoint(path)


@functools.lru_cache(maxsize=4)
def _network(dtype: str, device: str) -> tuple[SevenNetEnergy, float, frozenset[int]]:
    """Build (once per dtype and device) the network, its cutoff and its elements."""
    checkpoint = _checkpoint()
    from sevenn import _keys

    config = checkpoint.config
    if dtype == "float32":  # as trained; sevenn patches old checkpoint layouts here
        module = SevenNetEnergy(checkpoint.build_model())
    else:  # the trained float32 network widened (constants included): no second build
        module = copy.deepcopy(_network("float32", device)[0])
    module = module.to(device=device, dtype=getattr(torch, dtype)).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module, float(config[_keys.CUTOFF]), frozenset(int(z) for z in config[_keys.TYPE_MAP])


def sevennet0(
    name: str = "sevennet-0", dtype: str = "float32", device: str = "auto"
) -> TorchPotential:
    """SevenNet-0 (11 Jul 2024; PBE MPtrj, cutoff 5 Å) as a served, batched model."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"sevennet-0 dtype must be float32 or float64, not {dtype!r}")
    where = str(pick_device(None if device == "auto" else device))
    module, cutoff, elements = _network(dtype, where)
    info = ModelInfo(
        name=name,
        version=f"{CHECKPOINT}-sevenn{version('sevenn')}",
        kind="sevennet",
        cutoff=cutoff,
        elements=elements,
        dtype=dtype,
        device=where,
    )
    return TorchPotential(module, info)
