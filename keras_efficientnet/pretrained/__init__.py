"""Pretrained weights: the registry, converters and the download-verify-load path.

Nothing in this package builds a model.
"""

from .loading import download, load_weights, save_weights
from .registry import WeightSet, get_weights, list_weights, register_weights

__all__ = ["download", "load_weights", "save_weights", "WeightSet", "get_weights", "list_weights",
           "register_weights"]
