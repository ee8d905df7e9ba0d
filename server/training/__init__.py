"""Training of native ensemble models (the retrain path the queue calls)."""

from mlipserve.server.training.data import load_structures, split_indices
from mlipserve.server.training.loop import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_structures", "split_indices", "train"]
