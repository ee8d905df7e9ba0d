"""Partition schemes: which subsets S of the n shell groups to compute, with what coefficients.

Each scheme maps shell weights w ∈ (0,1)ⁿ to subsets S_k, coefficients c_k(w) (Σ c_k = 1)
and their derivatives ∂c_k/∂w_g, so that a blended quantity Σ_k c_k(w) ΔE(base ∪ S_k) and its
exact gradient can be formed. All three equal ΔE(A) when every weight is 0 or 1 (A = the
groups of weight 1) and are continuous in w.

- `sorted_partitions` (SAP, Heyden et al. 2007): the Lovász extension of the set function,
  c_k = w_(k) − w_(k+1) on the nested sets of the k largest weights; n + 1 sets, piecewise
  linear in w, with kinks where two weights are equal.
- `smoothed_sorted_partitions` (this project's smoothing of SAP): in the Lovász form
  E = ∫₀¹ ΔE({g: w_g > t}) dt the sharp threshold is softened per group: g is included with
  probability p_g(t) = H((w_g − t)/ε_g), H the C² quintic step from −1 to 1, with window
  ε_g = 2ε·w_g(1 − w_g) (so [w_g − ε_g, w_g + ε_g] ⊂ [0, 1]), and
  c_S = ∫₀¹ Π_{g∈S} p_g Π_{g∉S} (1 − p_g) dt. Since H − ½ is odd, a group whose window
  overlaps no other is blended exactly as in SAP: the scheme equals SAP except where windows
  overlap (near-ties), where the kink is replaced by a C² blend that also uses the other
  subsets of the overlapping groups. The integrand is a polynomial between the break points
  w_g ± ε_g, so Gauss–Legendre quadrature is exact; cost n + 1 sets plus those extra subsets.
- `permuted_partitions` (PAP, the multilinear extension): every subset, c_S = Π_{g∈S} w_g
  Π_{g∉S} (1 − w_g); smooth but 2ⁿ sets.
"""

from __future__ import annotations

from itertools import pairwise, product

import numpy as np
from numpy.polynomial.legendre import leggauss

Partitions = tuple[list[np.ndarray], np.ndarray, np.ndarray]


def sorted_partitions(w: np.ndarray) -> Partitions:
    """SAP: nested sets of the k largest weights, c_k = w_(k) − w_(k+1) (w_(0)=1, w_(n+1)=0)."""
    n = len(w)
    order = np.lexsort((np.arange(n), -w))
    sorted_w = np.concatenate([[1.0], w[order], [0.0]])
    coefficients = sorted_w[:-1] - sorted_w[1:]
    dc_dw = np.zeros((n + 1, n))
    for k, g in enumerate(order, start=1):
        dc_dw[k, g], dc_dw[k - 1, g] = 1.0, -1.0
    return [order[:k] for k in range(n + 1)], coefficients, dc_dw


def permuted_partitions(w: np.ndarray, max_shell: int) -> Partitions:
    """PAP: all 2ⁿ subsets, c_S = Π_{g∈S} w_g Π_{g∉S} (1 − w_g)."""
    n = len(w)
    if n > max_shell:
        raise ValueError(
            f"the 'pap' scheme needs 2^{n} clusters for {n} shell groups (max_pap_shell = "
            f"{max_shell}); narrow the shell or use 'sap' / 'smooth'"
        )
    masks = np.array(list(product([False, True], repeat=n)), bool).reshape(-1, n)
    factors = np.where(masks, w, 1.0 - w)
    coefficients = np.prod(factors, axis=1)
    dc_dw = np.zeros((len(masks), n))
    for g in range(n):
        others = np.delete(factors, g, axis=1).prod(axis=1)
        dc_dw[:, g] = np.where(masks[:, g], others, -others)
    return [np.flatnonzero(m) for m in masks], coefficients, dc_dw


def soft_step(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H(x) and H'(x): the C² quintic step, 0 for x ≤ −1, 1 for x ≥ 1."""
    y = np.clip(0.5 * (x + 1.0), 0.0, 1.0)
    return y**3 * (10.0 - 15.0 * y + 6.0 * y**2), 15.0 * y**2 * (1.0 - y) ** 2


def smoothed_sorted_partitions(w: np.ndarray, eps: float, max_tied: int = 10) -> Partitions:
    """SAP with soft per-group thresholds: equal to SAP except near ties, C² in w inside (0,1)ⁿ."""
    if not 0.0 < eps <= 0.5:
        raise ValueError(f"the smoothing strength eps must lie in (0, 0.5], got {eps}")
    n = len(w)
    width = 2.0 * eps * w * (1.0 - w)  # ε_g: the soft window [w_g − ε_g, w_g + ε_g] ⊂ [0, 1]
    dwidth = 2.0 * eps * (1.0 - 2.0 * w)
    breaks = np.unique(np.clip(np.concatenate([[0.0, 1.0], w - width, w + width]), 0.0, 1.0))
    index: dict[tuple[int, ...], int] = {}
    values: list[float] = []
    grads: list[np.ndarray] = []
    for a, b in pairwise(breaks):
        mid = 0.5 * (a + b)
        sure = np.flatnonzero(w - mid >= width)
        tied = np.flatnonzero(np.abs(w - mid) < width)
        if len(tied) > max_tied:
            raise ValueError(
                f"{len(tied)} shell groups have nearly equal weights (max_tied = {max_tied}); "
                "lower eps or use 'sap'"
            )
        nodes, qw = leggauss(3 * len(tied) + 3)
        t = mid + 0.5 * (b - a) * nodes
        qw = 0.5 * (b - a) * qw
        y = (w[tied, None] - t[None, :]) / width[tied, None]
        p, dp = soft_step(y)
        dp = dp * (1.0 - y * dwidth[tied, None]) / width[tied, None]  # ∂p/∂w_g
        for mask in product([False, True], repeat=len(tied)):
            m = np.array(mask, bool)
            factors = np.where(m[:, None], p, 1.0 - p)
            key = tuple(sorted(np.concatenate([sure, tied[m]]).tolist()))
            if key not in index:
                index[key] = len(values)
                values.append(0.0)
                grads.append(np.zeros(n))
            k = index[key]
            values[k] += float(np.prod(factors, axis=0) @ qw)
            for i, g in enumerate(tied):
                others = np.prod(np.delete(factors, i, axis=0), axis=0)
                grads[k][g] += float((dp[i] * others) @ qw) * (1.0 if m[i] else -1.0)
    subsets = [np.array(key, dtype=int) for key in index]
    return subsets, np.array(values), np.array(grads, dtype=float).reshape(len(values), n)
