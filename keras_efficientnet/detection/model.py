"""EfficientDet as one flat Keras functional graph: encoder, BiFPN, class and box nets.

The encoder is this package's flat EfficientNet (the variant the config names, timm's
``tf_efficientnet_b*`` conventions), tapped at ``P3``..``P5`` (:func:`feature_info`);
``P6``/``P7`` (``P8`` for D7x) come from the last encoder level by a 1x1 convolution +
BatchNorm (when the width differs) and a 3x3 stride-2 max pool, as effdet's
``ResampleFeatureMap``. Each BiFPN node resamples its inputs to its level (1x1 conv + BN where
the width differs, max pool down, nearest up), fuses them (:class:`WeightedFusion`), then
applies the activation, a separable 3x3 convolution and BatchNorm. The heads' separable
convolutions are shared by all levels; their BatchNorms are per level, as effdet's.

Layer names (the converter from effdet's state dicts relies on them):
``fpn_p6_resample_{conv,bn,pool}``, ``fpn_cell{r}_node{i}_in{j}_{conv,bn,pool,up}``,
``fpn_cell{r}_node{i}_{fusion,act,conv,bn}``, ``{class,box}_net_conv{k}``,
``{class,box}_net_bn{k}_p{level}``, ``{class,box}_net_predict``. Outputs: a dict with
``"classes"`` ``(batch, anchors, num_classes)`` logits and ``"boxes"`` ``(batch, anchors, 4)``
box regressions ``(ty, tx, th, tw)``, in effdet's anchor order (level, row, column, anchor).
"""

from __future__ import annotations

import math

import keras

from ..layers.common import standardize_data_format
from .config import DetectionConfig, feat_sizes, fpn_nodes, get_config
from .layers import WeightedFusion


def _bn(config, axis, name):
    return keras.layers.BatchNormalization(axis=axis, epsilon=config.bn_epsilon,
                                           momentum=config.bn_momentum, name=name)


def _act(config, name):
    return keras.layers.Activation({"swish": "silu", "relu6": "relu6", "relu": "relu"}[config.act_type],
                                   name=name)


def _resample(x, in_channels, in_size, out_size, config, axis, data_format, prefix):
    """effdet's ResampleFeatureMap: 1x1 conv (+BN) when widths differ, then pool or upsample."""
    if in_channels != config.fpn_channels:
        x = keras.layers.Conv2D(config.fpn_channels, 1, padding="same", data_format=data_format,
                                use_bias=(not config.apply_resample_bn) or config.redundant_bias,
                                name=f"{prefix}_conv")(x)
        if config.apply_resample_bn:
            x = _bn(config, axis, f"{prefix}_bn")(x)
    if in_size[0] > out_size[0] and in_size[1] > out_size[1]:
        sh = (in_size[0] - 1) // out_size[0] + 1
        sw = (in_size[1] - 1) // out_size[1] + 1
        x = keras.layers.MaxPooling2D((sh + 1, sw + 1), (sh, sw), padding="same",
                                      data_format=data_format, name=f"{prefix}_pool")(x)
    elif in_size[0] < out_size[0] or in_size[1] < out_size[1]:
        fh, fw = out_size[0] // in_size[0], out_size[1] // in_size[1]
        x = keras.layers.UpSampling2D((fh, fw), data_format=data_format, interpolation="nearest",
                                      name=f"{prefix}_up")(x)
    return x


#: the class net's initial foreground probability (focal-loss paper; effdet's class-net bias).
PRIOR_PROBABILITY = 0.01


def _separable(filters, config, use_bias, data_format, name, head_init=None):
    """A 3x3 separable convolution; ``head_init`` ("conv", "class" or "box") initialises it as
    effdet initialises its class and box nets: weights N(0, 0.01), biases 0, and the class
    prediction's bias ``-log((1 - p) / p)`` so every anchor starts at foreground probability
    :data:`PRIOR_PROBABILITY` (without it the focal loss of the many negatives swamps the
    first steps)."""
    kwargs = {}
    if head_init is not None:
        bias = -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY) if head_init == "class" else 0.0
        kwargs = dict(depthwise_initializer=keras.initializers.RandomNormal(stddev=0.01),
                      pointwise_initializer=keras.initializers.RandomNormal(stddev=0.01),
                      bias_initializer=keras.initializers.Constant(bias))
    return keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=use_bias,
                                        data_format=data_format, name=name, **kwargs)


