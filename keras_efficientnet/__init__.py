"""keras_efficientnet: the EfficientNet family for Keras 3, on TensorFlow, JAX and PyTorch.

``import keras_efficientnet`` imports Keras and registers every serializable object of the
package (layers, schedules, losses, optimizers), so ``keras.saving.load_model`` reads any
``.keras`` file the package or its ``train`` command wrote. The ``keras-efficientnet`` command
is the one exception: it parses its arguments first (``--help`` answers without loading Keras)
and imports the package when a command runs.

Example:
    >>> import keras_efficientnet as ke
    >>> model = ke.EfficientNetB0(weights=None, include_top=False, pooling="avg", input_shape=(64, 64, 3))
    >>> model.output_shape
    (None, 1280)
    >>> ke.segmentation.Unet("EfficientNetB0", input_shape=(64, 64, 3), classes=2).output_shape
    (None, 64, 64, 2)
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

_LOADED = False
_LOADING = False


def _load():
    """Import the public API (and with it Keras) into the package namespace; idempotent."""
    global _LOADED, _LOADING
    if _LOADED or _LOADING:
        return
    _LOADING = True
    try:
        _import_api()
    finally:
        _LOADING = False


def _import_api():
    global _LOADED
    from . import detection, layers, segmentation, specs
    from .models.constructors import CONSTRUCTORS, EfficientNet, create_model, list_models
    from .models.factory import build_efficientnet
    from .models.features import create_feature_extractor, feature_info
    from .models.fuse import fuse_batchnorm
    from .models.checkpoint import from_checkpoint, inspect_checkpoint
    from .pretrained.loading import save_weights
    from .presets import from_preset, save_preset
    from .pretrained.registry import list_weights
    from .preprocessing import decode_predictions, imagenet_class_index, preprocess_input
    from .specs import ModelSpec, get_spec
    from .export import export  # the function; the module stays importable
    from .quantize import quantize_weights
    from .torchscript import torchscript  # the function (PyTorch backend; torch imported on use)
    from .training import serializables  # noqa: F401  (registers schedules, losses, optimizers)

    namespace = dict(locals())
    namespace.pop("serializables")
    namespace.update(CONSTRUCTORS)
    globals().update(namespace)
    globals()["__all__"] = sorted(
        [*CONSTRUCTORS, "EfficientNet", "create_model", "list_models", "build_efficientnet",
         "save_weights", "save_preset", "from_preset", "from_checkpoint", "inspect_checkpoint", "list_weights",
         "decode_predictions", "imagenet_class_index", "preprocess_input", "ModelSpec",
         "get_spec", "layers", "specs", "segmentation", "detection", "export", "quantize_weights", "fuse_batchnorm", "create_feature_extractor",
         "feature_info", "torchscript"])
    _LOADED = True


def __getattr__(name):
    if name.startswith("__") or _LOADING:  # submodule imports ask while the API loads
        raise AttributeError(f"module 'keras_efficientnet' has no attribute {name!r}")
    _load()
    try:
        return globals()[name]
    except KeyError:
        raise AttributeError(f"module 'keras_efficientnet' has no attribute {name!r}") from None


def _is_cli_process() -> bool:
    """True when this process is the ``keras-efficientnet`` command (the console script, or
    ``python -m keras_efficientnet[.cli]``): it imports Keras only once a command runs."""
    argv = list(getattr(_sys, "orig_argv", None) or _sys.argv or [])
    if argv and _os.path.basename(_sys.argv[0] if _sys.argv else "").startswith("keras-efficientnet"):
        return True
    for i, arg in enumerate(argv[:-1]):
        if arg == "-m":
            return argv[i + 1] in ("keras_efficientnet", "keras_efficientnet.cli")
    return False


if not _is_cli_process():
    _load()
