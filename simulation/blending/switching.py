"""Radial switching functions s(d): 1 inside `r_inner`, 0 beyond `r_inner + width`.

With x = (d − r_inner)/width clipped to [0, 1]:

- "quintic": s = 1 − (10x³ − 15x⁴ + 6x⁵), the C² smoothstep (s, s', s'' vanish at both ends);
- "cosine":  s = (1 + cos πx)/2, C¹ (s' vanishes at both ends, s'' jumps by π²/(2 width²));
- "step":    s = 1 if d < r_inner else 0, the hard cut (needs width = 0).

`width = 0` always means the hard cut, whatever `kind` says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SWITCH_KINDS = ("quintic", "cosine", "step")


@dataclass(frozen=True)
class Switch:
    """s(d) and its derivative ds/dd for a shell [r_inner, r_inner + width].

    Args:
        r_inner: radius (Å) inside which s = 1.
        width: shell width (Å); s = 0 beyond r_inner + width. 0 gives the hard cut.
        kind: "quintic" (C²), "cosine" (C¹) or "step" (hard cut).
    """

    r_inner: float
    width: float
    kind: str = "quintic"

    def __post_init__(self) -> None:
        if self.kind not in SWITCH_KINDS:
            raise ValueError(f"switch kind must be one of {SWITCH_KINDS}, got {self.kind!r}")
        if not np.isfinite(self.r_inner) or self.r_inner < 0:
            raise ValueError(f"r_inner must be a non-negative distance, got {self.r_inner}")
        if not np.isfinite(self.width) or self.width < 0:
            raise ValueError(f"width must be a non-negative distance, got {self.width}")
        if self.kind == "step" and self.width != 0:
            raise ValueError("the 'step' switch is the hard cut: give width = 0")

    @property
    def r_outer(self) -> float:
        """Radius (Å) beyond which s = 0."""
        return self.r_inner + self.width

    @property
    def hard(self) -> bool:
        """Whether this is the hard cut (a step at r_inner)."""
        return self.width == 0 or self.kind == "step"

    def __call__(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(s(d), ds/dd) for distances d (Å); ds/dd in 1/Å."""
        d = np.asarray(d, dtype=float)
        if self.hard:
            return (d < self.r_inner).astype(float), np.zeros_like(d)
        x = np.clip((d - self.r_inner) / self.width, 0.0, 1.0)
        if self.kind == "quintic":
            s = 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x**2)
            ds = -30.0 * x**2 * (1.0 - x) ** 2 / self.width
        else:
            s = 0.5 * (1.0 + np.cos(np.pi * x))
            ds = -0.5 * np.pi * np.sin(np.pi * x) / self.width
        return s, ds
