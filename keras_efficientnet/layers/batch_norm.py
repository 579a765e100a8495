"""BatchNormalization whose inference is one fused kernel on TensorFlow.

Keras 3 computes BatchNormalization at inference as separate element-wise operations
(``ops.batch_normalization``: a subtract, a multiply by ``rsqrt(variance + epsilon) * gamma``,
an add). TensorFlow has a single kernel for it, ``FusedBatchNormV3`` with
``is_training=False``, which Keras 2 used and which TensorFlow's graph optimiser can merge
into the preceding convolution on CPU. :class:`BatchNormalization` is a
``keras.layers.BatchNormalization`` (same arguments, variables and outputs up to float
rounding, ``isinstance`` true, saves as the core layer) that takes that kernel on TensorFlow
for 4-D channels-last float32 inputs outside training; in training mode, with a mask, on JAX
and PyTorch and for any other input it is exactly the core layer. Measured in
benchmarks/run.py (TensorFlow inference rows).
"""

from __future__ import annotations

import keras

from .common import serializable_as_core


@serializable_as_core(keras.layers.BatchNormalization)
class FastBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with TensorFlow's fused inference kernel.

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
        >>> bool(np.allclose(fast(x, training=False), core(x, training=False), atol=1e-6))
        True
    """

    def _fused_inference(self, inputs, training, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and not (training and self.trainable)
                and mask is None and not getattr(self, "renorm", False)
                and len(inputs.shape) == 4 and self.axis in (3, -1)
                and inputs.dtype == "float32" and self.compute_dtype == "float32")

    def call(self, inputs, training=None, mask=None):
        if not self._fused_inference(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones((channels,), "float32")
        beta = self.beta if self.center else tf.zeros((channels,), "float32")
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, data_format="NHWC", is_training=False)
        return outputs
