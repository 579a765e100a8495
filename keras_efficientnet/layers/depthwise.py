"""A depthwise convolution written as k×k shifted multiply-adds.

XLA's CPU depthwise convolution (used by JAX, and by TensorFlow with ``jit_compile=True``)
is slow, its gradient much more so. A kxk depthwise convolution is the sum over the k×k
kernel taps of a shifted (strided) slice of the padded input times that tap's per-channel
weight. Written that way it is plain elementwise arithmetic which XLA fuses into one loop. On
JAX its gradient is hand-written as well (:mod:`keras_efficientnet.layers.depthwise_jax`):
autodiff's version of it, k×k separate reductions and padded copies, was most of the
training step.

:class:`ShiftedDepthwiseConv2D` keeps exactly the weight layout of
``keras.layers.DepthwiseConv2D`` (one variable ``kernel`` of shape ``(k, k, C, 1)``),
so weights load into either layer unchanged.
"""

from __future__ import annotations

import keras

from .common import CONV_INITIALIZER, serializable_as_core, torch_conv_padding
from .depthwise_ops import _correlate, _same_pads

#: Implementations of MBConv's depthwise convolution.
DEPTHWISE_IMPLS = ("auto", "keras", "shifted")

#: What ``"auto"`` picks per backend, from ``benchmarks/run.py`` on a 2-core CPU
#: (docs/benchmarks.md): the shifted form wins under XLA (JAX); TensorFlow's and PyTorch's
#: native depthwise kernels are faster in eager / tf.function mode.
AUTO_DEPTHWISE = {"jax": "shifted", "tensorflow": "keras", "torch": "keras"}


def resolve_depthwise_impl(impl: str, backend: str | None = None) -> str:
    """The concrete implementation (``"keras"`` or ``"shifted"``) ``impl`` stands for.

    Args:
        impl: ``"auto"``, ``"keras"`` or ``"shifted"``.
        backend: Keras backend name; the current one when None.

    Returns:
        ``"keras"`` or ``"shifted"``.

    Example:
        >>> from keras_efficientnet.layers.depthwise import resolve_depthwise_impl
        >>> resolve_depthwise_impl("auto", backend="jax")
        'shifted'
        >>> resolve_depthwise_impl("keras", backend="jax")
        'keras'
    """
    if impl not in DEPTHWISE_IMPLS:
        raise ValueError(f"depthwise_impl must be one of {DEPTHWISE_IMPLS}, got {impl!r}.")
    if impl != "auto":
        return impl
    return AUTO_DEPTHWISE.get(backend or keras.backend.backend(), "keras")


