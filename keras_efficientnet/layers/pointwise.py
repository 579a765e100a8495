"""A 1x1 convolution computed as a matrix product where that is faster.

On JAX (XLA on CPU) a 1x1 ``Conv2D`` with stride 1 is slower than the same arithmetic written
as a matrix product over the channel axis: forward plus both gradients measured 1.4-2.6x
faster as ``matmul`` for MBConv's expansion and projection shapes (2-core CPU, batch 16).
Pointwise convolutions carry most of an EfficientNet's multiply-adds, so this is most of a
training step. :class:`PointwiseConv2D` is a ``keras.layers.Conv2D`` (same arguments, same
``kernel``/``bias`` variables and shapes, ``isinstance`` still true) that switches only its
arithmetic; on TensorFlow, and on JAX for any other kernel size, stride, dilation, group
count or ``channels_first``, it is exactly ``Conv2D``.

On PyTorch the 1x1 stride-1 case is the same matrix product (no layout change at all, where
Keras' PyTorch convolution copies the input to NCHW and back to channels_last memory on every
call, and falls back to a slow unblocked kernel for small inputs such as 7x7 at batch 1);
other channels-last 4-D cases with ``"valid"`` padding or symmetric ``"same"`` padding at
stride 1 call torch's ``conv2d`` on the channels-last memory the NHWC tensor already is. The
factory uses this class for every convolution of the blocks and the head.
"""

from __future__ import annotations

import keras

from .common import serializable_as_core, torch_conv_padding


@serializable_as_core(keras.layers.Conv2D)
class PointwiseConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` whose 1x1, stride-1, channels-last case is a matmul on JAX and
    PyTorch, and whose other channels-last convolutions on PyTorch skip Keras' layout copies.

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
        return (keras.backend.backend() in ("jax", "torch") and tuple(self.kernel_size) == (1, 1)
                and tuple(self.strides) == (1, 1) and tuple(self.dilation_rate) == (1, 1)
                and self.groups == 1 and self.data_format == "channels_last")

    def _torch_padding(self, inputs):
        """torch's padding for a direct call, or None (:func:`~.common.torch_conv_padding`)."""
        return torch_conv_padding(self, inputs)

    def convolution_op(self, inputs, kernel):
        if self._as_matmul():
            return keras.ops.matmul(inputs, keras.ops.reshape(kernel, tuple(kernel.shape[2:])))
        padding = self._torch_padding(inputs)
        if padding is not None:
            # Keras' PyTorch convolution copies the NHWC input to a contiguous NCHW tensor,
            # then copies it again to channels_last memory (and the kernel likewise) on every
            # call. The NHWC tensor seen as NCHW already is channels_last memory, which torch's
            # CPU convolution takes as it is, and its output seen as NHWC is contiguous: no
            # copy either way.
            import torch.nn.functional as F

            x = keras.ops.convert_to_tensor(inputs).permute(0, 3, 1, 2)
            w = keras.ops.convert_to_tensor(kernel).permute(3, 2, 0, 1)
            return F.conv2d(x, w, None, tuple(self.strides), padding, tuple(self.dilation_rate),
                            self.groups).permute(0, 2, 3, 1)
        return super().convolution_op(inputs, kernel)
