"""Small helpers shared by the layers: initializers, padding conventions, channel axis."""

from __future__ import annotations

import keras

PACKAGE = "keras_efficientnet"

#: He-style initializer of the EfficientNet papers for convolutions.
CONV_INITIALIZER = {"class_name": "VarianceScaling",
                    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
#: Initializer of the classifier.
DENSE_INITIALIZER = {"class_name": "VarianceScaling",
                     "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}

PADDINGS = ("same", "symmetric")


def standardize_data_format(data_format):
    """``data_format`` or Keras' global image data format."""
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}.")
    return data_format


def channel_axis(data_format: str) -> int:
    """The channel axis of a 4-D tensor in ``data_format``."""
    return -1 if data_format == "channels_last" else 1


def spatial_axes(data_format: str) -> tuple[int, int]:
    """The two spatial axes of a 4-D tensor in ``data_format``."""
    return (1, 2) if data_format == "channels_last" else (2, 3)


def conv_padding(kernel_size: int, strides: int, padding: str):
    """How to pad a convolution under a weight-source convention.

    ``"same"`` is TensorFlow's rule (at stride 2 the extra pixel goes after). ``"symmetric"``
    is PyTorch's: ``k // 2`` pixels before and after. Both agree at stride 1 for odd kernels.

    Returns:
        ``(explicit_pad, keras_padding)``: pixels to zero-pad on each side first (0 for none)
        and the padding argument for the Keras convolution.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}.")
    if padding == "symmetric" and (strides > 1 or kernel_size % 2 == 0):
        return kernel_size // 2, "valid"
    return 0, "same"


def torch_conv_padding(layer, inputs):
    """The symmetric padding torch's ``conv2d`` takes for a Keras convolution ``layer`` on
    ``inputs``, when it can be called directly on the channels_last memory an NHWC tensor is
    (PyTorch backend, channels-last 4-D inputs, ``"valid"``, or ``"same"`` at stride 1 with an
    odd kernel); None where Keras' own path is kept (TensorFlow-style asymmetric ``"same"``
    padding, ``channels_first``, other backends).

    Example:
        >>> import keras
        >>> from keras_efficientnet.layers.common import torch_conv_padding
        >>> layer = keras.layers.Conv2D(4, 3, padding="same")
        >>> torch_conv_padding(layer, keras.ops.ones((1, 8, 8, 3))) == (
        ...     (1, 1) if keras.backend.backend() == "torch" else None)
        True
    """
    if (keras.backend.backend() != "torch" or layer.data_format != "channels_last"
            or len(inputs.shape) != 4):
        return None
    if layer.padding == "valid":
        return (0, 0)
    if layer.padding == "same" and tuple(layer.strides) == (1, 1) \
            and all(k % 2 for k in layer.kernel_size):
        return tuple(d * (k - 1) // 2 for k, d in zip(layer.kernel_size, layer.dilation_rate))
    return None


def pad_spatial(x, pad: int, data_format: str):
    """Zero-pad both spatial dimensions of ``x`` by ``pad`` pixels on each side."""
    if not pad:
        return x
    width = [[0, 0], [pad, pad], [pad, pad], [0, 0]] if data_format == "channels_last" \
        else [[0, 0], [0, 0], [pad, pad], [pad, pad]]
    return keras.ops.pad(x, width)


def serializable(cls):
    """Register a layer class for ``.keras`` saving under this package's name."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


def serializable_as_core(core, loader: bool = True):
    """Register a fast subclass of a core Keras layer so that it saves *as* that core layer.

    A model's ``.keras`` file then names ``keras.layers.<Core>`` with the core layer's own
    config, so it loads with plain Keras in a process that never imports this package (and
    computes the same function there). The file also records the registered name ``<Core>``,
    under which this package registers a loader: after ``import keras_efficientnet``,
    ``keras.saving.load_model`` gives the fast subclass back (``cls.from_config`` decides
    which class fits the current backend). Files Keras writes for its own layers carry no
    registered name and are not affected. The class keeps ``isinstance(layer, core)`` true
    and shows the core name in ``model.summary()``, as keras.applications' models do.

    ``loader=False`` registers the saving side only, for a second fast subclass of the same
    core layer: the name ``<Core>`` keeps the first class's loader (whose ``from_config``
    picks among them).
    """
    from keras.src.saving import object_registration

    def wrap(cls):
        original = cls.__name__
        name = core.__name__
        cls.__name__ = cls.__qualname__ = name
        cls.__module__ = "keras.layers"
        cls._ke_name = original
        object_registration.GLOBAL_CUSTOM_NAMES[cls] = name
        if loader:
            object_registration.GLOBAL_CUSTOM_OBJECTS[name] = cls
        # files written before this change name the class under the package
        object_registration.GLOBAL_CUSTOM_OBJECTS[f"{PACKAGE}>{original}"] = cls
        return cls

    return wrap
