"""U-Net, FPN and LinkNet on EfficientNet encoders, computing what segmentation-models-pytorch
0.6 computes (same layers, same order, same conventions) with qubvel segmentation_models'
argument names.

Decoder layer names follow qubvel's Keras package: ``decoder_stage{i}_upsampling``,
``decoder_stage{i}_concat``, ``decoder_stage{i}a_conv`` / ``_bn`` / ``_relu``, ...,
``final_conv`` and the output activation ``final_activation``.
"""

from __future__ import annotations

import keras

from .encoders import encoder_plan
from .layers import BilinearUpsample2D

#: PyTorch BatchNorm2d / GroupNorm defaults (smp's decoders use them).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def _check_input(input_shape, data_format):
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape!r}.")
    hw = shape[:2] if data_format == "channels_last" else shape[1:]
    bad = [s for s in hw if s is not None and int(s) % 32]
    if bad:
        fixed = tuple(None if s is None else max(32, int(round(int(s) / 32)) * 32) for s in hw)
        raise ValueError(f"input_shape {shape} has a spatial size not divisible by 32 ({bad}): the "
                         f"decoder upsamples the 1/32 feature back five times. Use e.g. {fixed}.")
    return shape


def build_encoder(backbone_name, input_shape, encoder_weights=None, encoder_features="default",
                  data_format=None):
    """The encoder model and its five tap tensors (reductions 2, 4, 8, 16, 32).

    Returns:
        ``(encoder, plan, taps)``: a Keras model without preprocessing (inputs normalised as the
        weights expect), the :class:`~keras_efficientnet.segmentation.encoders.EncoderPlan`,
        and the list of tap tensors.

    Example:
        >>> from keras_efficientnet.segmentation.models import build_encoder
        >>> enc, plan, taps = build_encoder("EfficientNetB0", (64, 64, 3))
        >>> [tuple(t.shape[1:3]) for t in taps]
        [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    """
    from ..models.constructors import create_model

    data_format = data_format or keras.config.image_data_format()
    plan = encoder_plan(backbone_name, encoder_features)
    encoder = create_model(plan.variant, weights=encoder_weights, include_top=False,
                           input_shape=input_shape, include_preprocessing=False,
                           data_format=data_format)
    if plan.static_pads:
        pads = plan.static_pads

        def clone(layer):
            if layer.name in pads:
                return keras.layers.ZeroPadding2D(pads[layer.name], data_format=data_format,
                                                  name=layer.name)
            return layer.__class__.from_config(layer.get_config())

        weights = {w.path: w.numpy() for w in encoder.weights}
        encoder = keras.models.clone_model(encoder, clone_function=clone)
        for w in encoder.weights:
            if w.path in weights:
                w.assign(weights[w.path])
    names = {layer.name for layer in encoder.layers}
    missing = [t for t in plan.taps if t not in names]
    if missing:
        raise ValueError(f"encoder_features names layers {encoder.name} does not have: {missing}.")
    taps = [encoder.get_layer(t).output for t in plan.taps]
    return encoder, plan, taps


