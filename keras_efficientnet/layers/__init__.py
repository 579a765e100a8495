"""Keras layers of the EfficientNet family. They know nothing about variants."""

from .fused_mbconv import FusedMBConv
from .mbconv import MBConv
from .normalize import Normalize
from .squeeze_excite import SqueezeExcite
from .stochastic_depth import StochasticDepth

__all__ = ["FusedMBConv", "MBConv", "Normalize", "SqueezeExcite", "StochasticDepth"]
