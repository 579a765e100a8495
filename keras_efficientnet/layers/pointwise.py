"""A 1x1 convolution computed as a matrix product where that is faster.

On JAX (XLA on CPU) a 1x1 ``Conv2D`` with stride 1 is slower than the same arithmetic written
as a matrix product over the channel axis: forward plus both gradients measured 1.4-2.6x
faster as ``matmul`` for MBConv's expansion and projection shapes (2-core CPU, batch 16).
Pointwise convolutions carry most of an EfficientNet's multiply-adds, so this is most of a
training step. :class:`PointwiseConv2D` is a ``keras.layers.Conv2D`` (same arguments, same
``kernel``/``bias`` variables and shapes, ``isinstance`` still true) that switches only its
arithmetic; on TensorFlow and PyTorch, and for any other kernel size, stride, dilation, group
count or ``channels_first``, it is exactly ``Conv2D``.
"""

from __future__ import annotations

import keras

from .common import serializable_as_core


@serializable_as_core(keras.layers.Conv2D)
class PointwiseConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` whose 1x1, stride-1, channels-last case is a matmul on JAX.

    Same constructor, weights and outputs (up to float summation order) as ``Conv2D``; saves
    as ``keras.layers.Conv2D`` (:func:`~keras_efficientnet.layers.common.serializable_as_core`),
    so a model's ``.keras`` file loads with plain Keras.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.layers import PointwiseConv2D
        >>> layer = PointwiseConv2D(8, 1, use_bias=False)
        >>> tuple(layer(np.ones((2, 5, 5, 4), "float32")).shape), tuple(layer.kernel.shape)
        ((2, 5, 5, 8), (1, 1, 4, 8))
    """

    def _as_matmul(self) -> bool:
        return (keras.backend.backend() == "jax" and tuple(self.kernel_size) == (1, 1)
                and tuple(self.strides) == (1, 1) and tuple(self.dilation_rate) == (1, 1)
                and self.groups == 1 and self.data_format == "channels_last")

    def convolution_op(self, inputs, kernel):
        if self._as_matmul():
            return keras.ops.matmul(inputs, keras.ops.reshape(kernel, tuple(kernel.shape[2:])))
        return super().convolution_op(inputs, kernel)
