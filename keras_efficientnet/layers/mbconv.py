"""MBConv: the inverted-residual block of MobileNetV2 / EfficientNet."""

from __future__ import annotations

import keras

from .common import (CONV_INITIALIZER, batch_norm, channel_axis, conv_padding, pad_spatial,
                     serializable, spatial_axes, standardize_data_format)
from .channel_bias import ChannelBias
from .pointwise import PointwiseConv2D
from .depthwise import ShiftedDepthwiseConv2D, resolve_depthwise_impl
from .folding import can_fold, folded_conv_bn, resolve_bn_fold
from .squeeze_excite import SqueezeExcite
from .stochastic_depth import StochasticDepth


class _InvertedResidualBase(keras.layers.Layer):
    """What MBConv and Fused-MBConv share: arguments, BatchNorm, residual and config."""

    def __init__(self, filters: int, kernel_size: int = 3, strides: int = 1,
                 expand_filters: int | None = None, se_filters: int = 0, activation="swish",
                 gate_activation="sigmoid", drop_rate: float = 0.0, residual: bool = True,
                 padding: str = "same", bn_epsilon: float = 1e-3, bn_momentum: float = 0.99,
                 data_format=None, kernel_initializer=CONV_INITIALIZER, fused_bn: bool = False,
                 bn_fold: str = "auto", **kwargs):
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
        self._pad, self._conv_padding = conv_padding(self.kernel_size, self.strides, padding)
        if self.strides not in (1, 2):
            raise ValueError(f"strides must be 1 or 2, got {strides}.")
        self.has_skip = False
        self.drop = StochasticDepth(self.drop_rate, name="drop") if self.residual else None

    def _conv(self, filters, kernel_size, strides, name, padding="same"):
        return PointwiseConv2D(filters, kernel_size, strides=strides, padding=padding,
                                   use_bias=False, data_format=self.data_format,
                                   kernel_initializer=self.kernel_initializer, name=name)

    def _bn(self, name):
        if self.fused_bn:
            return ChannelBias(data_format=self.data_format, name=name)
        return batch_norm(name, self.data_format, self.bn_epsilon, self.bn_momentum)

    def _conv_bn(self, conv, bn, x, training):
        """``bn(conv(x))``; in inference mode with ``bn_fold`` on, one convolution with the
        BatchNorm folded into its kernel (see :mod:`keras_efficientnet.layers.folding`)."""
        if (not self.fused_bn and resolve_bn_fold(self.bn_fold) == "inference"
                and can_fold(conv, bn, training)):
            return folded_conv_bn(conv, bn, x)
        return bn(conv(x), training=training)

    def _se(self):
        if not self.se_filters:
            return None
        return SqueezeExcite(self.se_filters, activation=self.activation,
                             gate_activation=self.gate_activation, data_format=self.data_format,
                             kernel_initializer=self.kernel_initializer, name="se")

    def _with_channels(self, shape, channels):
        shape = list(shape)
        shape[channel_axis(self.data_format)] = channels
        return tuple(shape)

    def _build_chain(self, shape, sublayers):
        """Build sublayers in order, each on the previous one's output shape."""
        for layer in sublayers:
            if layer is None:
                continue
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        return shape

    def _padded(self, shape):
        """``shape`` after the explicit zero padding of the symmetric convention."""
        shape = list(shape)
        for axis in spatial_axes(self.data_format):
            if self._pad and shape[axis] is not None:
                shape[axis] += 2 * self._pad
        return tuple(shape)

    def _check_residual(self, input_shape):
        in_ch = input_shape[channel_axis(self.data_format)]
        if in_ch is None:
            raise ValueError(f"{type(self).__name__} needs a known channel count.")
        self.has_skip = self.residual and self.strides == 1 and in_ch == self.filters
        return in_ch

    def _finish(self, inputs, x, training):
        if self.has_skip:
            x = self.drop(x, training=training) + inputs
        return x

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for axis in spatial_axes(self.data_format):
            if shape[axis] is not None:
                shape[axis] = -(-shape[axis] // self.strides)
        shape[channel_axis(self.data_format)] = self.filters
        return tuple(shape)

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
                "bn_fold": self.bn_fold, **({"fused_bn": True} if self.fused_bn else {})}