def _conv_relu(x, filters, kernel, name, use_batchnorm, data_format):
    x = keras.layers.Conv2D(filters, kernel, padding="same", use_bias=not use_batchnorm,
                            data_format=data_format, name=f"{name}_conv")(x)
    if use_batchnorm:
        x = keras.layers.BatchNormalization(axis=_axis(data_format), epsilon=BN_EPSILON,
                                            momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _axis(data_format):
    return -1 if data_format == "channels_last" else 1


def _scse(x, name, data_format, reduction=16):
    channels = x.shape[_axis(data_format)]
    c = keras.layers.GlobalAveragePooling2D(data_format=data_format, keepdims=True,
                                            name=f"{name}_cse_pool")(x)
    c = keras.layers.Conv2D(channels // reduction, 1, activation="relu", data_format=data_format,
                            name=f"{name}_cse_reduce")(c)
    c = keras.layers.Conv2D(channels, 1, activation="sigmoid", data_format=data_format,
                            name=f"{name}_cse_expand")(c)
    s = keras.layers.Conv2D(1, 1, activation="sigmoid", data_format=data_format,
                            name=f"{name}_sse_conv")(x)
    a = keras.layers.Multiply(name=f"{name}_cse_mul")([x, c])
    b = keras.layers.Multiply(name=f"{name}_sse_mul")([x, s])
    return keras.layers.Add(name=f"{name}_add")([a, b])


def unet_decoder(features, decoder_filters=(256, 128, 64, 32, 16), decoder_block_type="upsampling",
                 decoder_use_batchnorm=True, decoder_attention_type=None, data_format=None):
    """smp's ``UnetDecoder`` as a functional block on the five encoder features.

    Each stage ``i`` upsamples x2 (nearest), concatenates the skip of the next finer level
    (none for the last stage), then runs two 3x3 conv-BN-ReLU; ``decoder_attention_type="scse"``
    adds smp's scSE after the concatenation and after the second convolution.
    ``decoder_block_type="transpose"`` is qubvel's alternative (a 4x4 stride-2 transposed
    conv-BN-ReLU instead of the upsampling; no smp counterpart).

    Args:
        features: the five feature tensors, finest first (reductions 2..32).
        decoder_filters: output channels of the five stages.
        decoder_block_type: ``"upsampling"`` (smp) or ``"transpose"``.
        decoder_use_batchnorm: BatchNorm after each convolution (convolutions get a bias without).
        decoder_attention_type: None or ``"scse"``.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        The decoder output tensor at the input resolution.

    Example:
        >>> import keras
        >>> from keras_efficientnet.segmentation.models import unet_decoder
        >>> feats = [keras.Input((64 // 2 ** k, 64 // 2 ** k, 8)) for k in range(1, 6)]
        >>> unet_decoder(feats, decoder_filters=(16, 8, 8, 8, 4)).shape
        (None, 64, 64, 4)
    """
    data_format = data_format or keras.config.image_data_format()
    if len(decoder_filters) != 5:
        raise ValueError(f"decoder_filters needs 5 values (one per stage), got {decoder_filters!r}.")
    if decoder_block_type not in ("upsampling", "transpose"):
        raise ValueError(f"decoder_block_type must be 'upsampling' or 'transpose', got "
                         f"{decoder_block_type!r}.")
    if decoder_attention_type not in (None, "scse"):
        raise ValueError(f"decoder_attention_type must be None or 'scse', got "
                         f"{decoder_attention_type!r}.")
    skips = list(features[:-1])[::-1] + [None]
    x = features[-1]
    for i, (filters, skip) in enumerate(zip(decoder_filters, skips)):
        name = f"decoder_stage{i}"
        if decoder_block_type == "upsampling":
            x = keras.layers.UpSampling2D(2, data_format=data_format, interpolation="nearest",
                                          name=f"{name}_upsampling")(x)
        else:
            x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same",
                                             use_bias=not decoder_use_batchnorm,
                                             data_format=data_format, name=f"{name}a_transpose")(x)
            if decoder_use_batchnorm:
                x = keras.layers.BatchNormalization(axis=_axis(data_format), epsilon=BN_EPSILON,
                                                    momentum=BN_MOMENTUM, name=f"{name}a_bn")(x)
            x = keras.layers.ReLU(name=f"{name}a_relu")(x)
        if skip is not None:
            x = keras.layers.Concatenate(axis=_axis(data_format), name=f"{name}_concat")([x, skip])
            if decoder_attention_type:
                x = _scse(x, f"{name}_attention1", data_format)
        if decoder_block_type == "upsampling":
            x = _conv_relu(x, filters, 3, f"{name}a", decoder_use_batchnorm, data_format)
        x = _conv_relu(x, filters, 3, f"{name}b", decoder_use_batchnorm, data_format)
        if decoder_attention_type:
            x = _scse(x, f"{name}_attention2", data_format)
    return x


