"""Saving the properties' matplotlib figures as PNG."""

from __future__ import annotations

from pathlib import Path


def save_png(fig, path: str | Path) -> Path:
    """Lay out, write `path` at 120 dpi, close the figure; return the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
