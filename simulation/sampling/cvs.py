"""Collective variables s(R) with their gradients ∂s/∂R, batched over replicas.

Every CV takes positions of R replicas with the same atoms, `(R, n, 3)` in Å, their cells
`(R, 3, 3)` and periodic flags `(R, 3)`, and returns values `(R,)` and gradients
`(R, n, 3)`. Distances between atoms use the minimum image in periodic directions. A CV's
`period` is its period (2π for a dihedral) or None; biases wrap differences by it.

```python
from mlipserve.simulation.sampling.cvs import Distance, PathCV
values, gradients = Distance(0, 1).evaluate(positions, cells, pbc)
s = PathCV([image.positions for image in neb_images], indices=[12])
```
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase.geometry import complete_cell


def batch_arrays(
    positions: np.ndarray, cell: np.ndarray | None = None, pbc: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check and broadcast positions (R, n, 3), cells (R, 3, 3) and pbc (R, 3)."""
    positions = np.asarray(positions, dtype=float)
    if positions.ndim == 2:
        positions = positions[None]
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise ValueError(f"positions must have shape (R, n, 3), got {positions.shape}")
    r = len(positions)
    cell = np.zeros((r, 3, 3)) if cell is None else np.asarray(cell, dtype=float)
    pbc = np.zeros((r, 3), bool) if pbc is None else np.asarray(pbc, dtype=bool)
    cell = np.broadcast_to(cell, (r, 3, 3)) if cell.shape == (3, 3) else cell
    pbc = np.broadcast_to(pbc, (r, 3)) if pbc.shape == (3,) else pbc
    if cell.shape != (r, 3, 3) or pbc.shape != (r, 3):
        raise ValueError(f"cell {cell.shape} and pbc {pbc.shape} do not match {r} replicas")
    return positions, cell, pbc


