"""QM/ML blending: one potential inside a region, another outside, switched smoothly."""

from mlipserve.simulation.blending.blend import (
    BlendedProvider,
    BlendPlan,
    plot_radial_scan,
    radial_scan,
    scan_against_hard_cut,
)

__all__ = [
    "BlendPlan",
    "BlendedProvider",
    "plot_radial_scan",
    "radial_scan",
    "scan_against_hard_cut",
]
