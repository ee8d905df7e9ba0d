"""Served model families: pair potentials, ensembles, the ASE adapter."""

from mlipserve.server.models.base import Evaluator, ModelInfo

__all__ = ["Evaluator", "ModelInfo"]