def minimum_image(d: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Wrap displacements d (R, ..., 3) to the nearest image along periodic cell vectors.

    Rounds fractional coordinates, which is the minimum image for orthorhombic and mildly
    skewed cells (ASE's `find_mic` does the general search).
    """
    if not pbc.any():
        return d
    cells = np.stack([complete_cell(c) for c in cell])
    shape = d.shape
    flat = d.reshape(len(d), -1, 3)
    frac = np.einsum("rpj,rjk->rpk", flat, np.linalg.inv(cells))
    frac -= np.round(frac) * pbc[:, None, :]
    return np.einsum("rpj,rjk->rpk", frac, cells).reshape(shape)


def check_indices(indices: Sequence[int], n: int, name: str) -> None:
    """Raise ValueError if an atom index is outside 0..n-1."""
    for i in indices:
        if not -n <= i < n:
            raise ValueError(f"{name}: atom index {i} out of range for {n} atoms")


class CV:
    """Base of the collective variables: `evaluate(positions, cell, pbc)` → (s, ∂s/∂R)."""

    period: float | None = None
    name: str = "cv"

    def evaluate(
        self, positions: np.ndarray, cell: np.ndarray | None = None, pbc: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Values (R,) and gradients (R, n, 3) for positions (R, n, 3) (or (n, 3))."""
        positions, cell, pbc = batch_arrays(positions, cell, pbc)
        self.check(positions.shape[1])
        return self._evaluate(positions, cell, pbc)

    def check(self, n_atoms: int) -> None:
        """Raise ValueError if the CV does not fit systems of n_atoms atoms."""

    def _evaluate(
        self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class Position(CV):
    """Projection of one atom's position on a direction: s = (r_i − o)·ê (Å).

    `axis` is 0, 1, 2 (x, y, z) or a direction vector (normalised here); `origin` o in Å.
    """

    def __init__(
        self, index: int, axis: int | Sequence[float] = 0, origin: Sequence[float] = (0.0, 0.0, 0.0)
    ) -> None:
        if isinstance(axis, (int, np.integer)):
            if axis not in (0, 1, 2):
                raise ValueError(f"axis must be 0, 1 or 2 (x, y, z) or a vector, got {axis}")
            direction = np.eye(3)[axis]
        else:
            direction = np.asarray(axis, dtype=float)
            if direction.shape != (3,) or not np.linalg.norm(direction) > 0:
                raise ValueError(f"axis must be a non-zero 3-vector, got {axis}")
        self.index = int(index)
        self.direction = direction / np.linalg.norm(direction)
        self.origin = np.asarray(origin, dtype=float)
        axis_name = "xyz"[axis] if isinstance(axis, (int, np.integer)) else "s"
        self.name = f"{axis_name}(atom {self.index}) (Å)"

    def check(self, n_atoms: int) -> None:
        """Raise ValueError if the atom index is out of range."""
        check_indices([self.index], n_atoms, "Position")

    def _evaluate(self, positions, cell, pbc):
        values = (positions[:, self.index] - self.origin) @ self.direction
        grads = np.zeros_like(positions)
        grads[:, self.index] = self.direction
        return values, grads


class Distance(CV):
    """Distance between atoms i and j, s = |r_j − r_i| (minimum image), Å."""

    def __init__(self, i: int, j: int) -> None:
        if i == j:
            raise ValueError(f"a distance needs two different atoms, got {i} twice")
        self.i, self.j = int(i), int(j)
        self.name = f"d({self.i},{self.j})"

    def check(self, n_atoms: int) -> None:
        """Raise ValueError if an index is out of range."""
        check_indices([self.i, self.j], n_atoms, "Distance")

    def _evaluate(self, positions, cell, pbc):
        d = minimum_image(positions[:, self.j] - positions[:, self.i], cell, pbc)
        r = np.linalg.norm(d, axis=-1)
        u = d / r[:, None]
        grads = np.zeros_like(positions)
        grads[:, self.j] += u
        grads[:, self.i] -= u
        return r, grads


class Angle(CV):
    """Angle i–j–k at atom j, s = atan2(|u×v|, u·v) with u = r_i − r_j, v = r_k − r_j (rad)."""

    def __init__(self, i: int, j: int, k: int) -> None:
        if len({i, j, k}) != 3:
            raise ValueError(f"an angle needs three different atoms, got {(i, j, k)}")
        self.i, self.j, self.k = int(i), int(j), int(k)
        self.name = f"angle({self.i},{self.j},{self.k})"

    def check(self, n_atoms: int) -> None:
        """Raise ValueError if an index is out of range."""
        check_indices([self.i, self.j, self.k], n_atoms, "Angle")

    def _evaluate(self, positions, cell, pbc):
        u = minimum_image(positions[:, self.i] - positions[:, self.j], cell, pbc)
        v = minimum_image(positions[:, self.k] - positions[:, self.j], cell, pbc)
        nu, nv = np.linalg.norm(u, axis=-1), np.linalg.norm(v, axis=-1)
        cross = np.linalg.norm(np.cross(u, v), axis=-1)
        dot = np.einsum("ri,ri->r", u, v)
        theta = np.arctan2(cross, dot)
        cos, sin = np.cos(theta), np.maximum(np.sin(theta), 1e-12)
        # ∂θ/∂u = −(v̂ − cosθ û) / (|u| sinθ), and likewise for v.
        du = -(v / nv[:, None] - cos[:, None] * u / nu[:, None]) / (nu * sin)[:, None]
        dv = -(u / nu[:, None] - cos[:, None] * v / nv[:, None]) / (nv * sin)[:, None]
        grads = np.zeros_like(positions)
        grads[:, self.i] += du
        grads[:, self.k] += dv
        grads[:, self.j] -= du + dv
        return theta, grads


class Dihedral(CV):
    """Dihedral i–j–k–l, φ = atan2(|b₂| b₁·n, m·n), m = b₁×b₂, n = b₂×b₃, in (−π, π] (rad).

    b₁ = r_j − r_i, b₂ = r_k − r_j, b₃ = r_l − r_k (Blondel & Karplus gradients).
    """

    period = 2 * np.pi

    def __init__(self, i: int, j: int, k: int, l: int) -> None:
        if len({i, j, k, l}) != 4:
            raise ValueError(f"a dihedral needs four different atoms, got {(i, j, k, l)}")
        self.atoms = (int(i), int(j), int(k), int(l))
        self.name = "dihedral({},{},{},{})".format(*self.atoms)

    def check(self, n_atoms: int) -> None:
        """Raise ValueError if an index is out of range."""
        check_indices(self.atoms, n_atoms, "Dihedral")

    def _evaluate(self, positions, cell, pbc):
        i, j, k, l = self.atoms
        b1 = minimum_image(positions[:, j] - positions[:, i], cell, pbc)
        b2 = minimum_image(positions[:, k] - positions[:, j], cell, pbc)
        b3 = minimum_image(positions[:, l] - positions[:, k], cell, pbc)
        m, n = np.cross(b1, b2), np.cross(b2, b3)
        nb2 = np.linalg.norm(b2, axis=-1)
        phi = np.arctan2(nb2 * np.einsum("ri,ri->r", b1, n), np.einsum("ri,ri->r", m, n))
        gi = -(nb2 / np.einsum("ri,ri->r", m, m))[:, None] * m
        gl = (nb2 / np.einsum("ri,ri->r", n, n))[:, None] * n
        p = (np.einsum("ri,ri->r", b1, b2) / nb2**2)[:, None]
        q = (np.einsum("ri,ri->r", b3, b2) / nb2**2)[:, None]
        grads = np.zeros_like(positions)
        grads[:, i] = gi
        grads[:, l] = gl
        grads[:, j] = q * gl - (1 + p) * gi
        grads[:, k] = p * gi - (1 + q) * gl
        return phi, grads


class Coordination(CV):
    """Coordination number s = Σ_{i∈A, j∈B, i≠j} f(r_ij), f(r) = (1 − x^n)/(1 − x^m), x = r/r0.

    PLUMED's rational switching function: smooth, f(0) = 1, f(r0) = n/m, → 0 for r ≫ r0.
    With B omitted (or equal to A), each pair of A is counted once.
    """

    def __init__(
        self,
        group_a: Sequence[int],
        group_b: Sequence[int] | None = None,
        r0: float = 2.5,
        n: int = 6,
        m: int = 12,
    ) -> None:
        if not r0 > 0:
            raise ValueError(f"the switching distance r0 must be positive, got {r0}")
        if not 0 < n < m:
            raise ValueError(f"the switching exponents need 0 < n < m, got n={n}, m={m}")
        a = [int(x) for x in group_a]
        b = a if group_b is None else [int(x) for x in group_b]
        if not a or not b:
            raise ValueError("coordination groups must not be empty")
        if group_b is None or sorted(a) == sorted(b):
            pairs = [(x, y) for idx, x in enumerate(a) for y in a[idx + 1 :]]
        else:
            pairs = sorted({(min(x, y), max(x, y)) for x in a for y in b if x != y})
        if not pairs:
            raise ValueError("the coordination groups define no pair of distinct atoms")
        self.pairs = np.array(pairs, dtype=int)
        self.r0, self.n, self.m = float(r0), int(n), int(m)
        self.name = f"coordination(r0={self.r0:g})"

    def check(self, n_atoms: int) -> None:
        """Raise ValueError if an index is out of range."""
        check_indices(self.pairs.ravel().tolist(), n_atoms, "Coordination")

    def switching(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f(r) and df/dr of the rational switching function (limit taken at r = r0)."""
        x = r / self.r0
        x = np.where(np.abs(x - 1.0) < 1e-6, 1.0 + 1e-6, x)
        num, den = 1.0 - x**self.n, 1.0 - x**self.m
        f = num / den
        df = (-self.n * x ** (self.n - 1) * den + self.m * x ** (self.m - 1) * num) / den**2
        return f, df / self.r0

    def _evaluate(self, positions, cell, pbc):
        a, b = self.pairs[:, 0], self.pairs[:, 1]
        d = minimum_image(positions[:, b] - positions[:, a], cell, pbc)
        r = np.linalg.norm(d, axis=-1)
        f, df = self.switching(r)
        g = (df / r)[..., None] * d
        grads = np.zeros_like(positions)
        by_atom = np.moveaxis(grads, 1, 0)  # a view (n, R, 3): add.at accumulates into grads
        for col, sign in ((b, 1.0), (a, -1.0)):
            np.add.at(by_atom, col, sign * np.moveaxis(g, 1, 0))
        return f.sum(-1), grads


class PathCV(CV):
    """Progress along a path of images (Branduardi et al. 2007), s ∈ [0, 1], or distance z.

    With d_i = (1/m) Σ_atoms |r − r_i|² the mean-square displacement of the selected atoms
    from image i (minimum image), s = Σ_i t_i e^{−λ d_i} / Σ_i e^{−λ d_i} with t_i = i/(N−1),
    and z = −(1/λ) ln Σ_i e^{−λ d_i} (Å²). λ defaults to 2.3 / mean d(image i, image i+1).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        indices: Sequence[int] | None = None,
        lam: float | None = None,
        component: str = "s",
    ) -> None:
        frames = np.asarray(images, dtype=float)
        if frames.ndim != 3 or frames.shape[-1] != 3 or len(frames) < 2:
            raise ValueError(f"a path needs at least 2 images of shape (n, 3), got {frames.shape}")
        if component not in ("s", "z"):
            raise ValueError(
                f"component must be 's' (progress) or 'z' (distance), got {component!r}"
            )
        n_atoms = frames.shape[1]
        self.indices = np.arange(n_atoms) if indices is None else np.asarray(indices, dtype=int)
        if len(self.indices) == 0:
            raise ValueError("a path CV needs at least one atom")
        check_indices(self.indices.tolist(), n_atoms, "PathCV")
        self.n_atoms = n_atoms
        self.images = frames[:, self.indices]
        steps = ((self.images[1:] - self.images[:-1]) ** 2).sum(-1).mean(-1)
        if lam is None:
            if not np.all(steps > 0):
                raise ValueError("consecutive path images coincide: give λ explicitly")
            lam = 2.3 / steps.mean()
        if not lam > 0:
            raise ValueError(f"λ must be positive, got {lam}")
        self.lam = float(lam)
        self.component = component
        self.t = np.linspace(0.0, 1.0, len(frames))
        self.name = f"path {component}"

    def check(self, n_atoms: int) -> None:
        """Raise ValueError unless systems have as many atoms as the path images."""
        if n_atoms != self.n_atoms:
            raise ValueError(f"path images have {self.n_atoms} atoms, systems have {n_atoms}")

    def _evaluate(self, positions, cell, pbc):
        sel = positions[:, self.indices]  # (R, m, 3)
        diff = minimum_image(sel[:, None] - self.images[None], cell, pbc)  # (R, N, m, 3)
        m = len(self.indices)
        d = (diff**2).sum((-1, -2)) / m  # (R, N)
        logits = -self.lam * d
        top = logits.max(1, keepdims=True)
        e = np.exp(logits - top)
        total = e.sum(1)
        w = e / total[:, None]
        dd = 2.0 * diff / m  # ∂d_i/∂r for the selected atoms
        if self.component == "s":
            s = w @ self.t
            coef = -self.lam * w * (self.t[None] - s[:, None])  # ∂s/∂d_i … times ∂d_i/∂r
        else:
            s = -(np.log(total) + top[:, 0]) / self.lam
            coef = w
        grads = np.zeros_like(positions)
        grads[:, self.indices] = np.einsum("rn,rnmk->rmk", coef, dd)
        return s, grads
