"""In-graph input normalisation with constant statistics."""

from __future__ import annotations

import keras
import numpy as np

from .common import channel_axis, serializable, standardize_data_format


@serializable
class Normalize(keras.layers.Layer):
    """``(x - mean) / std`` per channel, with constants (no weights to load or adapt).

    Args:
        mean: per-channel mean, in the units of the input (0-255 pixels here).
        std: per-channel standard deviation, same units.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.layers import Normalize
        >>> layer = Normalize(mean=(128.0,) * 3, std=(128.0,) * 3)
        >>> np.asarray(layer(np.full((1, 2, 2, 3), 255.0, "float32")))[0, 0, 0].tolist()
        [0.9921875, 0.9921875, 0.9921875]
    """

    def __init__(self, mean, std, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError("Normalize needs as many positive std values as mean values.")
        self.data_format = standardize_data_format(data_format)

    def build(self, input_shape):
        channels = input_shape[channel_axis(self.data_format)]
        if channels is not None and channels != len(self.mean):
            raise ValueError(f"This model's preprocessing normalises {len(self.mean)} channels, but the "
                             f"input has {channels}. Pass include_preprocessing=False for other inputs.")
        shape = [1, 1, 1, 1]
        shape[channel_axis(self.data_format)] = len(self.mean)
        self._shape = shape

    def call(self, inputs):
        dtype = inputs.dtype
        mean = keras.ops.cast(np.reshape(np.asarray(self.mean, "float32"), self._shape), dtype)
        inv = keras.ops.cast(np.reshape(1.0 / np.asarray(self.std, "float32"), self._shape), dtype)
        return (inputs - mean) * inv

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std,
                "data_format": self.data_format}