def fpn_decoder(features, pyramid_channels=256, segmentation_channels=128, dropout=0.2,
                merge_policy="add", data_format=None):
    """smp's ``FPNDecoder``: 1x1 lateral convolutions with nearest x2 top-down additions on
    levels 2-5, per level 3x3 conv-GroupNorm(32)-ReLU blocks upsampled (bilinear,
    ``align_corners=True``) to 1/4, merged by sum (``"add"``) or concatenation (``"cat"``),
    then spatial dropout.

    Args:
        features: the five encoder features, finest first (the first is not used).
        pyramid_channels: channels of the pyramid.
        segmentation_channels: channels of each segmentation block (a multiple of 32).
        dropout: ``SpatialDropout2D`` rate (PyTorch's ``Dropout2d``).
        merge_policy: ``"add"`` or ``"cat"``.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        The merged tensor at 1/4 of the input resolution.

    Example:
        >>> import keras
        >>> from keras_efficientnet.segmentation.models import fpn_decoder
        >>> feats = [keras.Input((64 // 2 ** k, 64 // 2 ** k, 8)) for k in range(1, 6)]
        >>> fpn_decoder(feats, pyramid_channels=16, segmentation_channels=32).shape
        (None, 16, 16, 32)
    """
    data_format = data_format or keras.config.image_data_format()
    if merge_policy not in ("add", "cat"):
        raise ValueError(f"merge_policy must be 'add' or 'cat', got {merge_policy!r}.")
    if segmentation_channels % 32:
        raise ValueError(f"segmentation_channels must be a multiple of 32 (GroupNorm with 32 "
                         f"groups), got {segmentation_channels}.")
    c2, c3, c4, c5 = features[-4:]
    p = keras.layers.Conv2D(pyramid_channels, 1, data_format=data_format, name="fpn_p5_conv")(c5)
    pyramid = {5: p}
    for level, skip in ((4, c4), (3, c3), (2, c2)):
        up = keras.layers.UpSampling2D(2, data_format=data_format, interpolation="nearest",
                                       name=f"fpn_p{level}_upsampling")(p)
        lateral = keras.layers.Conv2D(pyramid_channels, 1, data_format=data_format,
                                      name=f"fpn_p{level}_skip_conv")(skip)
        p = keras.layers.Add(name=f"fpn_p{level}_add")([up, lateral])
        pyramid[level] = p
    outs = []
    for level in (5, 4, 3, 2):
        x = pyramid[level]
        ups = level - 2
        for j in range(max(ups, 1)):
            name = f"fpn_seg{level}_{j}"
            x = keras.layers.Conv2D(segmentation_channels, 3, padding="same", use_bias=False,
                                    data_format=data_format, name=f"{name}_conv")(x)
            x = keras.layers.GroupNormalization(32, axis=_axis(data_format), epsilon=1e-5,
                                                name=f"{name}_gn")(x)
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
            if ups:
                x = BilinearUpsample2D(2, data_format=data_format, name=f"{name}_upsampling")(x)
        outs.append(x)
    if merge_policy == "add":
        x = keras.layers.Add(name="fpn_merge")(outs)
    else:
        x = keras.layers.Concatenate(axis=_axis(data_format), name="fpn_merge")(outs)
    if dropout:
        x = keras.layers.SpatialDropout2D(dropout, data_format=data_format, name="fpn_dropout")(x)
    return x


