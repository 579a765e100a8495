"""The one functional-API factory that assembles and names every EfficientNet."""

from __future__ import annotations

import os

import keras

from ..layers import CondConvMBConv, FusedMBConv, MBConv, Normalize, PointwiseConv2D
from ..layers.depthwise import resolve_depthwise_impl
from ..layers.folding import resolve_bn_fold
from ..layers.common import CONV_INITIALIZER, DENSE_INITIALIZER, batch_norm, conv_padding
from ..specs import PREPROCESSINGS, ModelSpec, get_spec, resolve

BLOCK_LAYERS = {"mb": MBConv, "fu": FusedMBConv}
MIN_SIZE = 32


def _input_shape(input_shape, spec, include_top, data_format):
    if input_shape is None:
        size = spec.resolution if include_top else None
        shape = (size, size, 3)
        return shape if data_format == "channels_last" else (3, size, size)
    shape = tuple(None if d is None else int(d) for d in input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must have 3 dimensions (height, width, channels), got {input_shape}.")
    return shape


def _check_data_format(data_format):
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got "
                         f"{data_format!r}.")
    if data_format == "channels_first" and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            # the model would build, then fail at its first call inside TensorFlow
            raise ValueError("data_format='channels_first' cannot run on TensorFlow without a GPU: "
                             "TensorFlow's CPU convolutions accept channels_last (NHWC) only. Use "
                             "data_format='channels_last' (same weights; transpose NCHW inputs "
                             "with keras.ops.transpose(x, (0, 2, 3, 1))), or another backend.")


def _check_input(shape, data_format, pretrained):
    spatial = shape[:2] if data_format == "channels_last" else shape[1:]
    channels = shape[2] if data_format == "channels_last" else shape[0]
    for dim in spatial:
        if dim is not None and dim < MIN_SIZE:
            raise ValueError(f"Input size {spatial} is too small: EfficientNets need at least "
                             f"{MIN_SIZE}x{MIN_SIZE} pixels (got input_shape={shape}).")
    if pretrained and channels is not None and channels != 3:
        raise ValueError(f"Pretrained weights expect 3 input channels, but input_shape={shape} has "
                         f"{channels}. Use weights=None for other channel counts.")
    if channels is not None and channels < 1:
        raise ValueError(f"input_shape={shape} has no channels.")


def _is_registered_tag(weights) -> bool:
    return isinstance(weights, str) and not os.path.exists(weights) and os.sep not in weights \
        and "." not in weights


