"""Converters: read a checkpoint file into ``{flat_name: numpy array}`` in our layout.

Converters never build models. Each returns a :class:`~keras_efficientnet.pretrained.convert.base.Converted`
holding the arrays under our flat names (see :mod:`keras_efficientnet.pretrained.naming`) and
the source entries it consumed on purpose without a target (such as preprocessing statistics).
"""

from .base import Converted, detect_format, register_format

__all__ = ["Converted", "detect_format", "register_format"]
