"""Keras layers of the EfficientNet family. They know nothing about variants."""

from . import channel_bias as _channel_bias  # noqa: F401  (registers ChannelBias: fused models load)
from .batch_norm import FastBatchNormalization
from .cond_conv2d import CondConv2D
from .condconv import CondConvMBConv
from .depthwise import ShiftedDepthwiseConv2D
from .fused_mbconv import FusedMBConv
from .mbconv import MBConv
from .normalize import Normalize
from .pointwise import PointwiseConv2D
from .squeeze_excite import SqueezeExcite
from .stochastic_depth import StochasticDepth

__all__ = ["CondConv2D", "FastBatchNormalization", "CondConvMBConv", "FusedMBConv", "MBConv", "Normalize", "PointwiseConv2D", "ShiftedDepthwiseConv2D", "SqueezeExcite", "StochasticDepth"]
