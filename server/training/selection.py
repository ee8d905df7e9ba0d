"""Which candidate structures to label: uncertainty-weighted farthest-point sampling.

Picking the k structures of largest ensemble force std (top-sigma) from one MD pool picks
consecutive, correlated frames: the k labels then teach the model about one region of
configuration space (issue 18: top-sigma lost to random picks at 16 labels). `select_batch`
spreads the batch instead, by greedy farthest-point sampling in the model's own descriptor
space, weighted by uncertainty: the first pick is the most uncertain candidate, each next
pick maximises sigma / max(sigma) x (distance to the nearest structure already picked).
A tight cluster of uncertain frames then yields one label, not k.

Why this and not a DP-GEN-like pick (random frames inside a trust window, one retraining per
iteration): the caller labels and retrains once per batch, so the batch itself must be
diverse; a random pick inside the window ignores both how uncertain a frame is and whether
it duplicates another pick. The weighting keeps uncertainty in charge (a far but confident
frame is not preferred over a near but uncertain one without reason), and the distance
term removes redundancy; both factors are scale free (sigma relative to its maximum,
descriptors standardised per column over the qualifying candidates). `method="cluster"`
(k-means into k clusters, the most uncertain frame of each) is the second method tried;
see `benchmarks/al_curve.py` and its results for how the two compare.

`structure_descriptors` gives the descriptor: per structure, the mean over its atoms of
the final PaiNN scalar features (the readout's input), of every ensemble member,
concatenated; with `spread=True` also their standard deviation over the atoms. Members are
not averaged: each member has its own embedding, so feature channel c of member 0 and of
member 1 mean different things and their average means nothing; concatenating makes the
squared distance the sum of the members' squared distances. The mean alone is the default:
on the validation set of `benchmarks/al_curve.py` (Cu slab MD, 5 training seeds) it gave a
lower force error than mean + spread at every budget (4 to 32 labels), by 0.5-2.7 meV/Å
(less than or about the run-to-run spread of ~2 meV/Å: a weak preference, and the smaller
descriptor).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms

from mlipserve.server.models.batch import SystemBatch
from mlipserve.server.models.families import native_potential
from mlipserve.server.models.painn import PaiNN
from mlipserve.server.models.torch_potential import TorchPotential
from mlipserve.wire import SystemArrays

# structures per descriptor pass (bounds the memory of one pass, not the result)
CHUNK = 64
METHODS = ("fps", "cluster")
KMEANS_STEPS = 50  # Lloyd iterations at most


def _check_inputs(descriptors: Any, sigma: Any, k: Any, trust_lo: Any) -> tuple:
    """The inputs as float arrays and an int, or ValueError saying what is wrong."""
    x = np.asarray(descriptors, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"descriptors must be a 2-D (n, d) array, got shape {x.shape}")
    if s.ndim != 1 or len(s) != len(x):
        raise ValueError(
            f"sigma must be a 1-D array with one value per descriptor row ({len(x)}), "
            f"got shape {s.shape}"
        )
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, got {k!r}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    try:
        finite = bool(np.isfinite(float(trust_lo)))
    except (TypeError, ValueError):
        finite = False
    if not finite:
        raise ValueError(f"trust_lo must be a finite number, got {trust_lo!r}")
    if not (np.isfinite(x).all() and np.isfinite(s).all()):
        raise ValueError("descriptors and sigma must be finite (found NaN or inf)")
    if (s < 0).any():
        raise ValueError("sigma must be >= 0 (it is a standard deviation)")
    return x, s, int(k)


def _standardise(x: np.ndarray) -> np.ndarray:
    """Columns shifted to mean 0 and scaled to std 1; constant columns dropped."""
    std = x.std(axis=0)
    keep = std > 1e-12 * max(1.0, float(np.abs(x).max(initial=0.0)))
    return (x[:, keep] - x[:, keep].mean(axis=0)) / std[keep]


def select_batch(
    descriptors: np.ndarray,
    sigma: np.ndarray,
    k: int,
    trust_lo: float,
    seed: int = 0,
    sigma_power: float = 1.0,
    method: str = "fps",
) -> list[int]:
    """Up to k indices into the candidates, all with sigma > trust_lo, uncertain and spread.

    `method` "fps" (default): greedy uncertainty-weighted farthest-point sampling (module
    docstring): first the most uncertain candidate, then each time the one maximising
    (sigma/max sigma)**sigma_power x distance to the nearest pick. "cluster": k-means into k
    clusters, then the most uncertain candidate of each (sigma_power unused). Both work in
    descriptors standardised over the qualifying candidates. Fewer than k come back when
    fewer qualify (then all of them, most uncertain first). `seed` breaks exact ties (and
    seeds the k-means start), so the answer is a function of the inputs and the seed.
    """
    x, s, k = _check_inputs(descriptors, sigma, k, trust_lo)
    if not np.isfinite(sigma_power) or sigma_power < 0:
        raise ValueError(f"sigma_power must be a finite number >= 0, got {sigma_power!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    qualifying = np.flatnonzero(s > trust_lo)
    if k == 0 or len(qualifying) == 0:
        return []
    # a seeded order of the candidates: ties below go to the earlier one in this order
    order = qualifying[np.random.default_rng(seed).permutation(len(qualifying))]
    if len(order) <= k:
        return [int(i) for i in order[np.argsort(-s[order], kind="stable")]]
    feats, s_order = _standardise(x[order]), s[order]
    if method == "cluster":
        local = _cluster(feats, s_order, k, seed)
    else:
        top = s_order.max()
        weight = (s_order / top) ** sigma_power if top > 0 else np.ones(len(order))
        local = _fps(feats, s_order, weight, k)
    return [int(order[i]) for i in local]


def _fps(feats: np.ndarray, sigma: np.ndarray, weight: np.ndarray, k: int) -> list[int]:
    """k rows by greedy weighted farthest-point sampling (ties: larger sigma, then row)."""
    nearest = np.full(len(feats), np.inf)  # distance to the nearest pick so far
    free = np.ones(len(feats), dtype=bool)
    picks: list[int] = []
    for _ in range(k):
        # before any pick the weight alone decides (the most uncertain candidate)
        score = np.where(free, weight * nearest if picks else weight, -np.inf)
        best = np.flatnonzero(score == score.max())
        # exact ties (duplicates; the first pick among equal sigmas): most uncertain, then row
        pick = int(best[np.argmax(sigma[best])])
        picks.append(pick)
        free[pick] = False
        if feats.shape[1]:
            dist = np.sqrt(((feats - feats[pick]) ** 2).sum(axis=1))
        else:  # all descriptors equal: nothing to spread over, sigma alone decides
            dist = np.zeros(len(feats))
        nearest = np.minimum(nearest, dist)
    return picks


def _cluster(feats: np.ndarray, sigma: np.ndarray, k: int, seed: int) -> list[int]:
    """The most uncertain row of each of k k-means clusters (k-means++ start, seeded);
    clusters left empty are made up by the most uncertain rows not yet picked."""
    rng = np.random.default_rng(seed)
    if feats.shape[1] == 0:  # nothing to cluster on
        return [int(i) for i in np.argsort(-sigma, kind="stable")[:k]]
    centres = [feats[int(np.argmax(sigma))]]
    for _ in range(1, k):  # k-means++: next centre drawn in proportion to squared distance
        d2 = np.min([((feats - c) ** 2).sum(axis=1) for c in centres], axis=0)
        centres.append(feats[rng.choice(len(feats), p=d2 / d2.sum())] if d2.sum() > 0 else feats[0])
    c = np.array(centres)
    for _ in range(KMEANS_STEPS):
        label = ((feats[:, None] - c[None]) ** 2).sum(-1).argmin(axis=1)
        moved = np.array(
            [feats[label == j].mean(0) if (label == j).any() else c[j] for j in range(k)]
        )
        if np.allclose(moved, c):
            break
        c = moved
    picks = [int(np.flatnonzero(label == j)[np.argmax(sigma[label == j])]) for j in set(label)]
    rest = [int(i) for i in np.argsort(-sigma, kind="stable") if i not in picks]
    picks += rest[: k - len(picks)]
    return sorted(picks, key=lambda i: -sigma[i])


def _painn_of(module: torch.nn.Module) -> tuple[PaiNN, Callable[[dict], dict]]:
    """The (short-range) PaiNN of a native module and how its graph is cut from the full one."""
    if isinstance(module, PaiNN):
        return module, lambda graph: graph
    short = getattr(module, "short", None)
    if not isinstance(short, PaiNN):
        raise ValueError(
            f"{type(module).__name__} has no PaiNN features: descriptors need a native "
            "PaiNN-family model (painn, painn-coulomb, painn-field)"
        )
    return short, getattr(module, "_short_graph", lambda graph: graph)


def structure_descriptors(
    potential: TorchPotential | torch.nn.Module,
    structures: Sequence[Atoms],
    spread: bool = False,
) -> np.ndarray:
    """(n, K·F) per-structure descriptors: the mean over atoms of the final PaiNN scalar
    features of every member (module docstring says why), as float64; (n, 2·K·F) with
    `spread`: each member's means, then its standard deviations over the atoms.

    `potential` is a served `TorchPotential` of a native PaiNN-family model, or the module
    itself (e.g. from `ModelStore.load_module`; a copy is evaluated in float64 on the CPU,
    as `report.as_provider` does, and the module passed is left as it was).
    """
    if not isinstance(potential, TorchPotential):
        if not isinstance(potential, torch.nn.Module):
            raise ValueError(
                f"potential must be a TorchPotential or a native module, not "
                f"{type(potential).__name__}"
            )
        _painn_of(potential)  # a clear error before any copy
        potential = native_potential(copy.deepcopy(potential), "descriptors")
    painn, short_graph = _painn_of(potential.module)
    if len(structures) == 0:
        raise ValueError("structure_descriptors needs at least one structure")
    out = []
    for start in range(0, len(structures), CHUNK):
        chunk = structures[start : start + CHUNK]
        batch = SystemBatch.concat([SystemArrays.from_atoms(a) for a in chunk])
        graph = short_graph(potential.graph(batch))
        with torch.inference_mode():
            feats = painn.scalars(graph).to("cpu", torch.float64)  # (K, A, F)
        system = graph["system_index"].to("cpu")
        n = len(chunk)
        count = torch.bincount(system, minlength=n).to(torch.float64)[None, :, None]
        k, _, f = feats.shape
        index = system[None, :, None].expand(k, -1, f)
        mean = feats.new_zeros(k, n, f).scatter_add_(1, index, feats) / count
        centred = feats - mean.gather(1, index)
        var = feats.new_zeros(k, n, f).scatter_add_(1, index, centred**2) / count
        desc = torch.cat([mean, var.sqrt()], dim=-1) if spread else mean  # (K, n, 2F or F)
        out.append(desc.permute(1, 0, 2).reshape(n, -1).numpy())
    return np.concatenate(out)
