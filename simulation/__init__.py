"""Simulation drivers that run on the client and talk to a ForceProvider."""

from mlipserve.simulation.integrators import BerendsenBarostat, langevin_baoab, velocity_verlet
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.provider import ForceProvider, RemoteProvider
from mlipserve.simulation.stability import check_timestep
from mlipserve.simulation.state import MDState

__all__ = [
    "BerendsenBarostat",
    "ForceProvider",
    "MDState",
    "MolecularDynamics",
    "RemoteProvider",
    "check_timestep",
    "langevin_baoab",
    "velocity_verlet",
]
