"""BatchNormalization that runs as one fused kernel on TensorFlow and PyTorch, in inference
and training.

Keras 3 computes BatchNormalization as separate operations: at inference
``ops.batch_normalization`` (a subtract, a multiply by ``rsqrt(variance + epsilon) * gamma``,
an add), in training also ``ops.moments`` (two reductions over the batch) first, and the
gradient of all of them. TensorFlow has one kernel for each direction, ``FusedBatchNormV3``
and its gradient ``FusedBatchNormGradV3``, which Keras 2 used; at inference TensorFlow's graph
optimiser can also merge it into the preceding convolution on CPU. PyTorch has
``torch.nn.functional.batch_norm`` (one kernel forward, one backward, channels-last aware).
:class:`FastBatchNormalization` is a ``keras.layers.BatchNormalization`` (same arguments,
variables, moving-statistics update and outputs up to float rounding, ``isinstance`` true,
saves as the core layer) that takes those kernels on TensorFlow and PyTorch for 4-D
channels-last float32 inputs; with a mask, with renorm or ``synchronized=True``, on JAX (where
XLA fuses the core layer's operations itself) and for any other input it is exactly the core
layer. The moving statistics are updated as the core layer updates them, with the batch
variance divided by n (both kernels return it divided by n - 1, which is undone). Measured
in benchmarks/run.py (TensorFlow and PyTorch inference and training rows);
tests/test_batch_norm.py compares outputs, gradients and moving statistics with the core
layer.
"""

from __future__ import annotations

import keras

from .common import serializable_as_core


@serializable_as_core(keras.layers.BatchNormalization)
class FastBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with TensorFlow's and PyTorch's fused kernels.

    Same constructor, weights and outputs as the core layer; saves as
    ``keras.layers.BatchNormalization`` (see
    :func:`~keras_efficientnet.layers.common.serializable_as_core`).

    Example:
        >>> import numpy as np, keras
        >>> from keras_efficientnet.layers.batch_norm import FastBatchNormalization
        >>> x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
        >>> fast, core = FastBatchNormalization(epsilon=1e-3), keras.layers.BatchNormalization(epsilon=1e-3)
        >>> fast.build(x.shape); core.build(x.shape)
        >>> core.set_weights([np.full(3, 2.0), np.ones(3), np.full(3, 0.5), np.full(3, 4.0)])
        >>> fast.set_weights(core.get_weights())
        >>> out = [keras.ops.convert_to_numpy(layer(x, training=t))
        ...        for t in (False, True) for layer in (fast, core)]
        >>> bool(np.allclose(out[0], out[1], atol=1e-5)), bool(np.allclose(out[2], out[3], atol=1e-5))
        (True, True)
    """

    def _fused(self, inputs, mask) -> bool:
        return (keras.backend.backend() in ("tensorflow", "torch") and mask is None
                and not getattr(self, "renorm", False) and not getattr(self, "synchronized", False)
                and len(inputs.shape) == 4 and self.axis in (3, -1)
                and keras.backend.standardize_dtype(inputs.dtype) == "float32"
                and self.compute_dtype == "float32")

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        training = bool(training and self.trainable)
        if keras.backend.backend() == "torch":
            return self._torch_call(inputs, training)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones((channels,), "float32")
        beta = self.beta if self.center else tf.zeros((channels,), "float32")
        if not training:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, data_format="NHWC", is_training=False)
            return outputs
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
        # The kernel's variance is the unbiased one (divided by n - 1); the core layer's
        # moments, and so its moving variance, divide by n.
        n = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, "float32")
        variance = tf.math.divide_no_nan(variance * (n - 1.0), n)
        self._update_moving(mean, variance)
        return outputs

    def _update_moving(self, mean, variance):
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum))

    def _torch_call(self, inputs, training):
        # torch's batch_norm takes channels on axis 1; the NHWC tensor seen as NCHW is a
        # channels_last view (no copy), which its CPU kernels handle natively.
        import torch.nn.functional as F

        convert = keras.ops.convert_to_tensor
        x = convert(inputs)
        if training and x.numel() <= x.shape[-1]:  # one value per channel: torch refuses it
            return super().call(inputs, training=True)
        x = x.permute(0, 3, 1, 2)
        gamma = convert(self.gamma) if self.scale else None
        beta = convert(self.beta) if self.center else None
        if training:
            # With momentum 1 the kernel writes the batch mean and variance into fresh
            # buffers, so the statistics cost no second pass over the input.
            channels = x.shape[1]
            mean, variance = x.new_zeros(channels), x.new_ones(channels)  # on x's device
            outputs = F.batch_norm(x, mean, variance, gamma, beta, training=True, momentum=1.0,
                                   eps=self.epsilon)
            n = x.numel() // channels
            self._update_moving(mean, variance * ((n - 1) / n))  # unbiased -> divided by n
        else:
            outputs = F.batch_norm(x, convert(self.moving_mean), convert(self.moving_variance),
                                   gamma, beta, training=False, eps=self.epsilon)
        return outputs.permute(0, 2, 3, 1)
