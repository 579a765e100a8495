"""Weight rounding for integer export: put every kernel on its int8 grid before the converter does.

A full-integer TFLite converter quantizes each convolution / dense kernel per output channel,
symmetrically: ``scale = max|w| / 127`` and ``q = round(w / scale)``. Rounding every weight to
its nearest grid point ignores how the errors of one output channel add up over its inputs, and
EfficientNets are sensitive to it: on the crops measured by ``examples/int8_agreement.py``
nearest rounding of the weights alone (float activations) moves Lite0's top-1 on 13% of them.

:func:`quantize_weights` chooses the rounding of each layer the way GPTQ does (Frantar et al.,
"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers", 2022;
the Optimal Brain Compression rule for one layer): with ``H = X^T X`` the second moment of the
layer's inputs on calibration images, the inputs of each output channel are rounded one by one
(those with the most energy first) and the rounding error of each is compensated on the inputs
not yet rounded, in proportion to ``H^-1``, so the layer's *output* error is minimised rather
than each weight's. The result is
still a float model, but every kernel value is ``k * scale`` with ``|k| <= 127`` and the
largest ``|k| == 127`` in each channel, so the converter's own per-channel rounding reproduces
it exactly (BatchNorm folding multiplies a channel by one factor, which moves its grid with
it). Output channels where the compensation moved the largest weight off the top grid point
keep nearest rounding (about 1% of them for Lite0).

Which layers: ``Conv2D`` (one group, no dilation), ``DepthwiseConv2D`` (depth multiplier 1, no
dilation) and ``Dense`` on 2-D inputs, in the model's own graph, each called once. Layers
inside nested models keep nearest rounding.

Every computation here is NumPy on the outputs of ``model.predict_on_batch``, so it runs the
same on every backend; the model passed in is never changed.
"""

from __future__ import annotations

import logging
import math

import numpy as np

logger = logging.getLogger("keras_efficientnet.quantize")

#: ``method`` values of :func:`quantize_weights`.
METHODS = ("gptq", "nearest")


def quantize_weights(model, calibration_data, bits=8, method="gptq", damp=0.01,
                     block_size=128, batch_size=None):
    """A copy of ``model`` whose kernels lie on their per-channel ``bits``-bit integer grid.

    Args:
        model: a Keras model (an EfficientNet, a segmentation or detection model...).
        calibration_data: an ``(N, ...)`` array of inputs as the model takes them (0-255
            pixels for models with in-graph preprocessing), e.g. the representative data of an
            int8 export. 32 or more varied images are plenty; 8 work.
        bits: the integer width of the weights (8 for TFLite int8).
        method: ``"gptq"`` (rounding that minimises each layer's output error on the
            calibration data) or ``"nearest"`` (each weight to its nearest grid point, what the
            converter does by itself).
        damp: GPTQ's damping, as a fraction of the mean diagonal of ``X^T X``.
        block_size: GPTQ's lazy-update block (speed only; the result does not depend on it
            beyond floating-point rounding).
        batch_size: calibration images per forward pass (default: what keeps the layer inputs
            of one pass near 512 MB).

    Returns:
        A new Keras model (same architecture, layer names and float dtype) holding the rounded
        weights. ``model`` is not changed.

    Raises:
        ValueError: unknown ``method``, ``bits`` outside 2-16, a non-positive ``damp`` or
            ``block_size``, or calibration data that is empty or does not fit the model's input.

    Example:
        >>> import keras
        >>> import numpy as np
        >>> import keras_efficientnet as ke
        >>> model = ke.EfficientNetLite0(weights=None, input_shape=(32, 32, 3), classes=4)
        >>> images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
        >>> rounded = ke.quantize_weights(model, images)
        >>> kernel = keras.ops.convert_to_numpy(rounded.get_layer("top_conv").kernel)
        >>> kernel = kernel.reshape(-1, kernel.shape[-1])
        >>> steps = kernel / (np.abs(kernel).max(0) / 127)
        >>> bool(np.abs(steps - np.round(steps)).max() < 1e-3)
        True
    """
    import keras

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an integer from 2 to 16, got {bits!r}.")
    if not (isinstance(damp, (int, float)) and damp > 0 and math.isfinite(damp)):
        raise ValueError(f"damp must be a positive number, got {damp!r}.")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}.")
    data = np.asarray(calibration_data, "float32")
    expected = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if data.ndim < 2 or len(data) == 0 or (expected is not None and (
            data.ndim != len(expected) + 1 or
            any(e is not None and e != d for e, d in zip(expected, data.shape[1:])))):
        raise ValueError(f"calibration_data must be a non-empty batch of the model's inputs "
                         f"{(None, *expected) if expected else ''}, got shape {data.shape}.")

    copy = _copy(model)
    layers = [l for l in copy.layers if _quantizable(l)]
    if not layers:
        return copy
    if method == "gptq":
        hessians = _input_moments(copy, layers, data, batch_size)
    kept = []
    for layer in layers:
        weights = layer.get_weights()
        kernel = np.asarray(weights[0], "float64")
        if method == "nearest":
            rounded = _nearest(_rows(layer, kernel), bits)
        else:
            rounded, ok = _gptq(_rows(layer, kernel), hessians[layer.name], bits, damp, block_size)
            kept.append(ok)
        weights[0] = _unrows(layer, rounded, kernel.shape).astype(weights[0].dtype)
        layer.set_weights(weights)
    if kept:
        logger.info("GPTQ rounding of %d layers; %.1f%% of output channels kept it (the rest: "
                    "nearest rounding).", len(layers), 100 * float(np.mean(np.concatenate(kept))))
    return copy


