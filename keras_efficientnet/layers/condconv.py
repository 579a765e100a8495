"""CondConv (Yang et al., 2019): convolutions whose kernel is a per-example mix of experts.

A CondConv layer holds ``N`` expert kernels. For each example a routing vector ``r`` (``N``
weights) mixes them into one kernel, ``W = sum_n r_n W_n``, which convolves that example.
Because a convolution is linear in its kernel, ``conv(x, sum_n r_n W_n)`` equals
``sum_n r_n conv(x, W_n)``: :class:`CondConv2D` runs one convolution with all experts stacked
along the output channels and mixes the ``N`` results with ``r``. That needs no per-example
loop, works the same on every backend, and costs ``N`` convolutions (CondConv is used on the
low-resolution stages, where that is cheap).

:class:`CondConvMBConv` is the MBConv block of EfficientNet-CondConv: routing weights
``sigmoid(dense(global_average_pool(block_input)))`` shared by its expansion, depthwise and
projection convolutions.
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
