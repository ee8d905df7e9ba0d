"""Figures of the simulation drivers: matplotlib's object API only.

Library code never switches matplotlib's backend nor touches pyplot's global figure list:
`new_figure` builds a `matplotlib.figure.Figure` directly (it renders to PNG without any
backend) and `save` writes it, titled with the model or system when one is given.

```python
fig, ax = new_figure(6, 4)
ax.plot(x, y)
save(fig, "scan.png", title="Cu, EMT")
```
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 120


def new_figure(width: float = 6.0, height: float = 4.0) -> tuple[Figure, Axes]:
    """A figure (inches) with one axes, in constrained layout, outside pyplot."""
    fig, (ax,) = new_panels(1, width, height)
    return fig, ax


def new_panels(n: int, width: float = 6.0, height: float = 4.0) -> tuple[Figure, list[Axes]]:
    """A figure (inches) with `n` axes side by side, in constrained layout, outside pyplot."""
    from matplotlib.figure import Figure

    if n < 1:
        raise ValueError(f"a figure needs at least one panel, got {n}")
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, [fig.add_subplot(1, n, i + 1) for i in range(n)]


def save(
    fig: Figure,
    path: str | Path,
    title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write `fig` as a PNG at `path` (folders made), with `title` above it when given.

    `provenance` (see `mlipserve.simulation.provenance`) goes into a footer line and the
    PNG's text metadata.
    """
    from mlipserve.simulation.provenance import footer, png_metadata

    if title:
        fig.suptitle(title, fontsize=10)
    metadata = None
    if provenance:
        fig.supxlabel(footer(provenance), fontsize=6, color="0.4")
        metadata = png_metadata(provenance)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png", metadata=metadata)
    return out