# --------------------------------------------------------------------------------- layers


def _copy(model):
    """A clone of ``model`` holding its weights."""
    import keras

    from .pretrained.naming import finalize_preprocessing

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    finalize_preprocessing(copy)
    return copy


def _quantizable(layer) -> bool:
    import keras

    if len(getattr(layer, "_inbound_nodes", [])) != 1 or not layer.get_weights():
        return False
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return (layer.depth_multiplier == 1 and tuple(layer.dilation_rate) == (1, 1)
                and len(layer.input.shape) == 4)
    if isinstance(layer, keras.layers.Conv2D):
        return (layer.groups == 1 and tuple(layer.dilation_rate) == (1, 1)
                and len(layer.input.shape) == 4)
    if isinstance(layer, keras.layers.Dense):
        return len(layer.input.shape) == 2
    return False


def _rows(layer, kernel):
    """The kernel as ``(..., rows, inputs)``: one row per output channel (depthwise: one
    ``(channels, 1, k*k)`` row per channel, each with its own input moments)."""
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, channels, _ = kernel.shape
        return kernel[..., 0].reshape(kh * kw, channels).T[:, None, :]
    return kernel.reshape(-1, kernel.shape[-1]).T


def _unrows(layer, rows, shape):
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, channels, _ = shape
        return rows[:, 0, :].T.reshape(kh, kw, channels, 1)
    return rows.T.reshape(shape)


def _channels_last(layer, x):
    if getattr(layer, "data_format", "channels_last") == "channels_first" and x.ndim == 4:
        return np.moveaxis(x, 1, -1)
    return x


