"""MBConv: the inverted-residual block of MobileNetV2 / EfficientNet."""

from __future__ import annotations

import keras

from .common import CONV_INITIALIZER, serializable, spatial_axes, standardize_data_format
from .depthwise import resolve_depthwise_impl
from .folding import can_fold, folded_conv_bn, resolve_bn_fold
from .wiring import BlockConfig, apply_block, block_layers


class _InvertedResidualBase(keras.layers.Layer):
    """What MBConv, Fused-MBConv and CondConv-MBConv share: arguments, config, and the
    block wiring of :mod:`keras_efficientnet.layers.wiring` (the same function the model
    factory uses for its flat graph)."""

    kind = "mb"

    def __init__(self, filters: int, kernel_size: int = 3, strides: int = 1,
                 expand_filters: int | None = None, se_filters: int = 0, activation="swish",
                 gate_activation="sigmoid", drop_rate: float = 0.0, residual: bool = True,
                 padding: str = "same", bn_epsilon: float = 1e-3, bn_momentum: float = 0.99,
                 data_format=None, kernel_initializer=CONV_INITIALIZER, fused_bn: bool = False,
                 bn_fold: str = "auto", pad_layers: bool = False, dwconv_name: str = "dwconv",
                 **kwargs):
        super().__init__(**kwargs)
        # fused_bn: BatchNorms folded into the convs (see keras_efficientnet.fuse_batchnorm):
        # each BN sublayer is a ChannelBias of the same name.
        self.fused_bn = bool(fused_bn)
        resolve_bn_fold(bn_fold)  # validates
        self.bn_fold = bn_fold
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.expand_filters = None if expand_filters is None else int(expand_filters)
        self.se_filters = int(se_filters)
        self.activation = keras.activations.get(activation)
        self.gate_activation = keras.activations.get(gate_activation)
        self.drop_rate = float(drop_rate)
        self.residual = bool(residual)
        self.padding = padding
        self.bn_epsilon = float(bn_epsilon)
        self.bn_momentum = float(bn_momentum)
        self.data_format = standardize_data_format(data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.pad_layers = bool(pad_layers)
        self.dwconv_name = str(dwconv_name)
        if self.strides not in (1, 2):
            raise ValueError(f"strides must be 1 or 2, got {strides}.")
        if padding not in ("same", "symmetric"):
            raise ValueError(f"padding must be 'same' or 'symmetric', got {padding!r}.")
        self.has_skip = False
        self._parts = {}

    def _depthwise_impl(self):
        return "auto"

    def _num_experts(self):
        return 0

    def block_config(self) -> BlockConfig:
        """This block as a :class:`~keras_efficientnet.layers.wiring.BlockConfig`."""
        return BlockConfig(
            kind=self.kind, filters=self.filters, kernel_size=self.kernel_size,
            strides=self.strides, expand_filters=self.expand_filters, se_filters=self.se_filters,
            activation=self.activation, gate_activation=self.gate_activation,
            drop_rate=self.drop_rate, residual=self.residual, padding=self.padding,
            pad_layers=self.pad_layers, bn_epsilon=self.bn_epsilon, bn_momentum=self.bn_momentum,
            data_format=self.data_format, kernel_initializer=self.kernel_initializer,
            depthwise_impl=self._depthwise_impl(), dwconv_name=self.dwconv_name,
            num_experts=self._num_experts(), fused_bn=self.fused_bn)

    def build(self, input_shape):
        axis = -1 if self.data_format == "channels_last" else 1
        in_ch = input_shape[axis]
        if in_ch is None:
            raise ValueError(f"{type(self).__name__} needs a known channel count.")
        cfg = self.block_config()
        self.has_skip = self.residual and self.strides == 1 and in_ch == self.filters
        size = tuple(input_shape[a] for a in spatial_axes(self.data_format))
        self._parts = block_layers(cfg, in_ch, size)
        for part, layer in self._parts.items():
            if part not in ("activation",):  # self.activation is the activation function
                setattr(self, part, layer)
        # build every sublayer by tracing the wiring once on a symbolic input
        apply_block(self._parts, keras.KerasTensor(tuple(input_shape), dtype=self.compute_dtype))

    def _conv_bn(self, training):
        if self.fused_bn or self._num_experts() or resolve_bn_fold(self.bn_fold) != "inference":
            return None

        def conv_bn(conv, bn, x):
            if can_fold(conv, bn, training):
                return folded_conv_bn(conv, bn, x)
            return bn(conv(x), training=training)

        return conv_bn

    def call(self, inputs, training=None):
        return apply_block(self._parts, inputs, conv_bn=self._conv_bn(training), training=training)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "expand_filters": self.expand_filters,
                "se_filters": self.se_filters,
                "activation": keras.activations.serialize(self.activation),
                "gate_activation": keras.activations.serialize(self.gate_activation),
                "drop_rate": self.drop_rate, "residual": self.residual, "padding": self.padding,
                "bn_epsilon": self.bn_epsilon, "bn_momentum": self.bn_momentum,
                "data_format": self.data_format,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bn_fold": self.bn_fold, "pad_layers": self.pad_layers,
                "dwconv_name": self.dwconv_name, **({"fused_bn": True} if self.fused_bn else {})}