def linknet_decoder(features, prefinal_channels=32, decoder_use_batchnorm=True, data_format=None):
    """smp's ``LinknetDecoder``: per stage a 1x1 conv-BN-ReLU to a quarter of the channels, a
    4x4 stride-2 transposed conv-BN-ReLU, a 1x1 conv-BN-ReLU to the skip's channels, plus the
    skip (none after the last stage, which ends at ``prefinal_channels``).

    Args:
        features: the five encoder features, finest first.
        prefinal_channels: channels of the last stage.
        decoder_use_batchnorm: BatchNorm after each convolution.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        The decoder output at the input resolution.

    Example:
        >>> import keras
        >>> from keras_efficientnet.segmentation.models import linknet_decoder
        >>> feats = [keras.Input((64 // 2 ** k, 64 // 2 ** k, 8)) for k in range(1, 6)]
        >>> linknet_decoder(feats).shape
        (None, 64, 64, 32)
    """
    data_format = data_format or keras.config.image_data_format()
    axis = _axis(data_format)
    skips = list(features[:-1])[::-1] + [None]
    x = features[-1]
    for i, skip in enumerate(skips):
        name = f"decoder_stage{i}"
        cin = x.shape[axis]
        cout = prefinal_channels if skip is None else skip.shape[axis]
        x = _conv_relu(x, cin // 4, 1, f"{name}a", decoder_use_batchnorm, data_format)
        x = keras.layers.Conv2DTranspose(cin // 4, 4, strides=2, padding="same",
                                         data_format=data_format, name=f"{name}b_transpose")(x)
        if decoder_use_batchnorm:
            x = keras.layers.BatchNormalization(axis=axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                                name=f"{name}b_bn")(x)
        x = keras.layers.ReLU(name=f"{name}b_relu")(x)
        x = _conv_relu(x, cout, 1, f"{name}c", decoder_use_batchnorm, data_format)
        if skip is not None:
            x = keras.layers.Add(name=f"{name}_add")([x, skip])
    return x


def _head(x, classes, kernel, activation, data_format, upsampling=1):
    x = keras.layers.Conv2D(classes, kernel, padding="same", data_format=data_format,
                            name="final_conv")(x)
    if upsampling > 1:
        x = BilinearUpsample2D(upsampling, data_format=data_format, name="final_upsampling")(x)
    if activation == "softmax":
        return keras.layers.Softmax(axis=_axis(data_format), name="final_activation")(x)
    return keras.layers.Activation(activation or "linear", name="final_activation")(x)


def _common(backbone_name, input_shape, encoder_weights, encoder_freeze, encoder_features,
            data_format, classes):
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}.")
    if not isinstance(classes, int) or classes < 1:
        raise ValueError(f"classes must be a positive integer, got {classes!r}.")
    input_shape = _check_input(input_shape, data_format)
    encoder, plan, taps = build_encoder(backbone_name, input_shape, encoder_weights,
                                        encoder_features, data_format)
    if encoder_freeze:
        for layer in encoder.layers:
            layer.trainable = False
    return encoder, plan, taps, data_format


def _model(encoder, x, kind, backbone_name):
    model = keras.Model(encoder.input, x, name=f"{kind}_{backbone_name}".replace("-", "_"))
    return model


def Unet(backbone_name="EfficientNetB0", input_shape=(None, None, 3), classes=1,
         activation="sigmoid", encoder_weights=None, encoder_freeze=False,
         encoder_features="default", decoder_block_type="upsampling",
         decoder_filters=(256, 128, 64, 32, 16), decoder_use_batchnorm=True,
         decoder_attention_type=None, data_format=None):
    """U-Net on an EfficientNet encoder (smp's ``Unet``; qubvel's argument names).

    Args:
        backbone_name: our variant name or an smp encoder name (``"efficientnet-b0"``,
            ``"timm-efficientnet-b0"``, ``"tu-tf_efficientnet_b0"``), which also fixes the taps
            and padding conventions of that smp encoder.
        input_shape: ``(H, W, C)`` (``(C, H, W)`` for channels_first); sizes divisible by 32 or None.
        classes: output channels.
        activation: ``"sigmoid"``, ``"softmax"`` (over channels), None/``"linear"`` for logits.
        encoder_weights: None, a registered weight tag of the variant, or a file.
        encoder_freeze: make the encoder layers non-trainable.
        encoder_features: ``"default"`` or five layer names to tap (finest first).
        decoder_block_type: ``"upsampling"`` (smp) or ``"transpose"`` (qubvel).
        decoder_filters: channels of the five decoder stages.
        decoder_use_batchnorm: BatchNorm in the decoder.
        decoder_attention_type: None or ``"scse"``.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        A ``keras.Model`` mapping normalised images to ``classes`` maps at the input size.

    Example:
        >>> from keras_efficientnet.segmentation import Unet
        >>> model = Unet("EfficientNetB0", input_shape=(64, 64, 3), classes=3,
        ...              decoder_filters=(32, 16, 16, 8, 8))
        >>> model.output_shape
        (None, 64, 64, 3)
    """
    encoder, plan, taps, df = _common(backbone_name, input_shape, encoder_weights, encoder_freeze,
                                      encoder_features, data_format, classes)
    x = unet_decoder(taps, decoder_filters, decoder_block_type, decoder_use_batchnorm,
                     decoder_attention_type, df)
    x = _head(x, classes, 3, activation, df)
    return _model(encoder, x, "unet", backbone_name)


