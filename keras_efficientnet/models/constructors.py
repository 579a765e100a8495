"""Public constructors, generated from the variant table.

Each constructor has keras.applications' signature (its positional arguments, order and
defaults, ``weights="imagenet"`` where a default weight set is registered), then this
package's extras as keyword-only arguments. They are thin: all the work is in
:func:`~keras_efficientnet.models.factory.build_efficientnet`.
"""

from __future__ import annotations

import inspect

from ..specs import VARIANTS, compound_spec, get_spec
from ..specs.naming import default_model_name
from .factory import DEFAULT_LAYOUT, build_efficientnet

_DOC = """Instantiate the {name} architecture{extra}.

Default input: {res}x{res} RGB, 0-255 pixels (normalised in the graph as the weights expect:
{pre}). With ``include_top=False`` the input size is free (``(None, None, 3)``).

Args:
    include_top: whether to include the pooling, dropout and ``predictions`` classifier.
    weights: ``None`` (random initialisation), ``"imagenet"`` (default: {default_weights}),
        another registered weight-set tag, or the path of a weights file (keras.applications ``.h5``, this package's
        ``.weights.h5``, or any supported checkpoint; the format is read from the file).
    input_tensor: optional Keras tensor to use as the model's input.
    input_shape: optional shape tuple, e.g. ``({res}, {res}, 3)``.
    pooling: ``None``, ``"avg"`` or ``"max"``: global pooling when ``include_top=False``.
    classes: number of classes of the classifier.
    classifier_activation: activation of the classifier; ``None`` returns logits.
    include_preprocessing: take 0-255 pixels and normalise them in the graph, as
        keras.applications (keyword-only in V1 constructors, which keras.applications gives
        no such argument).
    name: the model's name (default {default_name}).
    drop_connect_rate: final stochastic-depth rate (default 0.2).
    dropout_rate: dropout before the classifier (default {dropout}).
    data_format: ``"channels_last"`` or ``"channels_first"`` (default: Keras' setting);
        ``channels_first`` is a ``ValueError`` on TensorFlow without a GPU (its CPU
        convolutions are NHWC only).
    depthwise_impl: ``"auto"`` (default), ``"keras"`` or ``"shifted"``: how MBConv blocks
        compute the depthwise convolution (same weights; see ``MBConv``).
    bn_fold: ``"auto"``, ``"inference"`` or ``"never"``: with ``layout="blocks"``, fold each
        block's BatchNorms into their convolutions during inference (same weights and
        training; outputs equal up to float rounding).
    layout: ``"flat"`` (default: keras.applications' graph, layer for layer) or
        ``"blocks"`` (one composite layer per block; same weights and outputs).

Returns:
    A ``keras.Model``.

Example:
    >>> import numpy as np
    >>> import keras_efficientnet as ke
    >>> model = ke.{name}(weights=None, input_shape=(64, 64, 3), classes=5)
    >>> model.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0).shape
    (1, 5)
"""


def _default_weights(variant: str):
    from ..pretrained.registry import has_weights

    return "imagenet" if has_weights(variant, "imagenet") else None


