"""The plotting helpers: plain Figure objects, PNG files, no global matplotlib state touched."""

from __future__ import annotations

import matplotlib
import pytest
from matplotlib.figure import Figure

from mlipserve.simulation.plotting import new_figure, new_panels, save

PNG = b"\x89PNG\r\n\x1a\n"


def test_figures_stay_outside_pyplot_and_save_titled_pngs(tmp_path):
    backend = matplotlib.get_backend()
    fig, ax = new_figure(4, 3)
    ax.plot([0, 1], [1, 0])
    path = save(fig, tmp_path / "sub" / "line.png", title="Cu, EMT")
    assert isinstance(fig, Figure) and fig.get_suptitle() == "Cu, EMT"
    assert path.read_bytes().startswith(PNG)
    fig, axes = new_panels(2)
    assert len(axes) == 2 and all(a.figure is fig for a in axes)
    assert matplotlib.get_backend() == backend
    if "matplotlib.pyplot" in __import__("sys").modules:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []
    with pytest.raises(ValueError, match="panel"):
        new_panels(0)