def bifpn(features, config: DetectionConfig, image_size, data_format=None):
    """Add the ``P6``.. levels and the BiFPN cells to encoder features.

    Args:
        features: Keras tensors ``P3``, ``P4``, ``P5`` (``min_level`` up, finest first).
        config: the :class:`~keras_efficientnet.detection.config.DetectionConfig`.
        image_size: the input ``(height, width)``.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        The ``num_levels`` BiFPN outputs, finest first.

    Example:
        >>> import keras
        >>> from keras_efficientnet.detection.config import get_config
        >>> from keras_efficientnet.detection.model import bifpn
        >>> c = get_config("d0").replace(fpn_cell_repeats=1)
        >>> ins = [keras.Input((s, s, ch)) for s, ch in ((8, 40), (4, 112), (2, 320))]
        >>> [tuple(t.shape[1:]) for t in bifpn(ins, c, (64, 64))]
        [(8, 8, 64), (4, 4, 64), (2, 2, 64), (1, 1, 64), (1, 1, 64)]
    """
    data_format = standardize_data_format(data_format)
    axis = -1 if data_format == "channels_last" else 1
    sizes = feat_sizes(image_size, config.max_level)
    feats = list(features)
    chans = [int(f.shape[axis]) for f in feats]
    levels = [config.min_level + i for i in range(len(feats))]
    if len(feats) > config.num_levels:
        raise ValueError(f"{len(feats)} encoder features for {config.num_levels} levels.")
    while len(feats) < config.num_levels:
        level = config.min_level + len(feats)
        feats.append(_resample(feats[-1], chans[-1], sizes[level - 1], sizes[level], config, axis,
                               data_format, f"fpn_p{level}_resample"))
        chans.append(config.fpn_channels)
        levels.append(level)
    nodes = fpn_nodes(config.min_level, config.max_level)
    for r in range(config.fpn_cell_repeats):
        all_feats, all_chans = list(feats), list(chans)
        all_levels = list(levels)
        for i, node in enumerate(nodes):
            prefix = f"fpn_cell{r}_node{i}"
            level = node["level"]
            inputs = [_resample(all_feats[j], all_chans[j], sizes[all_levels[j]], sizes[level],
                                config, axis, data_format, f"{prefix}_in{j}")
                      for j in node["inputs"]]
            x = WeightedFusion(config.weight_method, name=f"{prefix}_fusion")(inputs)
            x = _act(config, f"{prefix}_act")(x)
            x = _separable(config.fpn_channels, config, config.redundant_bias, data_format,
                           f"{prefix}_conv")(x)
            x = _bn(config, axis, f"{prefix}_bn")(x)
            all_feats.append(x)
            all_chans.append(config.fpn_channels)
            all_levels.append(level)
        feats = all_feats[-config.num_levels:]
        chans = all_chans[-config.num_levels:]
        levels = all_levels[-config.num_levels:]
    return feats


def head(features, config: DetectionConfig, num_outputs: int, kind: str, data_format=None):
    """A class or box net: ``box_class_repeats`` separable convolutions shared by the levels,
    each followed by a per-level BatchNorm and the activation, then the shared prediction
    convolution; outputs reshaped to ``(batch, H*W*anchors, num_outputs)`` and concatenated.

    Example:
        >>> import keras
        >>> from keras_efficientnet.detection.config import get_config
        >>> from keras_efficientnet.detection.model import head
        >>> c = get_config("d0").replace(min_level=3, max_level=4)
        >>> feats = [keras.Input((4, 4, 64)), keras.Input((2, 2, 64))]
        >>> tuple(head(feats, c, 4, "box").shape)
        (None, 180, 4)
    """
    data_format = standardize_data_format(data_format)
    axis = -1 if data_format == "channels_last" else 1
    convs = [_separable(config.fpn_channels, config, config.redundant_bias, data_format,
                        f"{kind}_net_conv{k}", head_init="conv")
             for k in range(config.box_class_repeats)]
    predict = _separable(num_outputs * config.num_anchors, config, True, data_format,
                         f"{kind}_net_predict", head_init=kind)
    outputs = []
    for i, x in enumerate(features):
        level = config.min_level + i
        for k, conv in enumerate(convs):
            x = conv(x)
            x = _bn(config, axis, f"{kind}_net_bn{k}_p{level}")(x)
            x = _act(config, f"{kind}_net_act{k}_p{level}")(x)
        x = predict(x)
        if data_format == "channels_first":
            x = keras.layers.Permute((2, 3, 1), name=f"{kind}_net_nhwc_p{level}")(x)
        x = keras.layers.Reshape((-1, num_outputs), name=f"{kind}_net_flat_p{level}")(x)
        outputs.append(x)
    if len(outputs) == 1:
        return outputs[0]
    return keras.layers.Concatenate(axis=1, name=f"{kind}_outputs")(outputs)