def FPN(backbone_name="EfficientNetB0", input_shape=(None, None, 3), classes=1,
        activation="sigmoid", encoder_weights=None, encoder_freeze=False,
        encoder_features="default", pyramid_channels=256, segmentation_channels=128,
        pyramid_dropout=0.2, merge_policy="add", upsampling=4, data_format=None):
    """FPN on an EfficientNet encoder (smp's ``FPN``: a 1x1 head on the 1/4 pyramid, then
    bilinear ``align_corners=True`` upsampling by ``upsampling``).

    Args:
        backbone_name: see :func:`Unet`.
        input_shape: see :func:`Unet`.
        classes: output channels.
        activation: see :func:`Unet`.
        encoder_weights: see :func:`Unet`.
        encoder_freeze: see :func:`Unet`.
        encoder_features: see :func:`Unet`.
        pyramid_channels: smp's ``decoder_pyramid_channels``.
        segmentation_channels: smp's ``decoder_segmentation_channels``.
        pyramid_dropout: smp's ``decoder_dropout``.
        merge_policy: smp's ``decoder_merge_policy`` (``"add"`` or ``"cat"``).
        upsampling: final upsampling factor (4 gives the input size).
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        A ``keras.Model``.

    Example:
        >>> from keras_efficientnet.segmentation import FPN
        >>> FPN("EfficientNetB0", input_shape=(64, 64, 3), classes=2, pyramid_channels=32,
        ...     segmentation_channels=32).output_shape
        (None, 64, 64, 2)
    """
    encoder, plan, taps, df = _common(backbone_name, input_shape, encoder_weights, encoder_freeze,
                                      encoder_features, data_format, classes)
    x = fpn_decoder(taps, pyramid_channels, segmentation_channels, pyramid_dropout, merge_policy, df)
    x = _head(x, classes, 1, activation, df, upsampling=upsampling)
    return _model(encoder, x, "fpn", backbone_name)


def Linknet(backbone_name="EfficientNetB0", input_shape=(None, None, 3), classes=1,
            activation="sigmoid", encoder_weights=None, encoder_freeze=False,
            encoder_features="default", decoder_use_batchnorm=True, data_format=None):
    """LinkNet on an EfficientNet encoder (smp's ``Linknet``, 32 pre-final channels, 1x1 head).

    Args:
        backbone_name: see :func:`Unet`.
        input_shape: see :func:`Unet`.
        classes: output channels.
        activation: see :func:`Unet`.
        encoder_weights: see :func:`Unet`.
        encoder_freeze: see :func:`Unet`.
        encoder_features: see :func:`Unet`.
        decoder_use_batchnorm: BatchNorm in the decoder.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        A ``keras.Model``.

    Example:
        >>> from keras_efficientnet.segmentation import Linknet
        >>> Linknet("EfficientNetB0", input_shape=(64, 64, 3), classes=2).output_shape
        (None, 64, 64, 2)
    """
    encoder, plan, taps, df = _common(backbone_name, input_shape, encoder_weights, encoder_freeze,
                                      encoder_features, data_format, classes)
    x = linknet_decoder(taps, 32, decoder_use_batchnorm, df)
    x = _head(x, classes, 1, activation, df)
    return _model(encoder, x, "linknet", backbone_name)
