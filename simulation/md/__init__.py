"""Molecular dynamics: state, integrators, the driver, the shared run loop, observers, stability."""

from mlipserve.simulation.md.driver import MolecularDynamics

__all__ = ["MolecularDynamics"]
