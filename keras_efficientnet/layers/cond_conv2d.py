"""CondConv2D, the conditionally parameterised convolution (Yang et al., 2019).

A CondConv layer holds ``N`` expert kernels. For each example a routing vector ``r`` (``N``
weights) mixes them into one kernel, ``W = sum_n r_n W_n``, which convolves that example.
Because a convolution is linear in its kernel, ``conv(x, sum_n r_n W_n)`` equals
``sum_n r_n conv(x, W_n)``: :class:`CondConv2D` runs one convolution with all experts stacked
along the output channels and mixes the ``N`` results with ``r``. That needs no per-example
loop, works the same on every backend, and costs ``N`` convolutions (CondConv is used on the
low-resolution stages, where that is cheap). The block that routes it is
:class:`~keras_efficientnet.layers.CondConvMBConv` (:mod:`keras_efficientnet.layers.condconv`).
"""

from __future__ import annotations

import keras

from .common import (CONV_INITIALIZER, channel_axis, serializable, spatial_axes,
                     standardize_data_format)


@serializable
class CondConv2D(keras.layers.Layer):
    """A conditionally parameterised 2-D convolution (no bias).

    Call it as ``layer(inputs, routing_weights)`` with ``routing_weights`` of shape
    ``(batch, num_experts)``.

    Weights: ``kernel`` of shape ``(num_experts, k, k, in_channels, filters)`` (each expert in
    Keras' HWIO layout), or for ``depthwise=True`` ``(num_experts, k, k, channels, 1)`` (each
    expert in ``DepthwiseConv2D``'s layout).

    Args:
        filters: output channels (ignored for ``depthwise=True``: output = input channels).
        kernel_size: square kernel size.
        strides: stride (1 or 2).
        num_experts: number of expert kernels.
        depthwise: a depthwise convolution (one kxk filter per channel).
        padding: Keras padding of the convolution, ``"same"`` or ``"valid"``.
        data_format: ``"channels_last"`` or ``"channels_first"``.
        kernel_initializer: initializer of every expert kernel.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.layers import CondConv2D
        >>> conv = CondConv2D(8, 3, num_experts=4, depthwise=False)
        >>> x = np.ones((2, 16, 16, 5), "float32")
        >>> routing = np.full((2, 4), 0.5, "float32")
        >>> tuple(conv(x, routing).shape)
        (2, 16, 16, 8)
        >>> tuple(conv.kernel.shape)
        (4, 3, 3, 5, 8)
    """

    def __init__(self, filters: int = 1, kernel_size: int = 3, strides: int = 1,
                 num_experts: int = 4, depthwise: bool = False, padding: str = "same",
                 data_format=None, kernel_initializer=CONV_INITIALIZER, **kwargs):
        super().__init__(**kwargs)
        if int(num_experts) < 1:
            raise ValueError(f"CondConv2D needs num_experts >= 1, got {num_experts}.")
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}.")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.num_experts = int(num_experts)
        self.depthwise = bool(depthwise)
        self.padding = padding
        self.data_format = standardize_data_format(data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape, routing_weights_shape=None):
        channels = inputs_shape[channel_axis(self.data_format)]
        if channels is None:
            raise ValueError("CondConv2D needs a known channel count.")
        self.in_channels = int(channels)
        k = self.kernel_size
        if self.depthwise:
            self.filters = self.in_channels
            shape = (self.num_experts, k, k, self.in_channels, 1)
        else:
            shape = (self.num_experts, k, k, self.in_channels, self.filters)
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer=self.kernel_initializer)

    def call(self, inputs, routing_weights):
        n, k = self.num_experts, self.kernel_size
        routing_weights = keras.ops.cast(routing_weights, inputs.dtype)
        if self.depthwise:
            # (N, k, k, C, 1) -> (k, k, C, N): output channel c * N + n is expert n on channel c.
            kernel = keras.ops.transpose(keras.ops.squeeze(self.kernel, -1), (1, 2, 3, 0))
            y = keras.ops.depthwise_conv(inputs, keras.ops.cast(kernel, inputs.dtype),
                                         strides=self.strides, padding=self.padding,
                                         data_format=self.data_format)
            groups, per_group = self.in_channels, n
        else:
            # (N, k, k, I, O) -> (k, k, I, N * O): output channel n * O + o is expert n.
            kernel = keras.ops.reshape(keras.ops.transpose(self.kernel, (1, 2, 3, 0, 4)),
                                       (k, k, self.in_channels, n * self.filters))
            y = keras.ops.conv(inputs, keras.ops.cast(kernel, inputs.dtype), strides=self.strides,
                               padding=self.padding, data_format=self.data_format)
            groups, per_group = n, self.filters
        shape = keras.ops.shape(y)
        if self.data_format == "channels_last":
            y = keras.ops.reshape(y, (shape[0], shape[1], shape[2], groups, per_group))
            equation = "bhwcn,bn->bhwc" if self.depthwise else "bhwno,bn->bhwo"
        else:
            y = keras.ops.reshape(y, (shape[0], groups, per_group, shape[2], shape[3]))
            equation = "bcnhw,bn->bchw" if self.depthwise else "bnohw,bn->bohw"
        return keras.ops.einsum(equation, y, routing_weights)

    def compute_output_shape(self, inputs_shape, routing_weights_shape=None):
        input_shape = inputs_shape
        shape = list(input_shape)
        for axis in spatial_axes(self.data_format):
            if shape[axis] is not None:
                if self.padding == "same":
                    shape[axis] = -(-shape[axis] // self.strides)
                else:
                    shape[axis] = (shape[axis] - self.kernel_size) // self.strides + 1
        shape[channel_axis(self.data_format)] = (
            input_shape[channel_axis(self.data_format)] if self.depthwise else self.filters)
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "num_experts": self.num_experts,
                "depthwise": self.depthwise, "padding": self.padding,
                "data_format": self.data_format,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}
