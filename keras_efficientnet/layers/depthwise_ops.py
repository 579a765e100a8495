"""The arithmetic of the shifted depthwise convolution, shared by the Keras layer
(:mod:`keras_efficientnet.layers.depthwise`) and its hand-written JAX gradient
(:mod:`keras_efficientnet.layers.depthwise_jax`). Backend-neutral: plain slicing and
element-wise products on whatever arrays the caller passes; imports nothing of the package,
so the layer and the JAX kernels both import it and not each other.
"""

from __future__ import annotations


def _same_pads(size: int, kernel: int, strides: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (extra pixel after) along one axis of length ``size``."""
    out = -(-size // strides)
    total = max((out - 1) * strides + kernel - size, 0)
    return total // 2, total - total // 2


def _window(x, i, j, strides, out_h, out_w, channels_last):
    """The (i, j) tap's strided window of the padded input ``x``."""
    hs = slice(i, i + strides * (out_h - 1) + 1, strides)
    ws = slice(j, j + strides * (out_w - 1) + 1, strides)
    return x[:, hs, ws, :] if channels_last else x[:, :, hs, ws]


def _channel_vector(v, channels_last):
    """A ``(C,)`` vector shaped to broadcast along the channel axis."""
    return v if channels_last else v[:, None, None]


def _correlate(xp, taps, strides, out_h, out_w, channels_last):
    """``sum_ij window_ij(xp) * taps[i, j]``; ``taps`` has shape ``(kh, kw, C)``."""
    out = None
    for i in range(taps.shape[0]):
        for j in range(taps.shape[1]):
            term = _window(xp, i, j, strides, out_h, out_w, channels_last) * \
                _channel_vector(taps[i, j], channels_last)
            out = term if out is None else out + term
    return out