@serializable
class MBConv(_InvertedResidualBase):
    """Mobile inverted bottleneck: 1x1 expand, kxk depthwise, SE, 1x1 project, residual.

    The sublayers are keras.applications' layers under its names without the block prefix
    (``expand_conv``, ``expand_bn``, ``expand_activation``, ``dwconv``, ``bn``,
    ``activation``, ``se_squeeze`` ... ``se_excite``, ``project_conv``, ``project_bn``,
    ``drop``, ``add``), made and wired by :mod:`keras_efficientnet.layers.wiring`, the same
    code that writes a model's flat graph: a block named ``block2a`` holds the weights
    keras.applications calls ``block2a_expand_conv`` etc.

    Args:
        filters: output channels.
        kernel_size: depthwise kernel size.
        strides: depthwise stride (1 or 2).
        expand_filters: hidden width; None for no expansion conv (the depthwise-separable
            first block of EfficientNet).
        se_filters: squeeze-excitation bottleneck width; 0 disables SE.
        activation: activation after expansion, depthwise conv and in SE.
        gate_activation: SE gate.
        drop_rate: stochastic-depth rate of the residual branch (a ``Dropout`` with
            ``noise_shape=(None, 1, 1, 1)``, as in keras.applications).
        residual: add the input to the output where stride is 1 and widths match.
        padding: ``"same"`` (TensorFlow) or ``"symmetric"`` (PyTorch) convention.
        bn_epsilon: BatchNormalization epsilon.
        bn_momentum: BatchNormalization momentum.
        data_format: ``"channels_last"`` or ``"channels_first"``.
        kernel_initializer: initializer of the convolution kernels.
        depthwise_impl: ``"keras"`` (``keras.layers.DepthwiseConv2D``), ``"shifted"``
            (:class:`~keras_efficientnet.layers.ShiftedDepthwiseConv2D`, k×k shifted
            multiply-adds that XLA compiles well) or ``"auto"`` (the faster one on the current
            backend). Same weights either way; only the computation differs.
        pad_layers: keras.applications' V1 padding: an explicit ``ZeroPadding2D`` before a
            stride-2 "valid" depthwise convolution (False: the convolution pads "same").
        dwconv_name: name of the depthwise sublayer (``"dwconv2"`` in V2 models).
        bn_fold: ``"inference"`` computes each convolution + BatchNorm pair as one
            convolution with the BatchNorm folded into the kernel in inference-mode calls,
            ``"never"`` always runs the BatchNorm layers, ``"auto"`` (default) folds where
            that was measured faster (TensorFlow, PyTorch). Weights and training are the same either
            way; inference outputs agree up to float rounding
            (:mod:`keras_efficientnet.layers.folding`).

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.layers import MBConv
        >>> block = MBConv(24, kernel_size=3, strides=2, expand_filters=96, se_filters=4)
        >>> tuple(block(np.zeros((1, 32, 32, 16), "float32")).shape)
        (1, 16, 16, 24)
    """

    def __init__(self, *args, depthwise_impl: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        resolve_depthwise_impl(depthwise_impl)  # validates
        self.depthwise_impl = depthwise_impl

    def _depthwise_impl(self):
        return self.depthwise_impl

    def get_config(self):
        return {**super().get_config(), "depthwise_impl": self.depthwise_impl}
