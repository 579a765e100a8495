"""The wiring of EfficientNet's blocks, written once.

keras.applications builds its EfficientNets as one flat functional graph of core Keras layers
(``block2a_expand_conv``, ``block2a_expand_bn``, ``block2a_expand_activation``,
``block2a_dwconv_pad``, ``block2a_dwconv``, ... ``block2b_drop``, ``block2b_add``). This module
is the one place that says which layers a block has, in which order, and how they are
connected:

* :func:`block_layers` creates a block's layers (core Keras classes, or the fast subclasses of
  :mod:`keras_efficientnet.layers.depthwise` / :mod:`~keras_efficientnet.layers.pointwise`) under
  keras.applications' names, with a name prefix;
* :func:`apply_block` connects them, on eager tensors or on symbolic ones.

The factory calls both with the prefix ``"block2a_"`` and gets keras.applications' flat graph;
the public block layers (:class:`~keras_efficientnet.layers.MBConv`,
:class:`~keras_efficientnet.layers.FusedMBConv`,
:class:`~keras_efficientnet.layers.CondConvMBConv`) call them with no prefix inside their
``build`` and ``call``. Both hold the same weights under the same flat names
(:func:`keras_efficientnet.pretrained.naming.flat_weights`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import keras

from .batch_norm import FastBatchNormalization
from .common import CONV_INITIALIZER, conv_padding
from .depthwise import make_depthwise
from .pointwise import PointwiseConv2D

#: Block kinds: MBConv (``"mb"``) and Fused-MBConv (``"fu"``).
KINDS = ("mb", "fu")


def bn_axis(data_format: str) -> int:
    """keras.applications' BatchNormalization axis: 3 (channels_last) or 1 (channels_first)."""
    return 3 if data_format == "channels_last" else 1


def keras_pad(size, kernel_size: int):
    """keras.applications' ``correct_pad``: the zero padding before a stride-2 "valid"
    convolution, from the static spatial size (``(h, w)``, entries may be None).

    Example:
        >>> from keras_efficientnet.layers.wiring import keras_pad
        >>> keras_pad((224, 224), 3), keras_pad((None, None), 5), keras_pad((33, 32), 3)
        (((0, 1), (0, 1)), ((1, 2), (1, 2)), ((1, 1), (0, 1)))
    """
    half = kernel_size // 2
    size = tuple(size) if size is not None else (None, None)
    adjust = [1 if s is None else 1 - int(s) % 2 for s in size]
    return ((half - adjust[0], half), (half - adjust[1], half))


def conv_pads(kernel_size: int, strides: int, padding: str, pad_layers: bool, size):
    """How a kxk convolution is padded: ``(zero_padding or None, conv_padding)``.

    ``padding="same"`` is TensorFlow's convention: with ``pad_layers`` (keras.applications'
    EfficientNet V1 graph) a stride-2 convolution gets an explicit ``ZeroPadding2D`` computed
    by :func:`keras_pad` and runs "valid", otherwise the convolution pads "same" itself (V2).
    ``padding="symmetric"`` is PyTorch's: ``k // 2`` on every side where that differs from
    "same" (stride 2, even kernels).
    """
    if padding == "symmetric":
        pad, mode = conv_padding(kernel_size, strides, "symmetric")
        return (((pad, pad), (pad, pad)) if pad else None), mode
    if padding != "same":
        raise ValueError(f"padding must be 'same' or 'symmetric', got {padding!r}.")
    if pad_layers and strides == 2:
        return keras_pad(size, kernel_size), "valid"
    return None, "same"


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    """Everything one block needs (no Keras objects but the activations and initializer).

    Attributes:
        kind: ``"mb"`` (MBConv) or ``"fu"`` (Fused-MBConv).
        filters: output channels.
        kernel_size: depthwise (mb) or fused (fu) kernel size.
        strides: 1 or 2.
        expand_filters: hidden width; None for no expansion convolution.
        se_filters: squeeze-excitation width; 0 for none.
        activation, gate_activation: the block's activation and the SE gate.
        drop_rate: stochastic-depth rate (a ``Dropout`` with ``noise_shape=(None, 1, 1, 1)``,
            as keras.applications writes it; none when 0).
        residual: add the input where stride is 1 and the widths match.
        padding: ``"same"`` or ``"symmetric"`` (see :func:`conv_pads`).
        pad_layers: explicit ``ZeroPadding2D`` before stride-2 convolutions (V1 graphs).
        bn_epsilon, bn_momentum: BatchNormalization settings.
        data_format: ``"channels_last"`` or ``"channels_first"``.
        kernel_initializer: convolution initializer.
        depthwise_impl: ``"auto"``, ``"keras"`` or ``"shifted"``.
        dwconv_name: name of the depthwise layer (keras.applications: ``dwconv`` in V1,
            ``dwconv2`` in V2).
        num_experts: CondConv experts (0: plain convolutions).
        fused_bn: BatchNorms already folded into the convolutions
            (:func:`keras_efficientnet.fuse_batchnorm`): each is a
            :class:`~keras_efficientnet.layers.channel_bias.ChannelBias` of the same name.
    """

    kind: str
    filters: int
    kernel_size: int = 3
    strides: int = 1
    expand_filters: int | None = None
    se_filters: int = 0
    activation: Any = "swish"
    gate_activation: Any = "sigmoid"
    drop_rate: float = 0.0
    residual: bool = True
    padding: str = "same"
    pad_layers: bool = True
    bn_epsilon: float = 1e-3
    bn_momentum: float = 0.99
    data_format: str = "channels_last"
    kernel_initializer: Any = dataclasses.field(default_factory=lambda: CONV_INITIALIZER)
    depthwise_impl: str = "auto"
    dwconv_name: str = "dwconv"
    num_experts: int = 0
    fused_bn: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}.")
        if self.strides not in (1, 2):
            raise ValueError(f"strides must be 1 or 2, got {self.strides}.")
        if self.num_experts and self.kind != "mb":
            raise ValueError("CondConv experts are only supported in 'mb' blocks.")


