"""BatchNorm folded into the convolution before it, computed at each inference-mode call.

In inference a BatchNorm is a per-channel affine map ``y = x * scale + shift`` with
``scale = gamma / sqrt(moving_variance + epsilon)`` and ``shift = beta - moving_mean * scale``.
After a bias-free convolution it can be folded in: ``conv(x, kernel * scale) + shift``. That
saves a full pass over the activation (the normalisation) at the cost of scaling the kernel,
which is a few thousand multiplies against the millions of the convolution.

Here the fold is done on the fly, inside the block's ``call``, from the live variables: the
model keeps its BatchNorm layers and weights (training, weight loading, pruning and saving are
untouched), and only the inference arithmetic changes, equal up to float rounding (about 1e-6
relative). :func:`~keras_efficientnet.fuse_batchnorm` is the other way: an inference-only copy
whose weights are folded once.

On TensorFlow (``tf.function`` without XLA) the folded form lets grappler fuse the convolution
with its bias add into one kernel: measured 4-8% faster inference for B0 and V2-S (2-core CPU,
batch 32, ``benchmarks/run.py``). On PyTorch, where Keras runs BatchNorm as several eager
elementwise passes, it measured 3-6% faster. On JAX, XLA already fuses the BatchNorm arithmetic
with the activation into one loop, and folding measured within noise, so ``"auto"`` folds on
TensorFlow and PyTorch.
"""

from __future__ import annotations

import keras

#: Choices for the ``bn_fold`` argument of the blocks.
BN_FOLDS = ("auto", "inference", "never")

#: What ``"auto"`` picks per backend (measured with benchmarks/run.py, docs/benchmarks.md).
AUTO_BN_FOLD = {"tensorflow": "inference", "jax": "never", "torch": "inference"}


def resolve_bn_fold(mode: str, backend: str | None = None) -> str:
    """The concrete choice (``"inference"`` or ``"never"``) that ``mode`` stands for.

    Args:
        mode: ``"auto"``, ``"inference"`` (fold at every inference-mode call) or ``"never"``.
        backend: Keras backend name; the current one when None.

    Returns:
        ``"inference"`` or ``"never"``.

    Example:
        >>> from keras_efficientnet.layers.folding import resolve_bn_fold
        >>> resolve_bn_fold("auto", backend="tensorflow")
        'inference'
        >>> resolve_bn_fold("never", backend="tensorflow")
        'never'
    """
    if mode not in BN_FOLDS:
        raise ValueError(f"bn_fold must be one of {BN_FOLDS}, got {mode!r}.")
    if mode != "auto":
        return mode
    return AUTO_BN_FOLD.get(backend or keras.backend.backend(), "never")


def can_fold(conv, bn, training) -> bool:
    """Whether ``bn(conv(x))`` may be computed folded in this call.

    Only when the BatchNorm uses its moving statistics (``training`` false, or the BatchNorm
    frozen, which Keras runs in inference mode), the convolution is a plain float32 one (no
    quantized kernel), and the compute dtype is float32: under mixed precision Keras computes
    BatchNorm in float32, and a kernel scaled in float16 would lose that.
    """
    if training and bn.trainable:
        return False
    if not isinstance(bn, keras.layers.BatchNormalization) or not (bn.scale and bn.center):
        return False
    if getattr(conv, "quantization_mode", None) or getattr(conv, "use_bias", False):
        return False
    return conv.compute_dtype == "float32" and bn.compute_dtype == "float32"


def _scale_shift(bn):
    ops = keras.ops
    scale = bn.gamma * ops.rsqrt(bn.moving_variance + bn.epsilon)
    return scale, bn.beta - bn.moving_mean * scale


def add_channel_bias(x, bias, data_format: str):
    """``x`` plus a per-channel ``bias``; on TensorFlow as ``tf.nn.bias_add``.

    ``BiasAdd`` right after a ``Conv2D`` is what TensorFlow's graph optimizer fuses into one
    convolution kernel; a broadcast ``AddV2`` is not.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.layers.folding import add_channel_bias
        >>> out = add_channel_bias(np.zeros((1, 2, 2, 3), "float32"),
        ...                        np.array([1, 2, 3], "float32"), "channels_last")
        >>> np.asarray(out)[0, 0, 0].tolist()
        [1.0, 2.0, 3.0]
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.nn.bias_add(x, keras.ops.cast(bias, x.dtype),
                              data_format="NHWC" if data_format == "channels_last" else "NCHW")
    shape = [1, 1, 1, -1] if data_format == "channels_last" else [1, -1, 1, 1]
    return x + keras.ops.reshape(keras.ops.cast(bias, x.dtype), shape)


def folded_conv_bn(conv, bn, x):
    """``bn(conv(x), training=False)`` computed as one convolution with the BatchNorm folded in.

    ``conv`` is a bias-free ``keras.layers.Conv2D`` (or subclass such as
    :class:`~keras_efficientnet.layers.PointwiseConv2D`), ``keras.layers.DepthwiseConv2D``
    (depth multiplier 1) or :class:`~keras_efficientnet.layers.ShiftedDepthwiseConv2D`, already
    built; ``bn`` the BatchNormalization on its output channels.

    Example:
        >>> import numpy as np, keras
        >>> from keras_efficientnet.layers.folding import folded_conv_bn
        >>> conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)
        >>> bn = keras.layers.BatchNormalization()
        >>> x = np.random.default_rng(0).normal(size=(1, 6, 6, 2)).astype("float32")
        >>> reference = np.asarray(bn(conv(x), training=False))
        >>> bool(np.allclose(np.asarray(folded_conv_bn(conv, bn, x)), reference, atol=1e-6))
        True
    """
    from .depthwise import ShiftedDepthwiseConv2D

    scale, shift = _scale_shift(bn)
    if isinstance(conv, ShiftedDepthwiseConv2D):
        y = conv.depthwise_op(x, conv.kernel * keras.ops.expand_dims(scale, -1))
    elif isinstance(conv, keras.layers.DepthwiseConv2D):
        if conv.depth_multiplier != 1:
            raise ValueError("folded_conv_bn supports depthwise convolutions with "
                             f"depth_multiplier=1, got {conv.depth_multiplier}.")
        y = keras.ops.depthwise_conv(x, conv.kernel * keras.ops.expand_dims(scale, -1),
                                     strides=conv.strides, padding=conv.padding,
                                     data_format=conv.data_format,
                                     dilation_rate=conv.dilation_rate)
    elif isinstance(conv, keras.layers.Conv2D):
        y = conv.convolution_op(x, conv.kernel * scale)
    else:
        raise ValueError(f"Cannot fold a BatchNorm into a {type(conv).__name__}; expected "
                         "Conv2D, DepthwiseConv2D or ShiftedDepthwiseConv2D.")
    return add_channel_bias(y, shift, conv.data_format)