@serializable_as_core(keras.layers.DepthwiseConv2D)
class ShiftedDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` computed as k×k shifted multiply-adds.

    A subclass of the core layer (``isinstance`` holds, same config, same ``kernel`` variable
    of shape ``(k, k, channels, 1)``, same outputs up to float summation order): only the
    arithmetic differs, and it compiles to a fused loop under XLA; on JAX its gradient is
    hand-written (:mod:`keras_efficientnet.layers.depthwise_jax`). It saves as
    ``keras.layers.DepthwiseConv2D`` (:func:`~keras_efficientnet.layers.common.serializable_as_core`).
    Supported: square kernels, strides 1 or 2 on both axes, depth multiplier 1, no dilation.

    Args:
        kernel_size: square kernel size ``k`` (odd or even).
        strides: 1 or 2.
        padding: ``"same"`` (TensorFlow's rule) or ``"valid"``.
        data_format: ``"channels_last"`` or ``"channels_first"``; Keras' default when None.
        depthwise_initializer: initializer of the kernel.
        use_bias: add a bias (default False, unlike the core layer: EfficientNets have none).
        **kwargs: any other ``keras.layers.DepthwiseConv2D`` argument.

    Example:
        >>> import keras, numpy as np
        >>> from keras_efficientnet.layers import ShiftedDepthwiseConv2D
        >>> layer = ShiftedDepthwiseConv2D(3, strides=2)
        >>> tuple(layer(np.ones((1, 8, 8, 4), "float32")).shape)
        (1, 4, 4, 4)
        >>> tuple(layer.kernel.shape), isinstance(layer, keras.layers.DepthwiseConv2D)
        ((3, 3, 4, 1), True)
    """

    def __init__(self, kernel_size, strides=1, padding="same", data_format=None,
                 depthwise_initializer=CONV_INITIALIZER, use_bias=False, **kwargs):
        super().__init__(kernel_size, strides=strides, padding=padding, data_format=data_format,
                         depthwise_initializer=depthwise_initializer, use_bias=use_bias, **kwargs)
        if len(set(self.kernel_size)) != 1:
            raise ValueError(f"kernel_size must be square, got {kernel_size}.")
        if len(set(self.strides)) != 1 or self.strides[0] not in (1, 2):
            raise ValueError(f"strides must be 1 or 2 on both axes, got {strides}.")
        if self.depth_multiplier != 1 or tuple(self.dilation_rate) != (1, 1):
            raise ValueError("ShiftedDepthwiseConv2D supports depth_multiplier=1 and no dilation.")

    @classmethod
    def from_config(cls, config):
        """The fast layer of the current backend: this one on JAX,
        :class:`NativeDepthwiseConv2D` on PyTorch, ``keras.layers.DepthwiseConv2D`` on
        TensorFlow (same weights and function)."""
        config = dict(config)
        if resolve_depthwise_impl("auto") != "shifted" or config.get("depth_multiplier", 1) != 1 \
                or tuple(config.get("dilation_rate", (1, 1))) != (1, 1):
            return native_depthwise_class().from_config(config)
        return super().from_config(config)

    def call(self, inputs):
        outputs = self.depthwise_op(inputs, self.kernel)
        if self.use_bias:
            shape = [1, 1, 1, -1] if self.data_format == "channels_last" else [1, -1, 1, 1]
            outputs = outputs + keras.ops.reshape(keras.ops.cast(self.bias, outputs.dtype), shape)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def depthwise_op(self, inputs, kernel):
        """The convolution of ``inputs`` with ``kernel`` (shape ``(k, k, C, 1)``) under this
        layer's kernel size, strides, padding and data format (``call`` passes ``self.kernel``;
        BatchNorm folding passes a scaled copy)."""
        ops = keras.ops
        k, s = self.kernel_size[0], self.strides[0]
        last = self.data_format == "channels_last"
        h_axis, w_axis = (1, 2) if last else (2, 3)
        height, width = inputs.shape[h_axis], inputs.shape[w_axis]
        if height is None or width is None:
            # Unknown spatial size at trace time (TensorFlow graphs with None dims): the
            # slicing below needs static sizes, so use the standard op for this call.
            return ops.depthwise_conv(inputs, ops.cast(kernel, inputs.dtype), strides=s, padding=self.padding,
                                      data_format=self.data_format)
        ph, pw = (_same_pads(height, k, s), _same_pads(width, k, s)) if self.padding == "same" \
            else ((0, 0), (0, 0))
        kernel = ops.cast(kernel, inputs.dtype)
        if keras.backend.backend() == "jax":  # same sum, with a faster hand-written gradient
            from .depthwise_jax import shifted_depthwise_fn

            return shifted_depthwise_fn(k, s, ph, pw, last)(inputs, kernel)
        x = inputs
        if any(ph + pw):
            x = ops.pad(x, [[0, 0], list(ph), list(pw), [0, 0]] if last
                        else [[0, 0], [0, 0], list(ph), list(pw)])
        out_h = (height + sum(ph) - k) // s + 1
        out_w = (width + sum(pw) - k) // s + 1
        # One (C,) weight vector per tap, broadcast over the batch and spatial axes.
        return _correlate(x, ops.reshape(kernel, (k, k, -1)), s, out_h, out_w, last)


@serializable_as_core(keras.layers.DepthwiseConv2D, loader=False)
class NativeDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` that, on PyTorch, skips Keras' layout copies.

    Keras' PyTorch depthwise convolution copies the NHWC input to a contiguous NCHW tensor and
    then back to channels_last memory (and the kernel likewise) on every call. Seen as NCHW,
    the NHWC tensor already is channels_last memory, which torch's CPU convolution takes as it
    is, and its output seen as NHWC is contiguous. For channels-last 4-D inputs with
    ``"valid"`` padding or symmetric ``"same"`` padding (stride 1, odd kernel) this layer
    calls torch's grouped ``conv2d`` directly; everywhere else (other backends, other
    paddings, ``channels_first``) it is the core layer. Same config and ``kernel`` variable;
    saves as ``keras.layers.DepthwiseConv2D``. ``depthwise_impl="keras"`` (what ``"auto"``
    picks on TensorFlow and PyTorch) builds this class.

    Example:
        >>> import keras, numpy as np
        >>> from keras_efficientnet.layers.depthwise import NativeDepthwiseConv2D
        >>> layer = NativeDepthwiseConv2D(3, padding="same", use_bias=False)
        >>> tuple(layer(np.ones((1, 8, 8, 4), "float32")).shape)
        (1, 8, 8, 4)
        >>> tuple(layer.kernel.shape), isinstance(layer, keras.layers.DepthwiseConv2D)
        ((3, 3, 4, 1), True)
    """

    def _torch_padding(self, inputs):
        """torch's padding for a direct call, or None (:func:`~.common.torch_conv_padding`)."""
        return torch_conv_padding(self, inputs)

    def call(self, inputs):
        padding = self._torch_padding(inputs)
        if padding is None:
            return super().call(inputs)
        import torch.nn.functional as F

        convert = keras.ops.convert_to_tensor
        x = convert(inputs)
        kh, kw, channels, multiplier = self.kernel.shape
        # (k, k, C, m) -> (C*m, 1, k, k): output channel c*m + j, as Keras orders them
        w = convert(self.kernel).reshape(kh, kw, 1, channels * multiplier).permute(3, 2, 0, 1)
        outputs = F.conv2d(x.permute(0, 3, 1, 2), w, None, tuple(self.strides), padding,
                           tuple(self.dilation_rate), channels).permute(0, 2, 3, 1)
        if self.use_bias:
            outputs = outputs + convert(self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


def native_depthwise_class():
    """The class ``depthwise_impl="keras"`` builds on the current backend: the core
    ``keras.layers.DepthwiseConv2D``, or :class:`NativeDepthwiseConv2D` on PyTorch."""
    return NativeDepthwiseConv2D if keras.backend.backend() == "torch" \
        else keras.layers.DepthwiseConv2D


def make_depthwise(impl: str, kernel_size: int, strides: int = 1, padding: str = "same",
                   data_format=None, depthwise_initializer=CONV_INITIALIZER, name=None):
    """A bias-free depthwise convolution layer of the implementation ``impl`` stands for.

    Args:
        impl: ``"auto"``, ``"keras"`` or ``"shifted"`` (see :func:`resolve_depthwise_impl`).
        kernel_size, strides, padding, data_format, depthwise_initializer, name: as for
            ``keras.layers.DepthwiseConv2D``.

    Returns:
        A ``keras.layers.DepthwiseConv2D`` (or the :class:`ShiftedDepthwiseConv2D` or
        :class:`NativeDepthwiseConv2D` subclass).

    Example:
        >>> import keras
        >>> from keras_efficientnet.layers.depthwise import make_depthwise
        >>> isinstance(make_depthwise("auto", 3), keras.layers.DepthwiseConv2D)
        True
    """
    cls = ShiftedDepthwiseConv2D if resolve_depthwise_impl(impl) == "shifted" \
        else native_depthwise_class()
    return cls(kernel_size, strides=strides, padding=padding, use_bias=False,
               data_format=data_format, depthwise_initializer=depthwise_initializer, name=name)