def _image_size(config, input_shape, data_format):
    if input_shape is None:
        h, w = config.image_size
        return (h, w, 3) if data_format == "channels_last" else (3, h, w)
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must have 3 entries (H, W, C); got {input_shape!r}.")
    hw = shape[:2] if data_format == "channels_last" else shape[1:]
    step = 2 ** config.max_level
    if any(s is None for s in hw) or any(int(s) % step for s in hw):
        raise ValueError(f"{config.name} needs an input height and width divisible by {step} "
                         f"(2**max_level, for the anchors and the P{config.max_level} level); got "
                         f"input_shape={input_shape!r}. Use e.g. {config.image_size}.")
    return shape


def build_efficientdet(config, num_classes: int | None = None, input_shape=None,
                       include_preprocessing: bool = True, backbone_weights=None,
                       data_format: str | None = None, name: str | None = None):
    """Build an EfficientDet (without post-processing; see :class:`DetectionPostProcess`).

    Args:
        config: a name (``"tf_efficientdet_d0"``, ``"d0"``) or a ``DetectionConfig``.
        num_classes: classes of the class net (default: the config's 90 COCO ids).
        input_shape: ``(H, W, 3)``, both divisible by ``2**max_level`` (default: the config's
            image size).
        include_preprocessing: take 0-255 pixels (normalised in the graph with the
            encoder's mean and std); False takes normalised inputs, as effdet's models do.
        backbone_weights: weights of the encoder (None: random; a file or a tag as for
            :func:`keras_efficientnet.create_model`).
        data_format: ``"channels_last"`` or ``"channels_first"``.
        name: model name (default: the config's name).

    Returns:
        A ``keras.Model`` with outputs ``{"classes": logits (B, anchors, classes),
        "boxes": (B, anchors, 4)}``.

    Example:
        >>> from keras_efficientnet.detection import build_efficientdet
        >>> model = build_efficientdet("d0", num_classes=3, input_shape=(128, 128, 3))
        >>> sorted((k, tuple(v.shape)) for k, v in model.output.items())
        [('boxes', (None, 3069, 4)), ('classes', (None, 3069, 3))]
    """
    from ..models.constructors import create_model
    from ..models.features import feature_info
    from ..specs import get_spec

    config = get_config(config)
    if num_classes is not None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}.")
        config = config.replace(num_classes=num_classes)
    data_format = standardize_data_format(data_format)
    shape = _image_size(config, input_shape, data_format)
    image_size = shape[:2] if data_format == "channels_last" else shape[1:]
    spec = get_spec(config.backbone)
    encoder = create_model(config.backbone, weights=backbone_weights, include_top=False,
                           input_shape=shape, include_preprocessing=include_preprocessing,
                           data_format=data_format)
    infos = {f.level: f for f in feature_info(spec)}
    taps = [encoder.get_layer(infos[level].layer).output
            for level in range(config.min_level, min(config.max_level, 5) + 1)]
    feats = bifpn(taps, config, image_size, data_format)
    classes = head(feats, config, config.num_classes, "class", data_format)
    boxes = head(feats, config, 4, "box", data_format)
    model = keras.Model(encoder.input, {"classes": classes, "boxes": boxes},
                        name=name or config.name)
    return model


def load_effdet_weights(model, source, config=None) -> None:
    """Load an effdet ``EfficientDet`` state dict (a file or a mapping) into ``model``,
    strictly (every weight assigned, nothing left over, shapes and finiteness checked).

    Args:
        model: a model from :func:`build_efficientdet`.
        source: a ``.pth``/``.safetensors`` path or ``net.state_dict()``.
        config: the model's config (default: the one named like the model).

    Example:
        >>> import torch, effdet
        >>> from keras_efficientnet.detection import build_efficientdet, load_effdet_weights
        >>> cfg = effdet.get_efficientdet_config("tf_efficientdet_d0")
        >>> net = effdet.EfficientDet(cfg, pretrained_backbone=False)
        >>> model = build_efficientdet("d0", input_shape=(128, 128, 3), include_preprocessing=False)
        >>> load_effdet_weights(model, net.state_dict())
    """
    import os

    from ..pretrained.convert.effdet import convert_state_dict
    from ..pretrained.convert.torch_state import read_state_dict
    from ..pretrained.loading import assign

    config = get_config(config if config is not None else model.name)
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<state dict>"
    state = read_state_dict(source)
    assign(model, convert_state_dict(dict(state), config, source=name), include_top=True)
