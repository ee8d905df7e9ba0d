"""Simulation drivers that run on the client and talk to a ForceProvider."""

from mlipserve.simulation.provider import ForceProvider, RemoteProvider

__all__ = ["ForceProvider", "RemoteProvider"]
