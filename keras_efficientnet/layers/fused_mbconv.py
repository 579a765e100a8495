"""Fused-MBConv: EfficientNetV2's block with the expansion and depthwise convs fused."""

from __future__ import annotations

from .common import pad_spatial, serializable
from .mbconv import _InvertedResidualBase


@serializable
class FusedMBConv(_InvertedResidualBase):
    """Fused inverted bottleneck: kxk expand conv, optional SE, 1x1 project, residual.

    With ``expand_filters=None`` the block is a single kxk convolution (named
    ``project_conv``, as in keras.applications) followed by BatchNorm and the activation.

    Args:
        filters: output channels.
        kernel_size: size of the fused (expansion) convolution.
        strides: its stride (1 or 2).
        expand_filters: hidden width; None for the single-conv form.
        se_filters: squeeze-excitation bottleneck width; 0 disables SE.
        activation, gate_activation, drop_rate, residual, padding, bn_epsilon, bn_momentum,
        data_format, kernel_initializer, bn_fold: as for :class:`~keras_efficientnet.layers.MBConv`.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.layers import FusedMBConv
        >>> block = FusedMBConv(48, kernel_size=3, strides=2, expand_filters=96)
        >>> tuple(block(np.zeros((1, 32, 32, 24), "float32")).shape)
        (1, 16, 16, 48)
    """

    def build(self, input_shape):
        self._check_residual(input_shape)
        pad = self._conv_padding
        self.expand_conv = self.expand_bn = None
        if self.expand_filters is not None:
            self.expand_conv = self._conv(self.expand_filters, self.kernel_size, self.strides,
                                          "expand_conv", pad)
            self.expand_bn = self._bn("expand_bn")
            self.project_conv = self._conv(self.filters, 1, 1, "project_conv")
        else:
            self.project_conv = self._conv(self.filters, self.kernel_size, self.strides,
                                           "project_conv", pad)
        self.se = self._se()
        self.project_bn = self._bn("project_bn")
        if self.expand_conv is not None:
            shape = self._build_chain(self._padded(input_shape), [self.expand_conv, self.expand_bn, self.se])
            self._build_chain(shape, [self.project_conv, self.project_bn])
        else:
            self._build_chain(input_shape, [self.se])
            self._build_chain(self._padded(input_shape), [self.project_conv, self.project_bn])

    def call(self, inputs, training=None):
        x = inputs
        if self.expand_conv is not None:
            x = pad_spatial(x, self._pad, self.data_format)
            x = self.activation(self._conv_bn(self.expand_conv, self.expand_bn, x, training))
        if self.se is not None:
            x = self.se(x)
        if self.expand_conv is not None:
            x = self._conv_bn(self.project_conv, self.project_bn, x, training)
        else:
            x = pad_spatial(x, self._pad, self.data_format)
            x = self.activation(self._conv_bn(self.project_conv, self.project_bn, x, training))
        return self._finish(inputs, x, training)