def has_skip(cfg: BlockConfig, in_channels: int) -> bool:
    """Whether the block adds its input to its output."""
    return bool(cfg.residual and cfg.strides == 1 and int(in_channels) == cfg.filters)


def block_layers(cfg: BlockConfig, in_channels: int, size=None, prefix: str = "") -> dict:
    """The layers of one block, in keras.applications' order, named ``prefix + part``.

    Args:
        cfg: the block's :class:`BlockConfig`.
        in_channels: input channels.
        size: static spatial input size ``(h, w)`` (entries may be None); decides
            keras.applications' stride-2 zero padding.
        prefix: name prefix, ``"block2a_"`` in a model, ``""`` inside a block layer.

    Returns:
        ``{part: layer}`` in graph order (``expand_conv``, ``expand_bn``, ...), unbuilt.

    Example:
        >>> from keras_efficientnet.layers.wiring import BlockConfig, block_layers
        >>> cfg = BlockConfig("mb", 24, kernel_size=3, strides=2, expand_filters=96, se_filters=4)
        >>> list(block_layers(cfg, 16, (32, 32), "block2a_"))[:6]
        ['expand_conv', 'expand_bn', 'expand_activation', 'dwconv_pad', 'dwconv', 'bn']
    """
    df, axis = cfg.data_format, bn_axis(cfg.data_format)
    init = cfg.kernel_initializer
    out: dict = {}

    def add(part, layer):
        out[part] = layer

    def bn(part):
        if cfg.fused_bn:
            from .channel_bias import ChannelBias

            return add(part, ChannelBias(data_format=df, name=prefix + part))
        add(part, FastBatchNormalization(axis=axis, momentum=cfg.bn_momentum,
                                                  epsilon=cfg.bn_epsilon, name=prefix + part))

    def act(part):
        add(part, keras.layers.Activation(cfg.activation, name=prefix + part))

    def conv(part, filters, kernel, strides, padding, depthwise=False):
        if cfg.num_experts:
            from .cond_conv2d import CondConv2D

            add(part, CondConv2D(filters, kernel, strides=strides, num_experts=cfg.num_experts,
                                 depthwise=depthwise, padding=padding, data_format=df,
                                 kernel_initializer=init, name=prefix + part))
        elif depthwise:
            add(part, make_depthwise(cfg.depthwise_impl, kernel, strides=strides, padding=padding,
                                     data_format=df, depthwise_initializer=init,
                                     name=prefix + part))
        else:
            add(part, PointwiseConv2D(filters, kernel, strides=strides, padding=padding,
                                      use_bias=False, data_format=df, kernel_initializer=init,
                                      name=prefix + part))

    def padded_conv(part, filters, depthwise=False):
        pad, mode = conv_pads(cfg.kernel_size, cfg.strides, cfg.padding, cfg.pad_layers, size)
        if pad is not None:
            add(part + "_pad", keras.layers.ZeroPadding2D(pad, data_format=df,
                                                          name=prefix + part + "_pad"))
        conv(part, filters, cfg.kernel_size, cfg.strides, mode, depthwise)

    def se(width):
        if not cfg.se_filters:
            return
        shape = (1, 1, width) if df == "channels_last" else (width, 1, 1)
        add("se_squeeze", keras.layers.GlobalAveragePooling2D(data_format=df,
                                                             name=prefix + "se_squeeze"))
        add("se_reshape", keras.layers.Reshape(shape, name=prefix + "se_reshape"))
        add("se_reduce", PointwiseConv2D(cfg.se_filters, 1, padding="same",
                                         activation=cfg.activation, data_format=df,
                                         kernel_initializer=init, name=prefix + "se_reduce"))
        add("se_expand", PointwiseConv2D(width, 1, padding="same",
                                         activation=cfg.gate_activation, data_format=df,
                                         kernel_initializer=init, name=prefix + "se_expand"))
        add("se_excite", keras.layers.Multiply(name=prefix + "se_excite"))

    if cfg.num_experts:
        add("routing_pool", keras.layers.GlobalAveragePooling2D(data_format=df,
                                                               name=prefix + "routing_pool"))
        add("routing", keras.layers.Dense(cfg.num_experts, activation="sigmoid",
                                          name=prefix + "routing"))
    width = int(in_channels)
    if cfg.kind == "mb":
        if cfg.expand_filters is not None:
            conv("expand_conv", cfg.expand_filters, 1, 1, "same")
            bn("expand_bn")
            act("expand_activation")
            width = cfg.expand_filters
        padded_conv(cfg.dwconv_name, width, depthwise=True)
        bn("bn")
        act("activation")
        se(width)
        conv("project_conv", cfg.filters, 1, 1, "same")
        bn("project_bn")
    elif cfg.expand_filters is not None:
        padded_conv("expand_conv", cfg.expand_filters)
        bn("expand_bn")
        act("expand_activation")
        se(cfg.expand_filters)
        conv("project_conv", cfg.filters, 1, 1, "same")
        bn("project_bn")
    else:
        se(width)
        padded_conv("project_conv", cfg.filters)
        bn("project_bn")
        act("project_activation")
    if has_skip(cfg, in_channels):
        if cfg.drop_rate > 0:
            add("drop", keras.layers.Dropout(cfg.drop_rate, noise_shape=(None, 1, 1, 1),
                                             name=prefix + "drop"))
        add("add", keras.layers.Add(name=prefix + "add"))
    return out


