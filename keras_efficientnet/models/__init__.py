"""Model assembly: the factory and the public constructors."""

from .constructors import CONSTRUCTORS, EfficientNet, create_model, list_models
from .factory import build_efficientnet

__all__ = ["CONSTRUCTORS", "EfficientNet", "create_model", "list_models", "build_efficientnet"]
