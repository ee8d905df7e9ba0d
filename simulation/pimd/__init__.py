"""Path-integral MD: ring polymers, normal modes, PILE thermostats, quantum estimators."""

from mlipserve.simulation.pimd.driver import PathIntegralMD, PIMDIntegrator, PIMDLog
from mlipserve.simulation.pimd.normal_modes import NormalModes, free_frequencies
from mlipserve.simulation.pimd.ring_polymer import RingPolymerState
from mlipserve.simulation.pimd.thermostats import PILE_G, PILE_L

__all__ = [
    "PILE_G",
    "PILE_L",
    "NormalModes",
    "PIMDIntegrator",
    "PIMDLog",
    "PathIntegralMD",
    "RingPolymerState",
    "free_frequencies",
]
