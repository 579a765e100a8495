"""keras_efficientnet: the EfficientNet family for Keras 3, on TensorFlow, JAX and PyTorch.

Example:
    >>> import keras_efficientnet as ke
    >>> model = ke.EfficientNetB0(weights=None, include_top=False, pooling="avg", input_shape=(64, 64, 3))
    >>> model.output_shape
    (None, 1280)
"""

from . import layers, specs
from .models.constructors import CONSTRUCTORS, EfficientNet, create_model, list_models
from .models.factory import build_efficientnet
from .models.features import create_feature_extractor, feature_info
from .models.fuse import fuse_batchnorm
from .models.checkpoint import from_checkpoint, inspect_checkpoint
from .pretrained.loading import save_weights
from .pretrained.registry import list_weights
from .preprocessing import decode_predictions, imagenet_class_index, preprocess_input
from .specs import ModelSpec, get_spec
from .export import export  # noqa: E402  (the function; the module stays importable)

globals().update(CONSTRUCTORS)

__version__ = "0.1.0"

__all__ = sorted([*CONSTRUCTORS, "EfficientNet", "create_model", "list_models", "build_efficientnet",
                  "save_weights", "from_checkpoint", "inspect_checkpoint", "list_weights", "decode_predictions", "imagenet_class_index", "preprocess_input",
                  "ModelSpec", "get_spec", "layers", "specs", "export", "fuse_batchnorm",
                  "create_feature_extractor", "feature_info"])