def _make_constructor(variant: str):
    """A constructor with keras.applications' signature: its positional arguments in its
    order and with its defaults (``weights="imagenet"``, ``name="efficientnetb0"``), then this
    package's extras as keyword-only arguments."""
    spec = VARIANTS[variant]
    default_name = default_model_name(variant)
    default_weights = _default_weights(variant)  # keras.applications: "imagenet"

    def build(arguments):
        """The constructor's own arguments (from its ``locals()``), by name, to the factory."""
        names = inspect.signature(constructor).parameters
        return build_efficientnet(get_spec(variant), **{k: arguments[k] for k in names})

    if spec.family == "v2":
        def constructor(include_top=True, weights=default_weights, input_tensor=None,
                        input_shape=None, pooling=None, classes=1000,
                        classifier_activation="softmax", include_preprocessing=True,
                        name=default_name, *, drop_connect_rate=None, dropout_rate=None,
                        data_format=None, depthwise_impl="auto", bn_fold="auto", layout=DEFAULT_LAYOUT):
            return build(locals())
    else:
        def constructor(include_top=True, weights=default_weights, input_tensor=None,
                        input_shape=None, pooling=None, classes=1000,
                        classifier_activation="softmax", name=default_name, *,
                        include_preprocessing=True, drop_connect_rate=None, dropout_rate=None,
                        data_format=None, depthwise_impl="auto", bn_fold="auto", layout=DEFAULT_LAYOUT):
            return build(locals())

    constructor.__name__ = constructor.__qualname__ = variant
    constructor.__doc__ = _DOC.format(name=variant, res=spec.resolution, pre=spec.preprocessing,
                                      dropout=spec.dropout, extra="",
                                      default_weights=repr(default_weights),
                                      default_name=repr(default_name))
    constructor.__module__ = "keras_efficientnet"
    return constructor


#: Public constructor names, in table order.
CONSTRUCTORS = {name: _make_constructor(name) for name in VARIANTS if name.startswith("EfficientNet")}
globals().update(CONSTRUCTORS)


def EfficientNet(phi: float = 0, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15,
                 include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                 classes=1000, classifier_activation="softmax", include_preprocessing=True,
                 name=None, drop_connect_rate=None, dropout_rate=None, data_format=None,
                 depthwise_impl="auto", bn_fold="auto", layout=DEFAULT_LAYOUT):
    """Any compound-scaled EfficientNet from the B0 base.

    Depth is multiplied by ``alpha**phi``, width by ``beta**phi`` and the default resolution is
    ``224 * gamma**phi`` (rounded to a multiple of 8). ``phi=0`` is B0's architecture. Only
    ``weights=None`` or a file path apply: no weights are published for arbitrary ``phi``.

    Args:
        phi: compound coefficient (>= 0, may be fractional).
        alpha, beta, gamma: depth, width and resolution bases (paper: 1.2, 1.1, 1.15).
        Other arguments: as for :func:`EfficientNetB0`.

    Returns:
        A ``keras.Model``.

    Example:
        >>> import keras_efficientnet as ke
        >>> model = ke.EfficientNet(phi=0.5, weights=None, include_top=False, pooling="avg")
        >>> model.output_shape
        (None, 1344)
    """
    from ..validation import validate_model_args

    validate_model_args(check_variant=False, phi=phi, weights=weights, input_shape=input_shape,
                        classes=classes, include_top=include_top, pooling=pooling,
                        classifier_activation=classifier_activation, dropout_rate=dropout_rate,
                        drop_connect_rate=drop_connect_rate)
    spec = compound_spec(phi, alpha, beta, gamma)
    return build_efficientnet(
        spec, include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, include_preprocessing=include_preprocessing,
        name=name, drop_connect_rate=drop_connect_rate, dropout_rate=dropout_rate,
        data_format=data_format, depthwise_impl=depthwise_impl, bn_fold=bn_fold, layout=layout)


def list_models(pattern: str | None = None) -> list[str]:
    """Names of every variant (optionally only those containing ``pattern``).

    Example:
        >>> import keras_efficientnet as ke
        >>> ke.list_models("V2")[:3]
        ['EfficientNetV2B0', 'EfficientNetV2B1', 'EfficientNetV2B2']
    """
    return [n for n in VARIANTS if pattern is None or pattern.lower() in n.lower()]


def create_model(name: str, weights=None, **kwargs):
    """Build any variant by name: ``create_model("EfficientNetB3", weights=None)``.

    Args:
        name: a name from :func:`list_models`.
        weights: as for the constructors.
        **kwargs: any constructor argument.

    Example:
        >>> import keras_efficientnet as ke
        >>> ke.create_model("EfficientNetV2B0", include_top=False, pooling="avg").output_shape
        (None, 1280)
    """
    return build_efficientnet(name, weights=weights, **kwargs)