def _patches(layer, x):
    """``(N, Ho, Wo, C, kh, kw)`` views of the windows a convolution sees (channels last)."""
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    if layer.padding == "same":  # Keras/TensorFlow "same": the extra row/column after
        pads = []
        for size, k, s in ((x.shape[1], kh, sh), (x.shape[2], kw, sw)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, ((0, 0), *pads, (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    return windows[:, ::sh, ::sw]


def _moment(layer, x):
    """``X^T X`` of one batch of a layer's inputs, float64: ``(d, d)`` (depthwise:
    ``(C, k*k, k*k)``)."""
    import keras

    x = _channels_last(layer, np.asarray(x, "float32"))
    if isinstance(layer, keras.layers.Dense):
        rows = x.reshape(-1, x.shape[-1])
    elif isinstance(layer, keras.layers.DepthwiseConv2D):
        windows = _patches(layer, x)  # one copy, to (C, k*k, positions): a batched matmul
        per_channel = np.ascontiguousarray(windows.transpose(3, 4, 5, 0, 1, 2)).reshape(
            windows.shape[3], windows.shape[4] * windows.shape[5], -1)
        return np.matmul(per_channel, per_channel.transpose(0, 2, 1)).astype("float64")
    elif tuple(layer.kernel_size) == (1, 1):
        rows = x[:, ::layer.strides[0], ::layer.strides[1]].reshape(-1, x.shape[-1])
    else:  # the kernel's (kh, kw, C) order
        windows = _patches(layer, x)
        rows = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, int(np.prod(windows.shape[3:])))
    return (rows.T @ rows).astype("float64")


def _input_moments(model, layers, data, batch_size):
    import keras

    taps = keras.Model(model.inputs, [l.input for l in layers])
    if batch_size is None:
        per_image = sum(int(np.prod([d or 1 for d in l.input.shape[1:]])) for l in layers)
        batch_size = max(1, min(32, int(512e6 / (4 * per_image))))
    moments = {}
    for start in range(0, len(data), batch_size):
        outputs = taps.predict_on_batch(data[start:start + batch_size])
        if len(layers) == 1:
            outputs = [outputs]
        for layer, x in zip(layers, outputs):
            m = _moment(layer, keras.ops.convert_to_numpy(x))
            moments[layer.name] = m if layer.name not in moments else moments[layer.name] + m
    return moments


# ------------------------------------------------------------------------------- rounding


def _scale(rows, bits):
    top = 2 ** (bits - 1) - 1
    scale = np.abs(rows).max(-1, keepdims=True) / top
    return np.where(scale == 0, 1.0, scale), top


def _on_grid(x, scale, top):
    return np.clip(np.round(x / scale), -top, top) * scale


def _nearest(rows, bits):
    return _on_grid(rows, *_scale(rows, bits))


def _gptq(rows, moment, bits, damp, block_size):
    """GPTQ rounding of ``rows`` ``(..., R, d)`` with input moments ``(..., d, d)``; returns the
    rounded rows and, per row, whether it kept the GPTQ result (else nearest rounding)."""
    scale, top = _scale(rows, bits)
    h = np.array(moment, "float64", copy=True)
    diagonal = np.einsum("...ii->...i", h)
    diagonal[diagonal <= 0] = 1.0  # an input that is always zero: its weight does not matter
    # GPTQ's "act order": the inputs with the most energy are rounded first, while the most
    # inputs are left to absorb their error
    order = np.argsort(-diagonal, axis=-1, kind="stable")
    h = np.take_along_axis(np.take_along_axis(h, order[..., :, None], -2), order[..., None, :], -1)
    rounded, kept = _gptq_in_order(np.take_along_axis(rows, order[..., None, :], -1), h, scale,
                                   top, damp, block_size)
    rounded = np.take_along_axis(rounded, np.argsort(order, axis=-1)[..., None, :], -1)
    return np.where(kept, rounded, _nearest(rows, bits)), kept.ravel()


def _gptq_in_order(rows, h, scale, top, damp, block_size):
    """GPTQ over the inputs of ``rows`` in their order; ``h`` is damped in place. Returns the
    rounded rows and, per row, whether its largest weight stayed on the top grid point."""
    d = rows.shape[-1]
    diagonal = np.einsum("...ii->...i", h)
    h += np.eye(d) * (damp * diagonal.mean(-1))[..., None, None]
    # the upper Cholesky factor of H^-1 carries each input's error to the later inputs
    upper = np.swapaxes(np.linalg.cholesky(np.linalg.inv(h)), -1, -2)
    work = rows.astype("float64", copy=True)
    out = np.empty_like(work)
    for start in range(0, d, block_size):
        stop = min(start + block_size, d)
        block = work[..., start:stop].copy()
        errors = np.empty_like(block)
        u = upper[..., start:stop, start:stop]
        for i in range(stop - start):
            column = block[..., i:i + 1]
            q = _on_grid(column, scale, top)
            out[..., start + i:start + i + 1] = q
            error = (column - q) / u[..., None, i, i:i + 1]
            block[..., i:] -= error * u[..., None, i, i:]
            errors[..., i:i + 1] = error
        work[..., stop:] -= errors @ upper[..., start:stop, stop:]
    kept = np.isclose(np.abs(out).max(-1, keepdims=True), top * scale, rtol=1e-6)
    return out, kept