def apply_block(layers: dict, inputs, conv_bn: Callable | None = None, training=None):
    """Connect a block's layers (from :func:`block_layers`) to ``inputs``.

    Args:
        layers: ``{part: layer}`` from :func:`block_layers` (built or not).
        inputs: a tensor or a symbolic Keras tensor.
        conv_bn: how to compute ``bn(conv(x))`` for each convolution + BatchNorm pair,
            called as ``conv_bn(conv, bn, x)`` (default: the two layers in turn; the block
            layers pass their BatchNorm folding).
        training: passed to the BatchNorm and Dropout layers (None in a functional graph).

    Returns:
        The block's output.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.layers.wiring import BlockConfig, apply_block, block_layers
        >>> cfg = BlockConfig("fu", 16, kernel_size=3, expand_filters=64)
        >>> parts = block_layers(cfg, 16, (8, 8))
        >>> tuple(apply_block(parts, np.zeros((1, 8, 8, 16), "float32")).shape)
        (1, 8, 8, 16)
    """
    def plain(conv, bn, x):
        return bn(conv(x), training=training)

    conv_bn = conv_bn or plain
    routing = None
    if "routing" in layers:
        routing = layers["routing"](layers["routing_pool"](inputs))

    def conv_and_bn(conv_part, bn_part, x):
        conv, bn = layers[conv_part], layers[bn_part]
        if routing is not None:
            return bn(conv(x, routing), training=training)
        return conv_bn(conv, bn, x)

    def pad(part, x):
        return layers[part + "_pad"](x) if part + "_pad" in layers else x

    def se(x):
        if "se_squeeze" not in layers:
            return x
        s = layers["se_squeeze"](x)
        s = layers["se_reshape"](s)
        s = layers["se_expand"](layers["se_reduce"](s))
        return layers["se_excite"]([x, s])

    x = inputs
    dw = next((p for p in ("dwconv", "dwconv2") if p in layers), None)
    if dw is not None:  # MBConv
        if "expand_conv" in layers:
            x = layers["expand_activation"](conv_and_bn("expand_conv", "expand_bn", x))
        x = layers["activation"](conv_and_bn(dw, "bn", pad(dw, x)))
        x = se(x)
        x = conv_and_bn("project_conv", "project_bn", x)
    elif "expand_conv" in layers:  # Fused-MBConv with expansion
        x = layers["expand_activation"](conv_and_bn("expand_conv", "expand_bn",
                                                    pad("expand_conv", x)))
        x = se(x)
        x = conv_and_bn("project_conv", "project_bn", x)
    else:  # Fused-MBConv, a single convolution
        x = se(x)
        x = layers["project_activation"](conv_and_bn("project_conv", "project_bn",
                                                     pad("project_conv", x)))
    if "add" in layers:
        if "drop" in layers:
            x = layers["drop"](x, training=training)
        x = layers["add"]([x, inputs])
    return x
