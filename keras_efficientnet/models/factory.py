"""The one functional-API factory that assembles and names every EfficientNet."""

from __future__ import annotations

import os

import numpy as np

import keras

from ..layers import CondConvMBConv, FusedMBConv, MBConv, PointwiseConv2D
from ..layers.batch_norm import FastBatchNormalization
from ..layers.common import CONV_INITIALIZER, DENSE_INITIALIZER
from ..layers.depthwise import resolve_depthwise_impl
from ..layers.folding import resolve_bn_fold
from ..layers.wiring import BlockConfig, apply_block, block_layers, bn_axis, conv_pads
from ..specs import PREPROCESSINGS, ModelSpec, get_spec, resolve
from ..specs.naming import default_model_name, dwconv_name, pad_layers

BLOCK_LAYERS = {"mb": MBConv, "fu": FusedMBConv}
MIN_SIZE = 32
#: Model layouts: keras.applications' flat graph, or one composite layer per block.
LAYOUTS = ("flat", "blocks")
#: The layout the constructors build by default. keras.applications' flat graph becomes the
#: default once features, pruning, fine-tuning and FLOP counting read it (issue 16, in steps).
DEFAULT_LAYOUT = "flat"


def _input_shape(input_shape, spec, include_top, data_format):
    if input_shape is None:
        size = spec.resolution if include_top else None
        shape = (size, size, 3)
        return shape if data_format == "channels_last" else (3, size, size)
    return tuple(None if d is None else int(d) for d in input_shape)  # validate_model_args checked it


def _check_data_format(data_format):
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got "
                         f"{data_format!r}.")


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


def _preprocessing_layers(x, spec, data_format, channels):
    """keras.applications' input preprocessing, for 0-255 pixels.

    V2-family graphs hold their normalisation as constants, as keras.applications' V2 does
    (``Rescaling(1/255)`` + ``Normalization(mean, variance)`` for ImageNet statistics on 3
    channels, otherwise a single ``Rescaling`` with offset). Every other family is
    keras.applications' V1 graph: ``Rescaling(1/255)`` then a ``Normalization`` layer whose
    mean and variance are weights (zeros and ones, i.e. ``x/255``, until weights set them; see
    :func:`set_preprocessing`). Layer names are Keras' automatic ones, as there.
    """
    pre = PREPROCESSINGS[spec.preprocessing]
    axis = bn_axis(data_format)
    if spec.family != "v2":
        x = keras.layers.Rescaling(1.0 / 255.0)(x)
        return keras.layers.Normalization(axis=axis)(x)
    if pre.name == "imagenet" and channels == 3:
        x = keras.layers.Rescaling(1.0 / 255.0)(x)
        return keras.layers.Normalization(mean=[m / 255.0 for m in pre.mean],
                                          variance=[(s / 255.0) ** 2 for s in pre.std],
                                          axis=axis)(x)
    if pre.name == "imagenet":  # keras.applications' fallback for other channel counts
        return keras.layers.Rescaling(scale=1.0 / 128.0, offset=-1)(x)
    if len(set(pre.mean)) != 1 or len(set(pre.std)) != 1:
        raise ValueError(f"Preprocessing {pre.name!r} has per-channel statistics; a V2 graph "
                         "holds only a single scale and offset.")
    return keras.layers.Rescaling(scale=1.0 / pre.std[0], offset=-pre.mean[0] / pre.std[0])(x)


def preprocessing_layer(model):
    """The model's input ``Normalization`` layer whose statistics are weights (V1 graphs), or
    None."""
    for layer in model.layers[:4]:
        if isinstance(layer, keras.layers.Normalization) and layer.input_mean is None:
            return layer
    return None


def set_preprocessing(model, preprocessing) -> None:
    """Set the statistics of a V1 graph's input ``Normalization`` to a weight source's
    convention (:data:`keras_efficientnet.specs.PREPROCESSINGS` name or object), so that
    0-255 pixels are normalised as those weights expect. A model without such a layer is
    left as it is.

    Example:
        >>> import numpy as np
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.models.factory import set_preprocessing
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3))
        >>> set_preprocessing(model, "x/128-1")
        >>> np.round(np.asarray(model.layers[2].mean).ravel() * 255, 1).tolist()
        [128.0, 128.0, 128.0]
    """
    layer = preprocessing_layer(model)
    if layer is None:
        return
    pre = PREPROCESSINGS[preprocessing] if isinstance(preprocessing, str) else preprocessing
    if tuple(layer.adapt_mean.shape) != (len(pre.mean),):
        return  # another channel count: keep x/255
    layer.adapt_mean.assign(np.asarray(pre.mean, "float32") / 255.0)
    layer.adapt_variance.assign((np.asarray(pre.std, "float32") / 255.0) ** 2)
    layer.finalize_state()


