"""Squeeze-and-Excitation (Hu et al., 2018) as used in EfficientNet blocks."""

from __future__ import annotations

import keras

from .common import CONV_INITIALIZER, channel_axis, serializable, spatial_axes, standardize_data_format


@serializable
class SqueezeExcite(keras.layers.Layer):
    """Channel attention: global pool, 1x1 reduce + activation, 1x1 expand + gate, rescale.

    The two 1x1 convolutions run on the pooled ``(N, 1, 1, C)`` tensor (no reshapes) and keep
    the kernel layout of keras.applications' ``se_reduce`` / ``se_expand`` layers. The excited
    width is the input's channel count.

    Args:
        filters: width of the bottleneck (``se_reduce`` output channels).
        activation: activation after the reduction.
        gate_activation: activation producing the channel weights.
        data_format: ``"channels_last"`` or ``"channels_first"``; Keras' default when None.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.layers import SqueezeExcite
        >>> se = SqueezeExcite(4)
        >>> tuple(se(np.ones((2, 8, 8, 16), "float32")).shape)
        (2, 8, 8, 16)
    """

    def __init__(self, filters: int, activation="swish", gate_activation="sigmoid",
                 data_format=None, kernel_initializer=CONV_INITIALIZER, **kwargs):
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise ValueError(f"SqueezeExcite filters must be >= 1, got {filters}.")
        self.filters = int(filters)
        self.activation = keras.activations.get(activation)
        self.gate_activation = keras.activations.get(gate_activation)
        self.data_format = standardize_data_format(data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.reduce = None
        self.expand = None

    def build(self, input_shape):
        channels = input_shape[channel_axis(self.data_format)]
        if channels is None:
            raise ValueError("SqueezeExcite needs a known channel count.")
        common = dict(kernel_size=1, padding="same", data_format=self.data_format,
                      kernel_initializer=self.kernel_initializer)
        self.reduce = keras.layers.Conv2D(self.filters, name="reduce", **common)
        self.expand = keras.layers.Conv2D(channels, name="expand", **common)
        pooled = list(input_shape)
        for axis in spatial_axes(self.data_format):
            pooled[axis] = 1
        self.reduce.build(tuple(pooled))
        pooled[channel_axis(self.data_format)] = self.filters
        self.expand.build(tuple(pooled))

    def call(self, inputs):
        s = keras.ops.mean(inputs, axis=spatial_axes(self.data_format), keepdims=True)
        s = self.activation(self.reduce(s))
        s = self.gate_activation(self.expand(s))
        return inputs * s

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "activation": keras.activations.serialize(self.activation),
                "gate_activation": keras.activations.serialize(self.gate_activation),
                "data_format": self.data_format,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}
