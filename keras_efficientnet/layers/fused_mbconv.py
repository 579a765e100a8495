"""Fused-MBConv: EfficientNetV2's block with the expansion and depthwise convs fused."""

from __future__ import annotations

from .common import serializable
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
        data_format, kernel_initializer, bn_fold, pad_layers: as for
        :class:`~keras_efficientnet.layers.MBConv`.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.layers import FusedMBConv
        >>> block = FusedMBConv(48, kernel_size=3, strides=2, expand_filters=96)
        >>> tuple(block(np.zeros((1, 32, 32, 24), "float32")).shape)
        (1, 16, 16, 48)
    """

    kind = "fu"