def _stem_and_blocks(x, spec, resolved, data_format, depthwise_impl, bn_fold, layout):
    axis = bn_axis(data_format)
    activation = spec.activation
    size = _spatial(x, data_format)
    pad, mode = conv_pads(3, 2, spec.padding, pad_layers(spec), size)
    if pad is not None:
        x = keras.layers.ZeroPadding2D(pad, data_format=data_format, name="stem_conv_pad")(x)
    x = keras.layers.Conv2D(resolved.stem_channels, 3, strides=2, padding=mode, use_bias=False,
                            data_format=data_format, kernel_initializer=CONV_INITIALIZER,
                            name="stem_conv")(x)
    x = FastBatchNormalization(axis=axis, momentum=spec.bn_momentum,
                                        epsilon=spec.bn_epsilon, name="stem_bn")(x)
    x = keras.layers.Activation(activation, name="stem_activation")(x)

    for block in resolved.blocks:
        cfg = BlockConfig(
            kind=block.kind, filters=block.out_channels, kernel_size=block.kernel,
            strides=block.stride, expand_filters=block.hidden_channels,
            se_filters=block.se_channels, activation=block.activation,
            gate_activation=spec.se_gate, drop_rate=block.drop_path, residual=block.skip,
            padding=spec.padding, pad_layers=pad_layers(spec), bn_epsilon=spec.bn_epsilon,
            bn_momentum=spec.bn_momentum, data_format=data_format,
            kernel_initializer=CONV_INITIALIZER, depthwise_impl=depthwise_impl,
            dwconv_name=dwconv_name(spec), num_experts=block.experts)
        if layout == "flat":
            parts = block_layers(cfg, block.in_channels, _spatial(x, data_format),
                                 prefix=block.name + "_")
            x = apply_block(parts, x)
            continue
        common = dict(filters=cfg.filters, kernel_size=cfg.kernel_size, strides=cfg.strides,
                      expand_filters=cfg.expand_filters, se_filters=cfg.se_filters,
                      activation=cfg.activation, gate_activation=cfg.gate_activation,
                      drop_rate=cfg.drop_rate, residual=cfg.residual, padding=cfg.padding,
                      pad_layers=cfg.pad_layers, bn_epsilon=cfg.bn_epsilon,
                      bn_momentum=cfg.bn_momentum, data_format=data_format,
                      dwconv_name=cfg.dwconv_name, bn_fold=bn_fold, name=block.name)
        if block.experts:
            x = CondConvMBConv(num_experts=block.experts, **common)(x)
        elif block.kind == "mb":
            x = MBConv(depthwise_impl=depthwise_impl, **common)(x)
        else:
            x = FusedMBConv(**common)(x)

    x = PointwiseConv2D(resolved.head_channels, 1, padding="same", use_bias=False,
                        data_format=data_format, kernel_initializer=CONV_INITIALIZER,
                        name="top_conv")(x)
    x = FastBatchNormalization(axis=axis, momentum=spec.bn_momentum,
                                        epsilon=spec.bn_epsilon, name="top_bn")(x)
    return keras.layers.Activation(activation, name="top_activation")(x)


def _spatial(x, data_format):
    shape = tuple(x.shape)
    return shape[1:3] if data_format == "channels_last" else shape[2:4]


