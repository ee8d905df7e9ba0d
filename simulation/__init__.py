"""Simulation drivers that run on the client and talk to a ForceProvider."""

from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.barostats import StochasticCellRescaling
from mlipserve.simulation.md.integrators import BerendsenBarostat, langevin_baoab, velocity_verlet
from mlipserve.simulation.md.stability import check_timestep
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.neb import BatchedNEB, make_band, run_neb, screen, screen_and_refine
from mlipserve.simulation.provider import ForceProvider, RemoteProvider
from mlipserve.simulation.relax import RelaxResult, relax_batch

__all__ = [
    "BatchedNEB",
    "BerendsenBarostat",
    "RelaxResult",
    "make_band",
    "relax_batch",
    "run_neb",
    "screen",
    "screen_and_refine",
    "ForceProvider",
    "MDState",
    "MolecularDynamics",
    "RemoteProvider",
    "StochasticCellRescaling",
    "check_timestep",
    "langevin_baoab",
    "velocity_verlet",
]
