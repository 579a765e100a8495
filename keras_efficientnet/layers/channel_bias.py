"""A per-channel bias: what a BatchNorm becomes once folded into the preceding convolution."""

from __future__ import annotations

import keras

from .common import channel_axis, serializable, standardize_data_format
from .folding import add_channel_bias


@serializable
class ChannelBias(keras.layers.Layer):
    """Add a learned bias along the channel axis (one add, no statistics).

    :func:`~keras_efficientnet.fuse_batchnorm` multiplies the convolution kernel by the
    BatchNorm scale ``gamma / sqrt(var + eps)`` and replaces the BatchNorm by this layer holding
    ``beta - mean * scale``. It keeps the BatchNorm's name, so flat weight names stay readable
    (``block1a_bn/bias``) and whatever code reads the convolution kernels is unchanged.

    Args:
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.layers.channel_bias import ChannelBias
        >>> layer = ChannelBias()
        >>> tuple(layer(np.zeros((1, 2, 2, 3), "float32")).shape)
        (1, 2, 2, 3)
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)

    def build(self, input_shape):
        axis = channel_axis(self.data_format)
        channels = input_shape[axis]
        if channels is None:
            raise ValueError("ChannelBias needs a known channel count.")
        self.bias = self.add_weight(name="bias", shape=(int(channels),), initializer="zeros")
        self._shape = [1] * len(input_shape)
        self._shape[axis] = int(channels)

    def call(self, inputs, mask=None):  # mask: accepted like the BatchNorm it replaces
        if len(self._shape) == 4:  # BiasAdd on TensorFlow, fusable with the conv before it
            return add_channel_bias(inputs, self.bias, self.data_format)
        return inputs + keras.ops.reshape(keras.ops.cast(self.bias, inputs.dtype), self._shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
