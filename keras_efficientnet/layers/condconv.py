"""CondConvMBConv, the MBConv block of EfficientNet-CondConv (Yang et al., 2019).

Its convolutions are :class:`~keras_efficientnet.layers.CondConv2D` layers
(:mod:`keras_efficientnet.layers.cond_conv2d`: per-example mixes of expert kernels).
The routing weights, ``sigmoid(dense(global_average_pool(block_input)))``, are shared by the
block's expansion, depthwise and projection convolutions.
"""

from __future__ import annotations

from .common import serializable
from .cond_conv2d import CondConv2D  # noqa: F401  (its home before the split)
from .mbconv import _InvertedResidualBase


@serializable
class CondConvMBConv(_InvertedResidualBase):
    """MBConv whose 1x1 expansion, depthwise and 1x1 projection convolutions are CondConv.

    The routing weights are ``routing(routing_pool(inputs))`` (global average pooling, then
    a sigmoid ``Dense`` sublayer named ``routing``), computed once from the block input and
    shared by the three convolutions. Sublayer names otherwise follow
    :class:`~keras_efficientnet.layers.MBConv`.

    Args:
        num_experts: number of expert kernels of each CondConv.
        Other arguments: as for :class:`~keras_efficientnet.layers.MBConv` (``bn_fold`` is
            accepted but never folds here: each example mixes its own kernel).

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.layers import CondConvMBConv
        >>> block = CondConvMBConv(24, kernel_size=3, strides=2, expand_filters=96,
        ...                        se_filters=4, num_experts=4)
        >>> tuple(block(np.zeros((2, 32, 32, 16), "float32")).shape)
        (2, 16, 16, 24)
    """

    def __init__(self, filters: int, num_experts: int = 4, **kwargs):
        super().__init__(filters, **kwargs)
        if int(num_experts) < 1:
            raise ValueError(f"CondConvMBConv needs num_experts >= 1, got {num_experts}.")
        self.num_experts = int(num_experts)

    def _num_experts(self):
        return self.num_experts

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts}
