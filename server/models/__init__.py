"""Served model families: pair potentials, ensembles, the ASE adapter."""

from mlipserve.server.models.base import ModelInfo, Potential

__all__ = ["Potential", "ModelInfo"]