def build_efficientnet(spec, include_top: bool = True, weights=None, input_tensor=None,
                       input_shape=None, pooling=None, classes: int = 1000,
                       classifier_activation="softmax", include_preprocessing: bool = True,
                       name: str | None = None, drop_connect_rate: float | None = None,
                       dropout_rate: float | None = None, data_format: str | None = None,
                       depthwise_impl: str = "auto", bn_fold: str = "auto",
                       layout: str | None = None):
    """Build the Keras model described by a spec.

    The default ``layout="flat"`` is keras.applications' functional graph: the same core
    layers (``stem_conv_pad``, ``block1a_dwconv``, ``block1a_se_squeeze``, ``block2b_drop``,
    ``block2b_add``, ... ``top_conv``, ``predictions``), in the same order, with the same
    names and configs, for every variant keras.applications has; every other family follows
    the same scheme. ``layout="blocks"`` puts each block in one composite layer
    (:class:`~keras_efficientnet.layers.MBConv`, ...) wired by the same code, holding the same
    weights under the same flat names (:func:`keras_efficientnet.pretrained.naming.flat_weights`).

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
        include_preprocessing: take 0-255 pixels and normalise them in the graph (as
            keras.applications); False takes already-normalised inputs.
        name: model name (changes nothing else; default keras.applications' name).
        drop_connect_rate: final stochastic-depth rate (default: the spec's).
        dropout_rate: dropout before the classifier (default: the spec's).
        data_format: ``"channels_last"`` or ``"channels_first"`` (default: Keras' setting).
            TensorFlow's CPU kernels run NHWC only: a channels_first model builds there (to
            be saved for a GPU, as with keras.applications) but does not run.
        depthwise_impl: ``"auto"`` (default: the faster on this backend), ``"keras"`` or
            ``"shifted"``: which layer computes the depthwise convolutions (both are
            ``keras.layers.DepthwiseConv2D``; same weights).
        bn_fold: ``"auto"``, ``"inference"`` or ``"never"``: whether composite blocks
            (``layout="blocks"``) compute convolution + BatchNorm as one folded convolution
            during inference. The flat graph runs its BatchNorm layers as they are.
        layout: ``"flat"`` (default) or ``"blocks"``.

    Returns:
        A ``keras.Model`` with a ``pretrained_cfg`` attribute (timm's convention; see
        :func:`~keras_efficientnet.pretrained.registry.pretrained_cfg`): the registered
        weight set's, or the spec's own input conventions (``source`` the weights file, or
        ``None`` for random weights).

    Example:
        >>> from keras_efficientnet import build_efficientnet
        >>> from keras_efficientnet.specs import get_spec
        >>> model = build_efficientnet(get_spec("EfficientNetB0").replace(width=0.5),
        ...                            input_shape=(64, 64, 3), classes=10)
        >>> model.output_shape, model.get_layer("block6a_expand_activation").output.shape
        ((None, 10), (None, 4, 4, 336))
    """
    from ..validation import validate_model_args

    validate_model_args(spec, weights=weights, input_shape=input_shape, classes=classes,
                        include_top=include_top, pooling=pooling,
                        classifier_activation=classifier_activation, dropout_rate=dropout_rate,
                        drop_connect_rate=drop_connect_rate)
    spec = get_spec(spec) if not isinstance(spec, ModelSpec) else spec
    data_format = data_format or keras.config.image_data_format()
    _check_data_format(data_format)
    layout = layout or DEFAULT_LAYOUT
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    resolve_depthwise_impl(depthwise_impl)  # a ValueError before anything is built
    resolve_bn_fold(bn_fold)
    if layout == "flat" and bn_fold == "inference":
        raise ValueError("bn_fold='inference' folds BatchNorm inside composite blocks; pass "
                         "layout='blocks' with it. The default flat graph runs its BatchNorm "
                         "layers as keras.applications does; keras_efficientnet.fuse_batchnorm("
                         "model) gives a folded copy of it for inference.")
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
    x = img_input
    if include_preprocessing:
        channels = tuple(img_input.shape)[1 + (2 if data_format == "channels_last" else 0)]
        x = _preprocessing_layers(x, spec, data_format, channels)
    x = _stem_and_blocks(x, spec, resolved, data_format, depthwise_impl, bn_fold, layout)

    if include_top:
        x = keras.layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
        rate = spec.dropout if dropout_rate is None else dropout_rate
        if rate > 0:
            x = keras.layers.Dropout(rate, name="top_dropout")(x)
        x = keras.layers.Dense(classes, activation=classifier_activation,
                               kernel_initializer=DENSE_INITIALIZER, bias_initializer="zeros",
                               name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(data_format=data_format, name="max_pool")(x)

    model = keras.Model(inputs, x, name=name or default_model_name(spec.name))
    if weights is not None:
        from ..pretrained.loading import load_weights
        set_preprocessing(model, spec.preprocessing)
        load_weights(model, weights, spec, include_top=include_top)
    _attach_pretrained_cfg(model, spec, weights, tag_weights)
    return model


def _attach_pretrained_cfg(model, spec, weights, tag_weights):
    """timm's ``model.pretrained_cfg`` on every built model: the registered set's, or the
    spec's own input conventions (with the file as source for a weights file)."""
    from ..pretrained.registry import pretrained_cfg
    from ..specs import VARIANTS

    cfg = pretrained_cfg(spec, weights if tag_weights else None)
    known = VARIANTS.get(spec.name)
    if known is None or known.replace(preprocessing=spec.preprocessing) != spec:
        # a changed or compound-scaled spec is not the variant its name says: record no
        # variant, so save_weights and presets never claim one (from_checkpoint asks for it)
        cfg["variant"] = None
    if weights is not None and not tag_weights:
        cfg["source"] = os.fspath(weights)
    object.__setattr__(model, "pretrained_cfg", cfg)  # a plain attribute, not model state
