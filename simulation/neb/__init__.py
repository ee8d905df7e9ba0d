"""Batched (CI-)NEB: every image of a band, or of many bands, in one provider call."""

from mlipserve.simulation.neb.band import BatchedNEB, NEBResult, check_endpoints, make_band
from mlipserve.simulation.neb.screen import ScreenReport, run_neb, screen, screen_and_refine

__all__ = [
    "BatchedNEB",
    "NEBResult",
    "ScreenReport",
    "check_endpoints",
    "make_band",
    "run_neb",
    "screen",
    "screen_and_refine",
]