def build_efficientnet(spec, include_top: bool = True, weights=None, input_tensor=None,
                       input_shape=None, pooling=None, classes: int = 1000,
                       classifier_activation="softmax", include_preprocessing: bool = True,
                       name: str | None = None, drop_connect_rate: float | None = None,
                       dropout_rate: float | None = None, data_format: str | None = None,
                       depthwise_impl: str = "auto", bn_fold: str = "auto"):
    """Build the Keras model described by a spec.

    Args:
        spec: a :class:`~keras_efficientnet.specs.ModelSpec` or a variant name.
        include_top: add global pooling, dropout and the ``predictions`` classifier.
        weights: None, a registered weight-set tag (``"imagenet"``), or a weights file path.
        input_tensor: optional Keras tensor to use as the model input.
        input_shape: ``(H, W, C)`` (or ``(C, H, W)`` for channels_first); defaults to the
            spec's resolution with a classifier and to ``(None, None, 3)`` without.
        pooling: ``None``, ``"avg"`` or ``"max"`` for ``include_top=False``.
        classes: classifier width.
        classifier_activation: activation of ``predictions`` (None for logits).
        include_preprocessing: normalise 0-255 inputs in the graph, as the spec's weights
            expect; False takes already-normalised inputs.
        name: model name (changes nothing else).
        drop_connect_rate: final stochastic-depth rate (default: the spec's).
        dropout_rate: dropout before the classifier (default: the spec's).
        data_format: ``"channels_last"`` or ``"channels_first"`` (default: Keras' setting);
            ``channels_first`` is a ``ValueError`` on TensorFlow without a GPU (its CPU
            convolutions are NHWC only).
        depthwise_impl: how MBConv blocks compute their depthwise convolution: ``"auto"``
            (default: the faster on this backend), ``"keras"`` or ``"shifted"``; see
            :class:`~keras_efficientnet.layers.MBConv`. Weights are the same either way.
        bn_fold: ``"auto"`` (default: fold where measured faster, TensorFlow and PyTorch),
            ``"inference"`` or ``"never"``: whether the blocks compute convolution +
            BatchNorm as one convolution with the BatchNorm folded in during inference
            (:mod:`keras_efficientnet.layers.folding`). Same weights and training; inference
            outputs equal up to float rounding. ``"never"`` gives keras.applications' exact
            arithmetic.

    Returns:
        A ``keras.Model``.

    Example:
        >>> from keras_efficientnet import build_efficientnet
        >>> from keras_efficientnet.specs import get_spec
        >>> model = build_efficientnet(get_spec("EfficientNetB0").replace(width=0.5),
        ...                            input_shape=(64, 64, 3), classes=10)
        >>> model.output_shape
        (None, 10)
    """
    from ..validation import validate_model_args

    validate_model_args(spec, weights=weights, input_shape=input_shape, classes=classes,
                        include_top=include_top, pooling=pooling,
                        classifier_activation=classifier_activation, dropout_rate=dropout_rate,
                        drop_connect_rate=drop_connect_rate)
    spec = get_spec(spec) if not isinstance(spec, ModelSpec) else spec
    data_format = data_format or keras.config.image_data_format()
    _check_data_format(data_format)
    resolve_depthwise_impl(depthwise_impl)  # a ValueError before anything is built
    resolve_bn_fold(bn_fold)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}.")
    if int(classes) < 1:
        raise ValueError(f"classes must be a positive integer, got {classes}.")
    tag_weights = _is_registered_tag(weights)
    if tag_weights:
        from ..pretrained.registry import get_weights
        weight_set = get_weights(spec.name, weights)
        if weight_set.preprocessing != spec.preprocessing:
            # a variant's weight sets may expect different input normalisation (timm's
            # tf_efficientnet_b0: "ns_jft_in1k" ImageNet mean/std, "ap_in1k" x/127.5-1)
            spec = spec.replace(preprocessing=weight_set.preprocessing)
        if include_top and classes != weight_set.classes:
            raise ValueError(f"weights={weights!r} has a {weight_set.classes}-class classifier, but "
                             f"classes={classes}. Use include_top=False to put your own head on it, "
                             f"or classes={weight_set.classes}.")
    elif weights is not None and not os.path.exists(os.fspath(weights)):
        raise ValueError(f"weights={weights!r} is neither None, a registered weight set "
                         "('imagenet'), nor an existing file.")

    shape = _input_shape(input_shape, spec, include_top, data_format)
    _check_input(shape, data_format, pretrained=weights is not None)
    if input_tensor is None:
        img_input = keras.Input(shape=shape)
        inputs = img_input
    else:
        if not keras.backend.is_keras_tensor(input_tensor):
            img_input = keras.Input(tensor=input_tensor, shape=shape)
            inputs = img_input
        else:
            img_input = input_tensor
            inputs = keras.utils.get_source_inputs(input_tensor)
        _check_input(tuple(img_input.shape[1:]), data_format, pretrained=weights is not None)

    resolved = resolve(spec, drop_path=drop_connect_rate)
    activation = spec.activation
    x = img_input
    if include_preprocessing:
        pre = PREPROCESSINGS[spec.preprocessing]
        x = Normalize(pre.mean, pre.std, data_format=data_format, name="preprocessing")(x)

    pad, padding = conv_padding(3, 2, spec.padding)
    if pad:
        x = keras.layers.ZeroPadding2D(pad, data_format=data_format, name="stem_conv_pad")(x)
    x = keras.layers.Conv2D(resolved.stem_channels, 3, strides=2, padding=padding, use_bias=False,
                            data_format=data_format, kernel_initializer=CONV_INITIALIZER,
                            name="stem_conv")(x)
    x = batch_norm("stem_bn", data_format, spec.bn_epsilon, spec.bn_momentum)(x)
    x = keras.layers.Activation(activation, name="stem_activation")(x)

    for block in resolved.blocks:
        layer_cls, extra = BLOCK_LAYERS[block.kind], {}
        if block.experts:
            if block.kind != "mb":
                raise ValueError(f"{block.name}: CondConv experts are only supported in 'mb' blocks.")
            layer_cls, extra = CondConvMBConv, {"num_experts": block.experts}
        elif layer_cls is MBConv:
            extra = {"depthwise_impl": depthwise_impl}
        x = layer_cls(bn_fold=bn_fold,
            **extra, filters=block.out_channels, kernel_size=block.kernel, strides=block.stride,
            expand_filters=block.hidden_channels, se_filters=block.se_channels,
            activation=block.activation, gate_activation=spec.se_gate, drop_rate=block.drop_path,
            residual=block.skip, padding=spec.padding, bn_epsilon=spec.bn_epsilon,
            bn_momentum=spec.bn_momentum, data_format=data_format, name=block.name)(x)

    x = PointwiseConv2D(resolved.head_channels, 1, padding="same", use_bias=False,
                            data_format=data_format, kernel_initializer=CONV_INITIALIZER,
                            name="top_conv")(x)
    x = batch_norm("top_bn", data_format, spec.bn_epsilon, spec.bn_momentum)(x)
    x = keras.layers.Activation(activation, name="top_activation")(x)

    if include_top:
        x = keras.layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
        rate = spec.dropout if dropout_rate is None else dropout_rate
        if rate > 0:
            x = keras.layers.Dropout(rate, name="top_dropout")(x)
        policy = keras.config.dtype_policy()
        head_dtype = "float32" if policy.compute_dtype != policy.variable_dtype else None
        x = keras.layers.Dense(classes, activation=classifier_activation,
                               kernel_initializer=DENSE_INITIALIZER, bias_initializer="zeros",
                               dtype=head_dtype, name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(data_format=data_format, name="max_pool")(x)

    model = keras.Model(inputs, x, name=name or spec.name.lower())
    if weights is not None:
        from ..pretrained.loading import load_weights
        load_weights(model, weights, spec, include_top=include_top)
    return model