@serializable
class MBConv(_InvertedResidualBase):
    """Mobile inverted bottleneck: 1x1 expand, kxk depthwise, SE, 1x1 project, residual.

    Sublayers keep keras.applications' names (``expand_conv``, ``expand_bn``, ``dwconv``,
    ``bn``, ``se`` with ``reduce``/``expand``, ``project_conv``, ``project_bn``), so a block
    named ``block2a`` holds the weights keras.applications calls ``block2a_expand_conv`` etc.

    Args:
        filters: output channels.
        kernel_size: depthwise kernel size.
        strides: depthwise stride (1 or 2).
        expand_filters: hidden width; None for no expansion conv (the depthwise-separable
            first block of EfficientNet).
        se_filters: squeeze-excitation bottleneck width; 0 disables SE.
        activation: activation after expansion, depthwise conv and in SE.
        gate_activation: SE gate.
        drop_rate: stochastic-depth rate of the residual branch.
        residual: add the input to the output where stride is 1 and widths match.
        padding: ``"same"`` (TensorFlow) or ``"symmetric"`` (PyTorch) convention.
        bn_epsilon: BatchNormalization epsilon.
        bn_momentum: BatchNormalization momentum.
        data_format: ``"channels_last"`` or ``"channels_first"``.
        kernel_initializer: initializer of the convolution kernels.
        depthwise_impl: ``"keras"`` (``keras.layers.DepthwiseConv2D``), ``"shifted"``
            (:class:`~keras_efficientnet.layers.ShiftedDepthwiseConv2D`, k*k shifted
            multiply-adds that XLA compiles well) or ``"auto"`` (the faster one on the current
            backend). Same weights either way; only the computation differs.
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

    def build(self, input_shape):
        self._check_residual(input_shape)
        self.expand_conv = self.expand_bn = None
        if self.expand_filters is not None:
            self.expand_conv = self._conv(self.expand_filters, 1, 1, "expand_conv")
            self.expand_bn = self._bn("expand_bn")
        if resolve_depthwise_impl(self.depthwise_impl) == "shifted":
            self.dwconv = ShiftedDepthwiseConv2D(
                self.kernel_size, strides=self.strides, padding=self._conv_padding,
                data_format=self.data_format, depthwise_initializer=self.kernel_initializer,
                name="dwconv")
        else:
            self.dwconv = keras.layers.DepthwiseConv2D(
                self.kernel_size, strides=self.strides, padding=self._conv_padding, use_bias=False,
                data_format=self.data_format, depthwise_initializer=self.kernel_initializer,
                name="dwconv")
        self.bn = self._bn("bn")
        self.se = self._se()
        self.project_conv = self._conv(self.filters, 1, 1, "project_conv")
        self.project_bn = self._bn("project_bn")
        shape = self._build_chain(input_shape, [self.expand_conv, self.expand_bn])
        self._build_chain(self._padded(shape), [self.dwconv, self.bn, self.se, self.project_conv, self.project_bn])

    def call(self, inputs, training=None):
        x = inputs
        if self.expand_conv is not None:
            x = self.activation(self._conv_bn(self.expand_conv, self.expand_bn, x, training))
        x = pad_spatial(x, self._pad, self.data_format)
        x = self.activation(self._conv_bn(self.dwconv, self.bn, x, training))
        if self.se is not None:
            x = self.se(x)
        x = self._conv_bn(self.project_conv, self.project_bn, x, training)
        return self._finish(inputs, x, training)

    def get_config(self):
        return {**super().get_config(), "depthwise_impl": self.depthwise_impl}
